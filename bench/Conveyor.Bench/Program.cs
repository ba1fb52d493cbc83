// Conveyor's benchmark tool.
//   dotnet run -c Release --project bench/Conveyor.Bench -- logs [--steps 100] [--seconds 10] [--out bench-results]
// Every scenario starts a single-node engine in this process on real, supervised nats-server and redis-server
// (temporary data directory, free ports), drives it through the public surface (HTTP API, SDK) and prints a table;
// results are also written as JSON.
using System.Globalization;
using Conveyor.Bench;

var scenario = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? "logs";
int Option(string name, int fallback)
{
    var i = Array.IndexOf(args, "--" + name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out var v) ? v : fallback;
}

var outDir = Array.IndexOf(args, "--out") is var o and >= 0 && o + 1 < args.Length ? args[o + 1] : "bench-results";
switch (scenario)
{
    case "logs":
        var result = await LogsScenario.RunAsync(steps: Option("steps", 100), seconds: Option("seconds", 10));
        result.Print(Console.Out);
        await result.WriteJsonAsync(Path.Combine(outDir, "logs.json"));
        return result.Lost == 0 ? 0 : 1;
    default:
        await Console.Error.WriteLineAsync($"unknown scenario '{scenario}'; scenarios: logs");
        return 2;
}
