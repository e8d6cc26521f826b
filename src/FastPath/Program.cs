namespace FastPath;

// Placeholder entry point so the solution builds; the real command line (System.CommandLine) lands separately.
public static class Program
{
    public static int Main() => 0;
}
