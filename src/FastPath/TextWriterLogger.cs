using Microsoft.Extensions.Logging;

namespace FastPath;

/// <summary>Log lines to a <see cref="TextWriter"/>, one per message, with the command's prefix (replay: stderr; run: stdout).</summary>
public sealed class TextWriterLogger(TextWriter writer, string prefix, LogLevel minimum = LogLevel.Information) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        string level = logLevel >= LogLevel.Error ? "error: " : logLevel == LogLevel.Warning ? "warning: " : "";
        writer.WriteLine($"{prefix}{level}{formatter(state, exception)}");
    }
}
