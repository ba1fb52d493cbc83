using System.Buffers;
using System.Text.Json;

namespace Conveyor.Grains.Events;

/// <summary>
/// One JSON buffer and writer per thread, reused for the messages a run publishes on every step (CDEvents, the run
/// events feed): a fresh writer over a growing stream allocated about 16 KB for each 1 KB message.
/// </summary>
internal static class ThreadJsonWriter
{
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    /// <summary>Writes with this thread's writer; the span is valid until the thread's next write.</summary>
    public static ReadOnlySpan<byte> Write<TState>(TState state, Action<Utf8JsonWriter, TState> write)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(2048);
        buffer.ResetWrittenCount();
        var w = t_writer ??= new Utf8JsonWriter(buffer);
        w.Reset(buffer);
        try
        {
            write(w, state);
            w.Flush();
            return buffer.WrittenSpan;
        }
        catch
        {
            // A writer left mid-object must not be reused.
            t_writer = null;
            throw;
        }
    }
}
