// Conveyor's benchmark tool; see BenchTool for the scenarios and docs/operations/benchmarks.md for how to read the output.
//   dotnet run -c Release --project bench/Conveyor.Bench -- all [--repeat 3] [--json bench-results/all.json] [--smoke]
return await Conveyor.Bench.BenchTool.RunAsync(args, Console.Out);
