using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace FastPath.Tests.Support;

/// <summary>
/// Decodes a capture with tshark and reports what Wireshark would complain about, so golden-capture tests can
/// assert "decoded without warnings" (docs STYLE: tests). Checked against TShark 4.0.
/// </summary>
public static class Tshark
{
    // Wireshark expert severities (epan/proto.h): PI_CHAT 0x00200000, PI_NOTE 0x00400000, PI_WARN 0x00600000,
    // PI_ERROR 0x00800000. Warnings and errors are problems; chats and notes (e.g. "HTTP/1.1 200 OK") are not.
    private const long SeverityWarn = 0x0060_0000;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>Full path of tshark on PATH, or null.</summary>
    public static string? Executable { get; } = FindOnPath("tshark");

    public static bool Available => Executable is not null;

    /// <summary>
    /// The arguments <see cref="Problems"/> passes after <c>-r FILE</c>. IPv4, TCP and UDP checksum validation is off by
    /// default in Wireshark and turned on here; ICMP and ICMPv6 checksums have no preference and are always
    /// verified. <c>-n</c> keeps name resolution (and any DNS traffic) out of it.
    /// </summary>
    public static readonly string[] Arguments =
    [
        "-n",
        "-o", "ip.check_checksum:TRUE",
        "-o", "tcp.check_checksum:TRUE",
        "-o", "udp.check_checksum:TRUE",
        "-T", "json",
        "-e", "frame.number",
        "-e", "_ws.expert.severity",
        "-e", "_ws.expert.message",
        "-e", "_ws.malformed",
    ];

    /// <summary>The command line, for messages and the report.</summary>
    public static string CommandLine(string pcapPath) => $"tshark -r {pcapPath} {string.Join(' ', Arguments)}";

    /// <summary>
    /// Every expert-info item of severity warning or error, and every malformed packet, as
    /// "frame N: message" lines; tshark failing to run or read the file is a problem too. Empty means clean.
    /// Requires <see cref="Available"/>.
    /// </summary>
    public static IReadOnlyList<string> Problems(string pcapPath)
    {
        if (Executable is null) return ["tshark is not on PATH"];

        var psi = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-r");
        psi.ArgumentList.Add(pcapPath);
        foreach (var a in Arguments) psi.ArgumentList.Add(a);

        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start tshark");
        var stderrTask = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(Timeout))
        {
            process.Kill();
            return [$"tshark timed out after {Timeout.TotalSeconds} s on {pcapPath}"];
        }
        string stderr = stderrTask.GetAwaiter().GetResult();

        var problems = new List<string>();
        if (process.ExitCode != 0)
            problems.Add($"tshark exited {process.ExitCode} on {pcapPath}: {Meaningful(stderr)}");
        else if (Meaningful(stderr) is { Length: > 0 } err)
            problems.Add($"tshark stderr on {pcapPath}: {err}");

        if (string.IsNullOrWhiteSpace(stdout)) return problems;
        try
        {
            using var doc = JsonDocument.Parse(stdout);
            foreach (var packet in doc.RootElement.EnumerateArray())
            {
                if (!packet.TryGetProperty("_source", out var source) || !source.TryGetProperty("layers", out var layers))
                    continue;
                string frame = First(layers, "frame.number") ?? "?";
                var severities = All(layers, "_ws.expert.severity");
                var messages = All(layers, "_ws.expert.message");
                bool reported = false;
                // tshark emits one severity and one message per expert item, in the same order.
                for (int i = 0; i < severities.Count; i++)
                {
                    if (!long.TryParse(severities[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out long sev)
                        || sev < SeverityWarn)
                        continue;
                    string level = sev >= 0x0080_0000 ? "error" : "warning";
                    string message = i < messages.Count ? messages[i] : "(no message)";
                    problems.Add($"frame {frame}: {level}: {message}");
                    reported = true;
                }
                // A malformed packet always carries an error-level expert item; report it even if it did not.
                if (!reported && layers.TryGetProperty("_ws.malformed", out _))
                    problems.Add($"frame {frame}: error: malformed packet");
            }
        }
        catch (JsonException e)
        {
            problems.Add($"could not parse tshark JSON for {pcapPath}: {e.Message}");
        }
        return problems;
    }

    /// <summary>
    /// <c>tshark -r FILE -T fields -e F1 -e F2 ...</c>: one row per packet, one cell per field (tab-separated), and
    /// tshark's stderr without the running-as-root line. Requires <see cref="Available"/>.
    /// </summary>
    public static (List<string[]> Rows, string Stderr) Fields(string pcapPath, params string[] fields)
    {
        var psi = new ProcessStartInfo(Executable!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-r", pcapPath, "-n", "-T", "fields", "-E", "separator=/t" }) psi.ArgumentList.Add(a);
        foreach (var f in fields)
        {
            psi.ArgumentList.Add("-e");
            psi.ArgumentList.Add(f);
        }
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start tshark");
        var stderrTask = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(Timeout)) process.Kill();
        var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')).ToList();
        return (rows, Meaningful(stderrTask.GetAwaiter().GetResult()));
    }

    private static string? First(JsonElement layers, string field)
        => layers.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0
            ? v[0].GetString()
            : null;

    private static List<string> All(JsonElement layers, string field)
    {
        var list = new List<string>();
        if (layers.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Array)
            foreach (var e in v.EnumerateArray())
                list.Add(e.GetString() ?? "");
        return list;
    }

    // tshark warns on stderr when run as root; that line says nothing about the capture.
    private static string Meaningful(string stderr)
        => string.Join(" | ", stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith("Running as user", StringComparison.Ordinal)));

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            if (dir.Length == 0) continue;
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}
