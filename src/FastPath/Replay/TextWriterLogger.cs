using Microsoft.Extensions.Logging;

namespace FastPath.Replay;

/// <summary>Log lines to a <see cref="TextWriter"/> (stderr), one per message, prefixed like every replay message.</summary>
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
