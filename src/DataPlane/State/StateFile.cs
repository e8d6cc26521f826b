using System.IO.MemoryMappedFiles;
using System.Numerics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastPath.DataPlane.State;

/// <summary>What a state file's records are.</summary>
public enum StateKind : uint
{
    Conntrack = 1,
    Affinity = 2,
}

/// <summary>One array of records a table keeps in a state file: its record type's size and layout fingerprint, and its length.</summary>
public readonly record struct StateRegion(int RecordSize, long Count, ulong LayoutHash)
{
    /// <summary>The region of <paramref name="count"/> records of <typeparamref name="T"/>.</summary>
    public static StateRegion Of<T>(long count) where T : unmanaged => new(Unsafe.SizeOf<T>(), count, StateFile.LayoutHash(typeof(T)));
}

/// <summary>
/// What a table stores: its kind, its own layout version (bumped by hand when a record's meaning changes without its
/// shape), its arrays, and which of how many workers it belongs to.
/// </summary>
public sealed record StateLayout(StateKind Kind, uint LayoutVersion, StateRegion[] Regions, int Worker, int Workers);

/// <summary>
/// A table's arrays of blittable records kept in a memory-mapped file, so the next `fastpath run` on the node finds
/// the connections of the one before it (Cilium keeps its conntrack in pinned BPF maps for the same reason: an agent
/// restart must not break a NATed connection). The live process works on the mapped records directly — nothing is
/// copied per packet and nothing is written out — so even a `kill -9` leaves the records of the last packet in the
/// file (the page cache holds them; on tmpfs, /run, there is nothing else).
/// </summary>
/// <remarks>
/// <para>
/// <b>Format.</b> A 4096-byte header, then each region's records, each region starting on a 4096-byte boundary. The
/// header says what the records are — magic, format version, kind, the table's layout version, each region's record
/// size, count and layout fingerprint (<see cref="LayoutHash"/>: field names and types, recursively, and the size), the
/// worker and worker count, the boot it was written in (/proc/sys/kernel/random/boot_id) and the offset between the
/// wall clock the records' times use and CLOCK_BOOTTIME — and carries its own CRC32C. A clean close (<see cref="MarkClean"/>) sets
/// <c>Clean</c> to 1 and a CRC32C over every region, a hand-over to `run --takeover` sets it to 2 without one
/// (<see cref="MarkHandedOver"/>); opening clears it again, so a file whose process died is recognised as
/// such and its records are checked one by one by the table (<c>ConntrackTable.Restore</c>).
/// </para>
/// <para>
/// <b>Trust.</b> A file that fails any check is never used: <see cref="Open"/> says why in one line
/// (<see cref="Discarded"/>) and starts from zeroed records. A layout change (issue 16's hot/cold split of the
/// conntrack record, a field added) changes the fingerprint, so an old file is discarded rather than misread.
/// </para>
/// <para>
/// <b>Clock.</b> Live record times are wall-clock nanoseconds (the engine's clock). The header keeps wall − boottime
/// as of the last open or close; <see cref="ClockShift"/> is how far the wall clock moved against CLOCK_BOOTTIME
/// since, which the table adds to every time it restores, so a connection keeps the remaining lifetime it had even if
/// the clock was stepped while no process ran.
/// </para>
/// </remarks>
public sealed unsafe partial class StateFile : IDisposable
{
    /// <summary>"FPSTATE" and a zero byte, little-endian.</summary>
    public const ulong Magic = 0x0045_5441_5453_5046UL;
    public const uint FormatVersion = 1;
    public const int HeaderSize = 4096;
    public const int MaxRegions = 8;

    [StructLayout(LayoutKind.Sequential)]
    internal struct Header
    {
        public ulong Magic;
        public uint FormatVersion;
        public StateKind Kind;
        public uint LayoutVersion;
        public int RegionCount;
        public int Worker;
        public int Workers;
        public Guid BootId;
        /// <summary>Wall clock − CLOCK_BOOTTIME, ns, when the records' times were last in step with the wall clock.</summary>
        public long ClockOffset;
        /// <summary>Wall clock at the last clean close.</summary>
        public long SavedAt;
        public uint Clean;
        public uint DataChecksum;
        public Regions Regions;
        /// <summary>CRC32C of the header's bytes before this field.</summary>
        public uint HeaderChecksum;
    }

    [InlineArray(MaxRegions)]
    internal struct Regions
    {
        private RegionHeader _first;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct RegionHeader
    {
        public long Count;
        public long Offset;
        public ulong LayoutHash;
        public int RecordSize;
        public int Reserved;
    }

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly long _length;
    private bool _closed;

    private StateFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long length)
    {
        Path = path;
        _map = map;
        _view = view;
        _length = length;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + view.PointerOffset;
    }

    public string Path { get; }

    /// <summary>The file held records of a previous process that passed every check of the header.</summary>
    public bool Restored { get; private set; }

    /// <summary>The previous process closed it cleanly (its data checksum matched); false after a crash or kill -9.</summary>
    public bool WasClean { get; private set; }

    /// <summary>The previous process handed the file over to a `run --takeover` (<see cref="MarkHandedOver"/>).</summary>
    public bool WasHandedOver { get; private set; }

    /// <summary>Why an existing file was not used (one line), or null.</summary>
    public string? Discarded { get; private set; }

    /// <summary>Nanoseconds to add to restored wall-clock times (the wall clock's step against CLOCK_BOOTTIME while no process ran).</summary>
    public long ClockShift { get; private set; }

    private ref Header Head => ref *(Header*)_base;

    /// <summary>Records in region <paramref name="region"/>.</summary>
    public long Records(int region) => Head.Regions[region].Count;

    /// <summary>The records of region <paramref name="region"/> (page-aligned, zeroed when the file is new).</summary>
    public void* Region(int region) => _base + Head.Regions[region].Offset;

    /// <summary>
    /// Maps the state file at <paramref name="path"/> for <paramref name="layout"/>: the previous process's records when
    /// the file passes every check (<see cref="Restored"/>), else zeroed records in a new file (<see cref="Discarded"/>
    /// says why an existing one was not used). The file is marked in use (not clean) until <see cref="Close"/>.
    /// </summary>
    /// <exception cref="IOException">The file cannot be created or mapped.</exception>
    public static StateFile Open(string path, StateLayout layout, long wallNow)
    {
        if (layout.Regions.Length is < 1 or > MaxRegions) throw new ArgumentException($"a state file holds 1 to {MaxRegions} regions");
        var offsets = new long[layout.Regions.Length];
        long length = HeaderSize;
        for (int r = 0; r < layout.Regions.Length; r++)
        {
            offsets[r] = length;
            length = (length + (long)layout.Regions[r].RecordSize * layout.Regions[r].Count + 4095) & ~4095L;
        }
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        string? problem = null;
        bool existed = File.Exists(path);
        if (existed) problem = Check(path, layout, length);
        if (problem is not null || !existed)
        {
            File.Delete(path);
            using var create = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
            create.SetLength(length);
        }
        var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        var map = MemoryMappedFile.CreateFromFile(stream, null, length, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
        var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.ReadWrite);
        var file = new StateFile(path, map, view, length) { Discarded = problem };
        ref Header h = ref file.Head;
        long offset = wallNow - BootTime();
        // A cleanly closed file's records are checked against its data checksum in place, on the mapping (no copy).
        if (existed && problem is null && h.Clean == 1 && Crc(file._base + HeaderSize, length - HeaderSize) != h.DataChecksum)
        {
            problem = file.Discarded = "data checksum mismatch after a clean shutdown (the records were changed or damaged)";
            new Span<byte>(file._base, HeaderSize).Clear();
            for (long at = HeaderSize; at < length; at += 1 << 30)
                new Span<byte>(file._base + at, (int)Math.Min(1 << 30, length - at)).Clear();
        }
        if (existed && problem is null)
        {
            file.Restored = true;
            file.WasClean = h.Clean == 1;
            file.WasHandedOver = h.Clean == HandedOver;
            file.ClockShift = offset - h.ClockOffset;
        }
        else
        {
            h = default;
            h.Magic = Magic;
            h.FormatVersion = FormatVersion;
            h.Kind = layout.Kind;
            h.LayoutVersion = layout.LayoutVersion;
            h.RegionCount = layout.Regions.Length;
            h.Worker = layout.Worker;
            h.Workers = layout.Workers;
            h.BootId = BootId();
            for (int r = 0; r < layout.Regions.Length; r++)
                h.Regions[r] = new RegionHeader
                {
                    Count = layout.Regions[r].Count, Offset = offsets[r], LayoutHash = layout.Regions[r].LayoutHash,
                    RecordSize = layout.Regions[r].RecordSize,
                };
        }
        // In use from here on: a process that dies leaves Clean = 0, and the next one checks record by record.
        h.Clean = 0;
        h.DataChecksum = 0;
        h.ClockOffset = offset;
        h.HeaderChecksum = Crc(file._base, HeaderChecksumOffset);
        return file;
    }

    internal static int HeaderChecksumOffset => (int)Marshal.OffsetOf<Header>(nameof(Header.HeaderChecksum));

    /// <summary>The reason the file at <paramref name="path"/> cannot serve <paramref name="layout"/>, or null.</summary>
    private static string? Check(string path, StateLayout layout, long expectedLength)
    {
        byte[] head = new byte[HeaderSize];
        long fileLength;
        using (var read = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            fileLength = read.Length;
            if (fileLength < HeaderSize) return $"{fileLength} bytes, shorter than the {HeaderSize}-byte header";
            read.ReadExactly(head);
        }
        fixed (byte* p = head)
        {
            ref Header h = ref *(Header*)p;
            if (h.Magic != Magic) return "not a FastPath state file (bad magic)";
            if (h.FormatVersion != FormatVersion) return $"format version {h.FormatVersion}, this build reads version {FormatVersion}";
            if (Crc(head.AsSpan(0, HeaderChecksumOffset)) != h.HeaderChecksum) return "header checksum mismatch (the file is damaged)";
            if (h.Kind != layout.Kind) return $"holds {h.Kind} records, not {layout.Kind}";
            if (h.BootId != BootId()) return "written before the last reboot (boot id differs)";
            if (h.Workers != layout.Workers || h.Worker != layout.Worker)
                return $"written by worker {h.Worker} of {h.Workers}, this run has {layout.Workers} worker(s) (--workers changed; connections are not redistributed)";
            if (h.LayoutVersion != layout.LayoutVersion || h.RegionCount != layout.Regions.Length)
                return $"record layout version {h.LayoutVersion} with {h.RegionCount} array(s), this build has version {layout.LayoutVersion} with {layout.Regions.Length}";
            for (int r = 0; r < layout.Regions.Length; r++)
            {
                var want = layout.Regions[r];
                var have = h.Regions[r];
                if (have.RecordSize != want.RecordSize || have.LayoutHash != want.LayoutHash)
                    return $"array {r}: {have.RecordSize}-byte records with layout {have.LayoutHash:x16}, this build's are {want.RecordSize} bytes with layout {want.LayoutHash:x16}";
                if (have.Count != want.Count)
                    return $"array {r}: {have.Count} records, this run's table has {want.Count} (its size changed)";
            }
            if (fileLength != expectedLength) return $"{fileLength} bytes, a file of this geometry has {expectedLength}";
            if (h.Clean > HandedOver) return $"bad clean flag {h.Clean}";
        }
        return null;
    }

    /// <summary>
    /// Marks the file cleanly closed: the data checksum over every region, the wall clock's offset, the time. Call only
    /// once no thread writes the records any more; the mapping stays readable until <see cref="Dispose"/>.
    /// </summary>
    public void MarkClean(long wallNow)
    {
        if (_closed) return;
        ref Header h = ref Head;
        h.DataChecksum = Crc(_base + HeaderSize, _length - HeaderSize);
        h.ClockOffset = wallNow - BootTime();
        h.SavedAt = wallNow;
        h.Clean = 1;
        h.HeaderChecksum = Crc(_base, HeaderChecksumOffset);
        _view.Flush();
    }

    /// <summary><c>Clean</c> of a file handed straight to a `run --takeover`: no data checksum.</summary>
    private const uint HandedOver = 2;

    /// <summary>
    /// Marks the file handed over to a `run --takeover` that maps it next: its header (clock offset, time) is brought up
    /// to date but no data checksum is computed — the file is not left at rest, and the taking process checks every
    /// record on its own anyway (as after a crash), so the checksum's two passes over every record would only lengthen
    /// the forwarding gap.
    /// </summary>
    public void MarkHandedOver(long wallNow)
    {
        if (_closed) return;
        ref Header h = ref Head;
        h.DataChecksum = 0;
        h.ClockOffset = wallNow - BootTime();
        h.SavedAt = wallNow;
        h.Clean = HandedOver;
        h.HeaderChecksum = Crc(_base, HeaderChecksumOffset);
    }

    /// <summary>Unmaps without marking the file clean (as a crash would leave it).</summary>
    public void Dispose()
    {
        if (_closed) return;
        _closed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    /// <summary>CRC32C of <paramref name="data"/>.</summary>
    internal static uint Crc(ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data) return Crc(p, data.Length);
    }

    /// <summary>CRC32C (the CPU's crc32 instruction, 8 bytes a step). Optimized at first call: it runs once per start, over the whole file.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static uint Crc(byte* data, long length, uint crc = 0)
    {
        crc = ~crc;
        long i = 0;
        for (; i + 8 <= length; i += 8) crc = BitOperations.Crc32C(crc, Unsafe.ReadUnaligned<ulong>(data + i));
        for (; i < length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return ~crc;
    }

    /// <summary>
    /// A fingerprint of <paramref name="type"/>'s layout: its size and, in declaration order, every instance field's
    /// name and type, recursively into struct fields. Any change to a record's shape changes it.
    /// </summary>
    public static ulong LayoutHash(Type type)
    {
        ulong hash = 0xCBF2_9CE4_8422_2325UL;
        void Mix(string text)
        {
            foreach (char c in text) hash = (hash ^ c) * 0x0000_0100_0000_01B3UL;
            hash = (hash ^ ';') * 0x0000_0100_0000_01B3UL;
        }
        void Walk(Type t, int depth)
        {
            Mix(t.FullName ?? t.Name);
            if (t.IsEnum) Mix(Enum.GetUnderlyingType(t).Name);
            if (t.IsPrimitive || t.IsEnum || depth > 8) return;
            foreach (var f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic).OrderBy(f => f.MetadataToken))
            {
                Mix(f.Name);
                Walk(f.FieldType, depth + 1);
            }
        }
        Walk(type, 0);
        Mix(((int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(type).Invoke(null, null)!).ToString());
        return hash;
    }

    /// <summary>CLOCK_BOOTTIME in nanoseconds: monotonic, counts suspend, and shared by every process of this boot.</summary>
    public static long BootTime()
    {
        TimeSpec t;
        if (ClockGetTime(ClockBootTime, &t) != 0) return 0;
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }

    private static Guid? s_bootId;

    /// <summary>This boot's id (/proc/sys/kernel/random/boot_id); empty where there is none.</summary>
    public static Guid BootId() => s_bootId ??= File.Exists("/proc/sys/kernel/random/boot_id")
        && Guid.TryParse(File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(), out var id) ? id : Guid.Empty;

    private const int ClockBootTime = 7; // <linux/time.h>

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, TimeSpec* time);
}
