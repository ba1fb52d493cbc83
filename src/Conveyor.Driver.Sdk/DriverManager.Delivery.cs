using Conveyor.Contracts;
using NATS.Client.JetStream;

namespace Conveyor.Driver.Sdk;

/// <content>One message being worked on: its decoded event, its in-flight bookkeeping.</content>
public sealed partial class DriverManager
{
    /// <summary>A message decoded: the event, or the run id (when readable) and the error.</summary>
    private sealed record Decoded(DriverEvent? Event, string? RunId, string Error);

    /// <summary>One message taken from JetStream, from pull to settlement.</summary>
    private sealed class Delivery : IDisposable
    {
        private const int Open = 0;
        private const int Settling = 1;
        private const int HandedBack = 2;

        private readonly PeriodicTimer _heartbeatTimer;
        private readonly Task _heartbeat;
        private readonly CancellationTokenSource _cancellation;
        private readonly Lock _cancelGate = new();
        private DriverContext? _context;
        private string? _cancellationReason;
        private bool _reconciled;
        private int _state;

        public Delivery(INatsJSMsg<byte[]> message, Decoded decoded, TimeSpan heartbeatInterval, TimeProvider timeProvider, Func<Delivery, PeriodicTimer, Task> heartbeat, CancellationToken abort)
        {
            Message = message;
            Decoded = decoded;
            _cancellation = CancellationTokenSource.CreateLinkedTokenSource(abort);
            _heartbeatTimer = new PeriodicTimer(heartbeatInterval, timeProvider);
            _heartbeat = heartbeat(this, _heartbeatTimer);
        }

        public INatsJSMsg<byte[]> Message { get; }

        public Decoded Decoded { get; }

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The reconcile's token: cancelled by shutdown (after the grace period) or by the engine.</summary>
        public CancellationToken Cancellation => _cancellation.Token;

        /// <summary>The engine's cancel reason, once a cancel has matched.</summary>
        public string? CancellationReason
        {
            get
            {
                lock (_cancelGate)
                {
                    return _cancellationReason;
                }
            }
        }

        /// <summary>Whether a cancel message is about this delivery.</summary>
        public bool Matches(CancelMessage cancel) =>
            Decoded.Event is { } e
            && string.Equals(e.RunId, cancel.RunId, StringComparison.Ordinal)
            && (e.StepId is null || string.Equals(e.StepId, cancel.Step, StringComparison.Ordinal))
            && (e.Attempt is null || cancel.Attempt <= 0 || e.Attempt == cancel.Attempt);

        /// <summary>
        /// Records the engine's cancel (the first one wins) and cancels the reconcile's token; false when already
        /// cancelled or the reconcile has already produced its result.
        /// </summary>
        public bool TryCancel(string reason)
        {
            lock (_cancelGate)
            {
                if (_reconciled || _cancellationReason is not null)
                {
                    return false;
                }

                _cancellationReason = reason ?? "";
                // The reason is visible before the token fires, so a reconcile that sees the token sees the reason.
                _context?.SetCancellationReason(_cancellationReason);
            }

            try
            {
                // Token callbacks (the driver's code) run on the thread pool, not on the loop reading cancels.
                _ = _cancellation.CancelAsync();
            }
            catch (ObjectDisposedException)
            {
                // Settled and disposed in the meantime.
            }

            return true;
        }

        /// <summary>Binds the reconcile's context; false when the engine cancelled the message before it started.</summary>
        public bool BeginReconcile(DriverContext context)
        {
            lock (_cancelGate)
            {
                _context = context;
                if (_cancellationReason is { } reason)
                {
                    context.SetCancellationReason(reason);
                    return false;
                }

                return true;
            }
        }

        /// <summary>Closes the window in which a cancel changes the outcome; returns the cancel reason, if any.</summary>
        public string? EndReconcile()
        {
            lock (_cancelGate)
            {
                _reconciled = true;
                return _cancellationReason;
            }
        }

        /// <summary>Claims the right to publish the result and ack; fails if shutdown handed the message back.</summary>
        public bool TryBeginSettle() => Interlocked.CompareExchange(ref _state, Settling, Open) == Open;

        /// <summary>Claims the right to nak the message for another instance; fails if the result is being settled.</summary>
        public bool TryHandBack() => Interlocked.CompareExchange(ref _state, HandedBack, Open) == Open;

        /// <summary>Stops the progress heartbeats (idempotent, thread-safe) and waits for one in flight.</summary>
        public async Task StopHeartbeatAsync()
        {
            _heartbeatTimer.Dispose();
            await _heartbeat.ConfigureAwait(false);
        }

        public void Dispose()
        {
            _heartbeatTimer.Dispose();
            _cancellation.Dispose();
        }
    }
}
