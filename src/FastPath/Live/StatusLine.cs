using System.Globalization;
using System.Text;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Live;

/// <summary>
/// The periodic line `fastpath run` prints: snapshot generation, ports, receive/transmit rates, drops per reason
/// since the last line, transmit errors and super-frames cut in software, and the frames sent so far per kind of port
/// without a copy by FastPath (AF_XDP to AF_XDP by descriptor) and copied, summed over the workers. Read from the
/// coordinator thread while the workers count: figures, not a consistent cut.
/// </summary>
public sealed class StatusLine(TextWriter output, TimeSpan interval)
{
    private readonly long[] _lastDrops = new long[DropReasons.Count];
    private readonly long[] _drops = new long[DropReasons.Count];
    private long _lastRx, _lastTx, _lastTxErrors;
    private PortCounters?[] _lastCounters = [];
    private TimeSpan _lastAt;

    /// <summary>Prints a line when <paramref name="interval"/> has passed since the previous one.</summary>
    /// <param name="attachedSkipped">Frames attached interfaces skipped so far (partial checksums that cannot be
    /// placed, frames larger than a slot): counted, shown when there are any.</param>
    /// <param name="handOverDrops">Packets a worker could not hand to the worker tracking their connection (its lane
    /// was full) so far: counted, shown when there are any.</param>
    public void Report(TimeSpan now, ForwardingSnapshot snapshot, IReadOnlyList<Engine> workers, IReadOnlyList<TapPort> taps, bool force = false,
        long attachedSkipped = 0, long handOverDrops = 0)
    {
        if (!force && now - _lastAt < interval) return;
        double seconds = Math.Max((now - _lastAt).TotalSeconds, 1e-3);
        _lastAt = now;
        // An engine starts new counters when the port set changes: count from zero then.
        bool renewed = _lastCounters.Length != workers.Count;
        for (int w = 0; w < workers.Count && !renewed; w++) renewed = !ReferenceEquals(workers[w].Counters, _lastCounters[w]);
        if (renewed)
        {
            _lastCounters = workers.Select(e => (PortCounters?)e.Counters).ToArray();
            _lastRx = _lastTx = 0;
            Array.Clear(_lastDrops);
        }
        long rx = 0, tx = 0;
        Array.Clear(_drops);
        foreach (var engine in workers)
        {
            var counters = engine.Counters;
            for (int p = 0; p < counters.PortCount; p++)
            {
                rx += counters.RxPackets(p);
                tx += counters.TxPackets(p);
            }
            for (int r = 1; r < DropReasons.Count; r++) _drops[r] += counters.Drops((DropReason)r);
        }
        var ci = CultureInfo.InvariantCulture;
        var line = new StringBuilder();
        line.Append(ci, $"status: generation {snapshot.Generation}, {snapshot.PortCount} ports, rx {(rx - _lastRx) / seconds:N0} pkt/s, tx {(tx - _lastTx) / seconds:N0} pkt/s");
        line.Append(ci, $" (total rx {rx:N0}, tx {tx:N0}), drops");
        long dropped = 0;
        for (int r = 1; r < DropReasons.Count; r++)
        {
            long n = _drops[r];
            if (n - _lastDrops[r] > 0) line.Append(ci, $" {DropReasons.Name((DropReason)r)}={n - _lastDrops[r]}");
            dropped += n - _lastDrops[r];
            _lastDrops[r] = n;
        }
        if (dropped == 0) line.Append(" 0");
        long txErrors = taps.Sum(t => t.TransmitErrors);
        line.Append(ci, $", tx errors {txErrors - _lastTxErrors}");
        AppendCopies(line, ci, taps);
        long superFrames = taps.Sum(t => t.SuperFramesReceived);
        if (superFrames > 0) line.Append(ci, $", super-frames rx {superFrames:N0}");
        long segmented = taps.Sum(t => t.SoftwareSegmented);
        if (segmented > 0) line.Append(ci, $", super-frames segmented in software {segmented:N0}");
        if (attachedSkipped > 0) line.Append(ci, $", attached frames skipped {attachedSkipped:N0}");
        if (handOverDrops > 0) line.Append(ci, $", dropped at a full hand-over lane {handOverDrops:N0}");
        int failed = taps.Max(t => t.FailedDevices);
        if (failed > 0) line.Append(ci, $", {failed} TAP device(s) gone");
        _lastRx = rx;
        _lastTx = tx;
        _lastTxErrors = txErrors;
        output.WriteLine(line.ToString());
    }

    /// <summary>", tx without copy xdp=N, copied tap=N packet=N …": totals, kinds with none left out.</summary>
    private static void AppendCopies(StringBuilder line, CultureInfo ci, IReadOnlyList<TapPort> taps)
    {
        foreach (var (label, copied) in new[] { (", tx without copy", false), (", copied", true) })
        {
            bool any = false;
            foreach (var kind in Enum.GetValues<LinkKind>())
            {
                long n = taps.Sum(t => copied ? t.TransmittedCopied(kind) : t.TransmittedWithoutCopy(kind));
                if (n == 0) continue;
                line.Append(any ? " " : label + " ").Append(ci, $"{kind.ToString().ToLowerInvariant()}={n}");
                any = true;
            }
        }
    }
}
