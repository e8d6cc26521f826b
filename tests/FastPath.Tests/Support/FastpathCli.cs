namespace FastPath.Tests.Support;

/// <summary>Runs the `fastpath` command in process and captures what it prints.</summary>
public static class FastpathCli
{
    public static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }
}
