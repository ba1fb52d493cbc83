using System.CommandLine;

namespace Conveyor.Cli;

/// <content>
/// <c>conveyor completion bash|zsh|fish|pwsh</c>: a script for the shell that asks <c>conveyor</c> itself, through
/// System.CommandLine's <c>[suggest:&lt;position&gt;]</c> directive, what may come next on the command line.
/// </content>
internal sealed partial class CliCommands
{
    private Command CompletionCommand()
    {
        var shell = new Argument<string>("shell") { Description = "bash, zsh, fish or pwsh" };
        shell.AcceptOnlyFromAmong("bash", "zsh", "fish", "pwsh");
        var command = new Command(
            "completion",
            "Print a tab-completion script: source <(conveyor completion bash); in ~/.zshrc: source <(conveyor completion zsh); conveyor completion fish | source; conveyor completion pwsh | Out-String | Invoke-Expression")
        {
            shell,
        };
        command.SetAction(async (parse, ct) =>
        {
            await Out.WriteAsync(CompletionScripts.For(parse.GetValue(shell)!)).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return command;
    }
}

/// <summary>The completion scripts; each passes the line typed so far and the cursor position to <c>conveyor [suggest:N]</c>.</summary>
internal static class CompletionScripts
{
    public static string For(string shell) => shell switch
    {
        "bash" => Bash,
        "zsh" => Zsh,
        "fish" => Fish,
        "pwsh" => Pwsh,
        _ => throw CliException.Usage($"no completion for shell '{shell}' (bash, zsh, fish, pwsh)"),
    };

    private const string Bash = """
        # conveyor completion for bash: source <(conveyor completion bash)
        _conveyor_complete() {
            local IFS=$'\n'
            local line="${COMP_LINE:0:COMP_POINT}"
            COMPREPLY=($(conveyor "[suggest:${#line}]" "$line" 2>/dev/null))
        }
        complete -o default -F _conveyor_complete conveyor

        """;

    private const string Zsh = """
        #compdef conveyor
        # conveyor completion for zsh: source <(conveyor completion zsh)
        _conveyor() {
            local line="${BUFFER[1,CURSOR]}"
            local -a suggestions
            suggestions=("${(@f)$(conveyor "[suggest:${#line}]" "$line" 2>/dev/null)}")
            compadd -- "${suggestions[@]}"
        }
        compdef _conveyor conveyor

        """;

    private const string Fish = """
        # conveyor completion for fish: conveyor completion fish | source
        function __conveyor_complete
            set -l line (commandline -cp)
            conveyor "[suggest:"(string length -- "$line")"]" "$line" 2>/dev/null
        end
        complete -c conveyor -f -a '(__conveyor_complete)'

        """;

    private const string Pwsh = """
        # conveyor completion for PowerShell: conveyor completion pwsh | Out-String | Invoke-Expression
        Register-ArgumentCompleter -Native -CommandName conveyor -ScriptBlock {
            param($wordToComplete, $commandAst, $cursorPosition)
            $line = $commandAst.ToString()
            $position = $cursorPosition - $commandAst.Extent.StartOffset
            if ($position -gt $line.Length) { $line = $line.PadRight($position) }
            conveyor "[suggest:$position]" $line.Substring(0, $position) 2>$null | ForEach-Object {
                [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
            }
        }

        """;
}
