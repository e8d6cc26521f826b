using System.Runtime.InteropServices;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.State;
using FastPath.Tests.Support;

namespace FastPath.Tests.Conntrack;

/// <summary>
/// `run --state-dir`: a conntrack table on a <see cref="StateFile"/> — its records come back in the next process
/// (round trip, clean and after a crash), every header check discards a file that fails it with one line and starts
/// empty, restored records are checked one by one, and the hot path on mapped records allocates nothing.
/// </summary>
[Collection(AllocationCollection.Name)]
public class ConntrackStateFileTests : IDisposable
{
    private const long Second = 1_000_000_000L;
    private const int Capacity = 1024;
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private string FilePath => _dir.File("conntrack-0.state");

    private static long Wall() => TapPort.WallClock();

    private static FlowKey Client(int i) =>
        new(IpAddr.FromV4(0x0AF4_010Au), IpAddr.FromV4(0x0A60_001Eu), (ushort)(40000 + i), 5201, IpProtocol.Tcp);

    // DNAT to a backend (Service) and SNAT to the node (NodePort): the two kinds the live test restarts under.
    private static FlowKey Backend(int i) =>
        new(IpAddr.FromV4(0x0AF4_020Bu), IpAddr.FromV4(0x0AF4_010Au), 5201, (ushort)(40000 + i), IpProtocol.Tcp);

    private static readonly FlowKey Dns = new(IpAddr.FromV4(0x0AF4_010Au), IpAddr.FromV4(0x0A60_0014u), 5353, 53, IpProtocol.Udp);

    private ConntrackTable Open(out StateFile file, int capacity = Capacity, int worker = 0, int workers = 1, long wallStep = 0)
    {
        file = StateFile.Open(FilePath, ConntrackTable.StateLayout(capacity, worker, workers), Wall() + wallStep);
        return new ConntrackTable(file);
    }

    /// <summary>Writes a table with 10 established DNAT connections and one UDP flow, then leaves the file clean or as a crash would.</summary>
    private long Populate(bool clean)
    {
        File.Delete(FilePath);
        var table = Open(out var file);
        Assert.Null(file.Discarded);
        Assert.False(file.Restored);
        long now = Wall();
        for (int i = 0; i < 10; i++)
        {
            int index = table.Insert(Client(i), Backend(i), now);
            Assert.True(index >= 0);
            table[index].NatKind = 2;
            table[index].NatTag = 77;
            table[index].DecisionOriginal = DataPlane.Pipeline.ForwardingDecision.Of(1, 2, DataPlane.Pipeline.ForwardingDecision.Local, 3);
            table.Observe(index, false, TcpHeader.Syn, 60, now);
            table.Observe(index, true, TcpHeader.Syn | TcpHeader.Ack, 60, now);
            table.Observe(index, false, TcpHeader.Ack, 60, now);
        }
        int udp = table.Insert(Dns, Dns.Reverse(), now);
        table.Observe(udp, false, 0, 80, now);
        if (clean) file.MarkClean(Wall());
        file.Dispose();
        return now;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ConnectionsComeBackInTheNextProcessWithStateTimesAndRewrites(bool clean)
    {
        long written = Populate(clean);
        var table = Open(out var file);
        using (file)
        {
            Assert.Null(file.Discarded);
            Assert.True(file.Restored);
            Assert.Equal(clean, file.WasClean);
            var restore = table.Restore(Wall());
            Assert.Equal(new ConntrackRestore(11, 0, 0), restore);
            Assert.Equal(11, table.Count);
            for (int i = 0; i < 10; i++)
            {
                // Both directions find the connection; its state, expiry and precomputed rewrites are what was written.
                int index = table.Lookup(Backend(i), Wall(), out bool isReply);
                Assert.True(index >= 0 && isReply);
                Assert.Equal(index, table.Lookup(Client(i), Wall(), out isReply));
                Assert.False(isReply);
                ref var e = ref table[index];
                Assert.Equal(ConntrackState.TcpEstablished, e.State);
                Assert.True(e.Assured);
                Assert.InRange(e.Expires - written, ConntrackTimeouts.Default.Nanoseconds(ConntrackState.TcpEstablished) - Second,
                    ConntrackTimeouts.Default.Nanoseconds(ConntrackState.TcpEstablished) + Second);
                DataPlane.Nat.NatRewrite4.ForConnection(Client(i), Backend(i), out var original, out var reply);
                Assert.Equal(original, e.RewriteOriginal);
                Assert.Equal(reply, e.RewriteReply);
                Assert.Equal(3, e.PacketsOriginal + e.PacketsReply);
                // Checked against this process's Services on its next packet: never a version of the old process's.
                Assert.Equal(0, e.NatTag);
                Assert.Equal((byte)2, e.NatKind);
                // Another process's engine decided with its own ports and snapshot: no kept decision survives.
                Assert.Equal(0u, e.DecisionOriginal.Stamp);
            }
            Assert.True(table.Lookup(Dns, Wall(), out _) >= 0);
            // A new connection still gets a free record, and the restored tuples clash.
            Assert.Equal(ConntrackTable.Clash, table.Insert(Client(0), Backend(0), Wall()));
            Assert.True(table.Insert(Client(99), Backend(99), Wall()) >= 0);
        }
    }

    [Fact]
    public void AFileHandedOverToATakeoverIsCheckedRecordByRecordWithoutADataChecksum()
    {
        Populate(clean: false);
        var table = Open(out var file);
        file.MarkHandedOver(Wall());
        table[3].State = ConntrackState.IcmpRequest; // damaged: not a TCP state
        file.Dispose();
        table = Open(out file);
        using (file)
        {
            Assert.Null(file.Discarded);
            Assert.True(file.WasHandedOver);
            Assert.False(file.WasClean);
            Assert.Equal(new ConntrackRestore(10, 0, 1), table.Restore(Wall()));
        }
    }

    [Fact]
    public void ConnectionsThatExpiredWhileNoProcessRanAreNotRestored()
    {
        Populate(clean: true);
        var table = Open(out var file);
        using (file)
        {
            // Two minutes on: the UDP flow (30 s unreplied) has expired, the established TCP ones (24 h) have not.
            var restore = table.Restore(Wall() + 120 * Second);
            Assert.Equal(new ConntrackRestore(10, 1, 0), restore);
            Assert.True(table.Lookup(Dns, Wall(), out _) < 0);
        }
    }

    [Fact]
    public void RecordsThatFailACheckAfterACrashAreDroppedOneByOne()
    {
        Populate(clean: false);
        var table = Open(out var file);
        using (file)
        {
            // As a kill -9 in the middle of a write, or damage, could leave them: a UDP state on a TCP tuple, a
            // Translated bit that the tuples contradict, a status bit nobody sets, an expiry far beyond its state's
            // timeout, and a second record with the same tuples.
            table[0].State = ConntrackState.Replied;
            table[1].Status &= ~ConntrackStatus.Translated;
            table[2].Status |= (ConntrackStatus)128;
            table[3].Expires += 48 * 3600 * Second;
            table[4] = table[5];
            var restore = table.Restore(Wall());
            Assert.Equal(new ConntrackRestore(6, 0, 5), restore);
            Assert.Equal(6, table.Count);
            for (int i = 0; i < 5; i++) Assert.True(table.Lookup(Client(i), Wall(), out _) < 0, $"connection {i}");
            for (int i = 5; i < 10; i++) Assert.True(table.Lookup(Client(i), Wall(), out _) >= 0, $"connection {i}");
            // The dropped records are free again, and only they: capacity minus the six restored fit without an
            // eviction, the next one needs one.
            for (int i = 100; i < 100 + Capacity - 6; i++) Assert.True(table.Insert(Client(i), Backend(i), Wall()) >= 0);
            Assert.Equal(0, table.Evictions);
            Assert.True(table.Insert(Client(2000), Backend(2000), Wall()) >= 0);
            Assert.Equal(1, table.Evictions);
            Assert.Equal(Capacity, table.Count);
        }
    }

    [Fact]
    public void AWallClockStepWhileNoProcessRanMovesTheTimesWithIt()
    {
        long written = Populate(clean: true);
        // The next process reads a wall clock 30 s ahead of CLOCK_BOOTTIME's progress (stepped by NTP, say).
        const long step = 30 * Second;
        var table = Open(out var file, wallStep: step);
        using (file)
        {
            Assert.InRange(file.ClockShift, 29 * Second, 31 * Second);
            Assert.Equal(11, table.Restore(Wall() + step).Restored);
            ref var e = ref table[table.Lookup(Client(0), Wall() + step, out _)];
            Assert.InRange(e.Expires - written - ConntrackTimeouts.Default.Nanoseconds(ConntrackState.TcpEstablished), 29 * Second, 31 * Second);
        }
    }

    public static TheoryData<string, string> HeaderDamage => new()
    {
        { "magic", "not a FastPath state file" },
        { "format", "format version 2, this build reads version 1" },
        { "header-checksum", "header checksum mismatch" },
        { "kind", "holds Affinity records, not Conntrack" },
        { "boot", "written before the last reboot" },
        { "layout-version", "record layout version 99" },
        { "layout-hash", "this build's are" },
        { "record-size", "-byte records with layout" },
        { "clean-flag", "bad clean flag 7" },
    };

    [Theory]
    [MemberData(nameof(HeaderDamage))]
    public void AFileFailingAHeaderCheckIsDiscardedWithOneLineAndTheTableStartsEmpty(string damage, string reason)
    {
        Populate(clean: true);
        EditHeader(h =>
        {
            switch (damage)
            {
                case "magic": h.Value.Magic ^= 1; break;
                case "format": h.Value.FormatVersion = 2; break;
                case "kind": h.Value.Kind = StateKind.Affinity; break;
                case "boot": h.Value.BootId = Guid.NewGuid(); break;
                case "layout-version": h.Value.LayoutVersion = 99; break;
                case "layout-hash": h.Value.Regions[0].LayoutHash ^= 1; break;
                case "record-size": h.Value.Regions[0].RecordSize += 8; break;
                case "clean-flag": h.Value.Clean = 7; break;
            }
        }, fixChecksum: damage != "header-checksum" && damage != "magic" && damage != "format");
        if (damage == "header-checksum") EditHeader(h => h.Value.SavedAt ^= 1, fixChecksum: false);
        AssertDiscarded(reason);
    }

    [Fact]
    public void AChangedRecordAfterACleanShutdownFailsTheDataChecksum()
    {
        Populate(clean: true);
        using (var f = new FileStream(FilePath, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = StateFile.HeaderSize + 20; // inside the first record's original tuple
            int b = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(b ^ 0x40));
        }
        AssertDiscarded("data checksum mismatch after a clean shutdown");
    }

    [Fact]
    public void ATruncatedOrGrownFileIsDiscarded()
    {
        Populate(clean: true);
        using (var f = new FileStream(FilePath, FileMode.Open, FileAccess.ReadWrite)) f.SetLength(f.Length + 4096);
        AssertDiscarded("a file of this geometry has");
        Populate(clean: true);
        using (var f = new FileStream(FilePath, FileMode.Open, FileAccess.ReadWrite)) f.SetLength(100);
        AssertDiscarded("100 bytes, shorter than the 4096-byte header");
    }

    [Fact]
    public void AnotherTableSizeOrWorkerCountIsDiscardedSayingWhich()
    {
        Populate(clean: true);
        var resized = Open(out var file, capacity: 2 * Capacity);
        using (file)
        {
            Assert.Contains($"array 0: {Capacity} records, this run's table has {2 * Capacity}", file.Discarded);
            Assert.Equal(0, resized.Count);
        }
        Populate(clean: true);
        Open(out file, workers: 2).Restore(Wall());
        using (file) Assert.Contains("written by worker 0 of 1, this run has 2 worker(s)", file.Discarded);
    }

    [Fact]
    public void TheLayoutFingerprintFollowsTheRecordsShape()
    {
        ulong entry = StateFile.LayoutHash(typeof(ConntrackEntry));
        Assert.Equal(entry, StateFile.LayoutHash(typeof(ConntrackEntry)));
        Assert.NotEqual(entry, StateFile.LayoutHash(typeof(FlowKey)));
        Assert.NotEqual(StateFile.LayoutHash(typeof(ShapeA)), StateFile.LayoutHash(typeof(ShapeB)));
        Assert.Equal(Marshal.SizeOf<ConntrackEntry>(), ConntrackTable.StateLayout(1, 0, 1).Regions[0].RecordSize);
    }

    private readonly record struct ShapeA(long Expires, int Backend);
    private readonly record struct ShapeB(long Expires, int Backends);

    [Fact]
    public void LookupsAndUpdatesOnMappedRecordsAllocateNothing()
    {
        var table = Open(out var file);
        using (file)
        {
            long now = Wall();
            for (int i = 0; i < 500; i++) table.Insert(Client(i), Backend(i), now);
            var key = Client(7);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int n = 0; n < 1_000_000; n++)
            {
                int index = table.Lookup(key, now, out bool reply);
                table.Observe(index, reply, TcpHeader.Ack, 60, now);
            }
            Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
        }
    }

    private void AssertDiscarded(string reason)
    {
        var table = Open(out var file);
        using (file)
        {
            Assert.NotNull(file.Discarded);
            Assert.Contains(reason, file.Discarded);
            Assert.DoesNotContain('\n', file.Discarded);
            Assert.False(file.Restored);
            Assert.Equal(0, table.Count);
            // Started clean: the records are zeroed, so a sweep finds nothing and every record can be inserted.
            Assert.Equal(0, table.Sweep(Wall(), Capacity));
            for (int i = 0; i < Capacity; i++) Assert.True(table.Insert(Client(i), Backend(i), Wall()) >= 0);
        }
    }

    private void EditHeader(Action<HeaderRef> edit, bool fixChecksum = true)
    {
        byte[] head = new byte[StateFile.HeaderSize];
        using var f = new FileStream(FilePath, FileMode.Open, FileAccess.ReadWrite);
        f.ReadExactly(head);
        var box = new HeaderRef { Value = MemoryMarshal.Read<StateFile.Header>(head) };
        edit(box);
        MemoryMarshal.Write(head, in box.Value);
        if (fixChecksum)
        {
            box.Value.HeaderChecksum = StateFile.Crc(head.AsSpan(0, StateFile.HeaderChecksumOffset));
            MemoryMarshal.Write(head, in box.Value);
        }
        f.Position = 0;
        f.Write(head);
    }

    /// <summary>The header in a box, so an edit lambda changes it in place.</summary>
    private sealed class HeaderRef
    {
        public StateFile.Header Value;
    }
}
