using System.Globalization;
using System.Text;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Live;

/// <summary>
/// The periodic line `fastpath run` prints: snapshot generation, ports, receive/transmit rates, drops per reason
/// since the last line and transmit errors. Read on the forwarding thread, so the counters need no synchronisation.
/// </summary>
public sealed class StatusLine(TextWriter output, TimeSpan interval)
{
    private readonly long[] _lastDrops = new long[DropReasons.Count];
    private long _lastRx, _lastTx, _lastTxErrors;
    private PortCounters? _lastCounters;
    private TimeSpan _lastAt;

    /// <summary>Prints a line when <paramref name="interval"/> has passed since the previous one.</summary>
    public void Report(TimeSpan now, ForwardingSnapshot snapshot, PortCounters counters, TapPort taps, bool force = false)
    {
        if (!force && now - _lastAt < interval) return;
        double seconds = Math.Max((now - _lastAt).TotalSeconds, 1e-3);
        _lastAt = now;
        // The engine starts new counters when the port set changes: count from zero then.
        if (!ReferenceEquals(counters, _lastCounters))
        {
            _lastCounters = counters;
            _lastRx = _lastTx = 0;
            Array.Clear(_lastDrops);
        }
        long rx = 0, tx = 0;
        for (int p = 0; p < counters.PortCount; p++)
        {
            rx += counters.RxPackets(p);
            tx += counters.TxPackets(p);
        }
        var ci = CultureInfo.InvariantCulture;
        var line = new StringBuilder();
        line.Append(ci, $"status: generation {snapshot.Generation}, {snapshot.PortCount} ports, rx {(rx - _lastRx) / seconds:N0} pkt/s, tx {(tx - _lastTx) / seconds:N0} pkt/s");
        line.Append(ci, $" (total rx {rx:N0}, tx {tx:N0}), drops");
        long dropped = 0;
        for (int r = 1; r < DropReasons.Count; r++)
        {
            long n = counters.Drops((DropReason)r);
            if (n - _lastDrops[r] > 0) line.Append(ci, $" {DropReasons.Name((DropReason)r)}={n - _lastDrops[r]}");
            dropped += n - _lastDrops[r];
            _lastDrops[r] = n;
        }
        if (dropped == 0) line.Append(" 0");
        line.Append(ci, $", tx errors {taps.TransmitErrors - _lastTxErrors}");
        if (taps.FailedDevices > 0) line.Append(ci, $", {taps.FailedDevices} TAP device(s) gone");
        _lastRx = rx;
        _lastTx = tx;
        _lastTxErrors = taps.TransmitErrors;
        output.WriteLine(line.ToString());
    }
}
