namespace FastPath.Replay;

/// <summary>Prints a progress line at most once a second, and only for replays that take longer than that.</summary>
public sealed class ProgressLine(TextWriter stderr)
{
    private TimeSpan _next = TimeSpan.FromSeconds(1);
    private bool _printed;

    public void Report(long packets, TimeSpan elapsed)
    {
        if (elapsed < _next) return;
        _next = elapsed + TimeSpan.FromSeconds(1);
        _printed = true;
        stderr.Write($"\r  {packets:N0} packets, {packets / elapsed.TotalSeconds:N0} packets/s ");
    }

    public void Done()
    {
        if (_printed) stderr.WriteLine();
    }
}
