using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// Reads pcap (draft-ietf-opsawg-pcap) and pcapng (draft-ietf-opsawg-pcapng) files record by record into a
/// caller-provided span, normalizing every supported link type to Ethernet. One reusable read buffer over an unbuffered
/// <see cref="FileStream"/>: the per-record path allocates nothing, takes no locks and throws only for a broken file.
/// </summary>
/// <remarks>
/// Not thread-safe; one reader per input. Errors are <see cref="CaptureFormatException"/>s naming the file, the record
/// number and the byte offset.
/// </remarks>
public sealed class CaptureReader : IDisposable
{
    /// <summary>Read buffer size: large sequential reads, and room for any Interface Description Block.</summary>
    public const int DefaultBufferSize = 1 << 20;

    /// <summary>
    /// Largest captured length a pcap record may claim: libpcap's MAXIMUM_SNAPLEN (262144), or the file's snap length
    /// if larger, up to <see cref="MaxBlockLength"/>. Anything above is a corrupt header, not a packet.
    /// </summary>
    private const uint MaxSnapLength = 262144;

    /// <summary>Largest pcapng block we accept; Wireshark refuses blocks above 16 MiB, we allow some slack.</summary>
    private const uint MaxBlockLength = 64u << 20;

    private const uint PcapMagicMicro = 0xA1B2C3D4;
    private const uint PcapMagicNano = 0xA1B23C4D;
    private const uint PcapMagicMicroSwapped = 0xD4C3B2A1;
    private const uint PcapMagicNanoSwapped = 0x4D3CB2A1;
    private const uint ByteOrderMagic = 0x1A2B3C4D;

    // pcapng block types, draft-ietf-opsawg-pcapng §4 and appendix (obsolete Packet Block).
    private const uint SectionHeaderBlock = 0x0A0D0D0A;
    private const uint InterfaceDescriptionBlock = 1;
    private const uint PacketBlock = 2;
    private const uint SimplePacketBlock = 3;
    private const uint EnhancedPacketBlock = 6;

    // Interface Description Block options, draft-ietf-opsawg-pcapng §4.2.
    private const ushort OptEndOfOpt = 0;
    private const ushort OptIfName = 2;
    private const ushort OptIfTsResol = 9;
    private const ushort OptIfTsOffset = 14;

    private const int PcapRecordHeaderLength = 16;

    private readonly FileStream _stream;
    private readonly long _fileLength;
    private readonly byte[] _buffer;
    private readonly byte[] _ethernetScratch = new byte[LinkTypes.EthernetHeaderLength];
    private int _pos;
    private int _end;
    /// <summary>File offset of <c>_buffer[0]</c>.</summary>
    private long _bufferOffset;

    private readonly bool _pcapng;
    private bool _bigEndian;
    private uint _pcapMaxCapturedLength;
    private long _pcapFractionToNs;

    private CaptureInterface[] _interfaces = new CaptureInterface[1];
    private int _interfaceCount;
    /// <summary>Index of the current pcapng section's first interface: interface ids are per section (§4.1).</summary>
    private int _sectionFirstInterface;

    private long _recordsRead;
    private long _lastTimestamp;

    // The header of the next record, parsed but its data not yet consumed (lets the merge peek at timestamps).
    private bool _pending;
    private long _pendingOffset;
    private long _pendingTimestamp;
    private int _pendingCapturedLength;
    private long _pendingOriginalLength;
    private int _pendingInterface;
    /// <summary>Bytes between the end of the packet data and the end of the block: padding, options, trailer.</summary>
    private int _pendingTail;
    private uint _pendingBlockLength;

    /// <summary>Opens <paramref name="path"/> and reads its file header (and, for pcapng, blocks up to the first packet).</summary>
    /// <exception cref="CaptureFormatException">The file is not a readable pcap/pcapng capture.</exception>
    public CaptureReader(string path, int bufferSize = DefaultBufferSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bufferSize, 4096);
        Path = path;
        // bufferSize 0: no FileStream buffer under ours, so every read goes straight into _buffer.
        _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan);
        try
        {
            _fileLength = _stream.Length;
            _buffer = GC.AllocateUninitializedArray<byte>(bufferSize);
            if (!Fill(4))
                Fail(0, 0, _end == 0 ? "empty file, not a pcap or pcapng capture" : "file too short for a pcap or pcapng header");
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(_buffer);
            if (magic == SectionHeaderBlock)
            {
                _pcapng = true;
                ReadSectionHeader(0);
                // Reads the Interface Description Blocks before the first packet so names and link types are known now.
                ParseNextHeader();
            }
            else
            {
                ReadPcapHeader(magic);
            }
        }
        catch
        {
            _stream.Dispose();
            throw;
        }
    }

    public string Path { get; }

    /// <summary>True for pcapng, false for classic pcap.</summary>
    public bool IsPcapNg => _pcapng;

    /// <summary>
    /// pcap: the file uses the nanosecond magic. pcapng: some interface seen so far has a timestamp resolution finer
    /// than a microsecond.
    /// </summary>
    public bool IsNanosecond { get; private set; }

    /// <summary>Interfaces known so far (pcapng: grows as Interface Description Blocks are read; pcap: 1).</summary>
    public int InterfaceCount => _interfaceCount;

    /// <summary>Packet records returned so far.</summary>
    public long RecordsRead => _recordsRead;

    /// <summary>The pcapng if_name of interface <paramref name="index"/>, or null (pcap, or no if_name option).</summary>
    public string? InterfaceName(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_interfaceCount, nameof(index));
        return _interfaces[index].Name;
    }

    /// <summary>The link type of interface <paramref name="index"/> as written in the file (before normalization).</summary>
    public LinkType InterfaceLinkType(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_interfaceCount, nameof(index));
        return _interfaces[index].LinkType;
    }

    /// <summary>
    /// Walks every record of <paramref name="path"/> reading only headers and returns the number of packet records.
    /// </summary>
    /// <exception cref="CaptureFormatException">The file is not readable to its end.</exception>
    public static int Validate(string path)
    {
        using var reader = new CaptureReader(path);
        int count = 0;
        while (reader.TrySkip(out _))
            count++;
        return count;
    }

    /// <summary>
    /// Timestamp of the next record without consuming it; false at the end of the file. Lets a merge of several
    /// captures pick the earliest record and read it straight into its destination.
    /// </summary>
    public bool TryPeekTimestamp(out long timestamp)
    {
        if (!_pending && !ParseNextHeader())
        {
            timestamp = 0;
            return false;
        }
        timestamp = _pendingTimestamp;
        return true;
    }

    /// <summary>
    /// Reads the next record into <paramref name="destination"/> as an Ethernet frame. Returns false at the end of the
    /// file. A frame longer than the span is cut to it, flagged <see cref="CaptureRecord.IsOversize"/>, and skipped over.
    /// </summary>
    public bool TryRead(Span<byte> destination, out CaptureRecord record)
    {
        if (!_pending && !ParseNextHeader())
        {
            record = default;
            return false;
        }
        _pending = false;

        ref readonly CaptureInterface ifc = ref _interfaces[_pendingInterface];
        int captured = _pendingCapturedLength;
        long original = _pendingOriginalLength;
        int written;
        int frameCaptured;
        long frameOriginal;
        bool truncated;

        if (ifc.LinkType == LinkType.Ethernet)
        {
            frameCaptured = captured;
            frameOriginal = original;
            truncated = captured < original;
            written = Math.Min(captured, destination.Length);
            if (!CopyOut(destination[..written]) || !Skip(captured - written))
                FailMidRecord();
        }
        else
        {
            int stripped = LinkTypes.StrippedHeaderLength(ifc.LinkType);
            // Every byte the link header needs is in the buffer before we look at it.
            if (!Fill(Math.Min(captured, Math.Max(stripped, 1))))
                FailMidRecord();
            ushort etherType = NormalizedEtherType(ifc.LinkType, captured);
            int l3Captured = Math.Max(captured - stripped, 0);
            frameCaptured = l3Captured + LinkTypes.EthernetHeaderLength;
            frameOriginal = Math.Max(original - stripped, l3Captured) + LinkTypes.EthernetHeaderLength;
            // A cooked record cut inside its own pseudo-header lost the whole packet.
            truncated = captured < original || captured < stripped;

            Span<byte> ethernet = _ethernetScratch;
            ethernet[..12].Clear();
            BinaryPrimitives.WriteUInt16BigEndian(ethernet[12..], etherType);
            int headerWritten = Math.Min(LinkTypes.EthernetHeaderLength, destination.Length);
            ethernet[..headerWritten].CopyTo(destination);
            int l3Written = Math.Min(l3Captured, destination.Length - headerWritten);
            written = headerWritten + l3Written;
            if (!Skip(Math.Min(stripped, captured)) || !CopyOut(destination.Slice(headerWritten, l3Written)) ||
                !Skip(l3Captured - l3Written))
                FailMidRecord();
        }

        FinishBlock();
        _recordsRead++;
        record = new CaptureRecord(_pendingTimestamp, written, frameCaptured, frameOriginal, _pendingInterface, truncated,
            written < frameCaptured);
        return true;
    }

    /// <summary>
    /// Moves past the next record reading only its header. Lengths in <paramref name="record"/> are as captured (not
    /// normalized) and <see cref="CaptureRecord.Length"/> is 0. False at the end of the file.
    /// </summary>
    public bool TrySkip(out CaptureRecord record)
    {
        if (!_pending && !ParseNextHeader())
        {
            record = default;
            return false;
        }
        _pending = false;
        if (!Skip(_pendingCapturedLength))
            FailMidRecord();
        FinishBlock();
        _recordsRead++;
        record = new CaptureRecord(_pendingTimestamp, 0, _pendingCapturedLength, _pendingOriginalLength, _pendingInterface,
            _pendingCapturedLength < _pendingOriginalLength, false);
        return true;
    }

    public void Dispose() => _stream.Dispose();

    private long Position => _bufferOffset + _pos;

    private long RecordNumber => _recordsRead + 1;

    /// <summary>EtherType for the synthesized Ethernet header; the link header bytes are already buffered.</summary>
    private ushort NormalizedEtherType(LinkType linkType, int captured)
    {
        switch (linkType)
        {
            case LinkType.Ipv4:
                return 0x0800;
            case LinkType.Ipv6:
                return 0x86DD;
            case LinkType.LinuxSll:
                // SLL: packet type, ARPHRD type, address length, 8-byte address, then the protocol (an EtherType).
                return captured >= 16 ? BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(_pos + 14)) : (ushort)0;
            case LinkType.LinuxSll2:
                // SLL2 moved the protocol to the front.
                return captured >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(_pos)) : (ushort)0;
            default:
                // Raw IP: the version nibble says which IP; anything else gets EtherType 0 and is dropped downstream.
                if (captured < 1)
                    return 0;
                return (_buffer[_pos] >> 4) switch { 4 => 0x0800, 6 => 0x86DD, _ => 0 };
        }
    }

    /// <summary>Consumes what follows the packet data: pcapng padding and options, checking the trailing length copy.</summary>
    private void FinishBlock()
    {
        if (!_pcapng)
            return;
        if (!Skip(_pendingTail - 4) || !Fill(4))
            FailMidRecord();
        uint trailer = ReadU32(_pos);
        _pos += 4;
        if (trailer != _pendingBlockLength)
            FailBlock(_pendingOffset, $"block total length {_pendingBlockLength} at the start but {trailer} at the end");
    }

    /// <summary>Parses the next packet record's header into the pending fields; false at a clean end of file.</summary>
    private bool ParseNextHeader()
    {
        return _pcapng ? ParseNextBlock() : ParsePcapRecordHeader();
    }

    private bool ParsePcapRecordHeader()
    {
        long offset = Position;
        if (!Fill(PcapRecordHeaderLength))
        {
            if (_end == _pos)
                return false;
            Fail(RecordNumber, offset, $"file ends inside the 16-byte record header ({_end - _pos} bytes left)");
        }
        uint seconds = ReadU32(_pos);
        uint fraction = ReadU32(_pos + 4);
        uint captured = ReadU32(_pos + 8);
        uint original = ReadU32(_pos + 12);
        if (captured > _pcapMaxCapturedLength)
            Fail(RecordNumber, offset, $"captured length {captured} is larger than the maximum {_pcapMaxCapturedLength}");
        _pos += PcapRecordHeaderLength;
        if (Position + captured > _fileLength)
            FailEndsMidRecord(offset, captured, _fileLength - Position);

        _pendingOffset = offset;
        _pendingTimestamp = seconds * 1_000_000_000L + fraction * _pcapFractionToNs;
        _pendingCapturedLength = (int)captured;
        _pendingOriginalLength = original;
        _pendingInterface = 0;
        _pendingTail = 0;
        _pending = true;
        return true;
    }

    private bool ParseNextBlock()
    {
        while (true)
        {
            long offset = Position;
            if (!Fill(8))
            {
                if (_end == _pos)
                    return false;
                Fail(RecordNumber, offset, $"file ends inside a block header ({_end - _pos} bytes left)");
            }
            uint type = ReadU32(_pos);
            if (type == SectionHeaderBlock)
            {
                ReadSectionHeader(offset);
                continue;
            }
            uint length = ReadU32(_pos + 4);
            CheckBlockLength(offset, type, length);

            switch (type)
            {
                case EnhancedPacketBlock:
                    // §4.3: interface id, timestamp (upper, lower), captured length, original length, data, options.
                    if (!Fill(28))
                        FailMidRecord();
                    SetPendingPacket(offset, length, ReadU32(_pos + 8), ReadU32(_pos + 12), ReadU32(_pos + 16),
                        ReadU32(_pos + 20), ReadU32(_pos + 24), 28);
                    return true;

                case PacketBlock:
                    // Appendix A (obsolete): a 16-bit interface id and a 16-bit drops count, then as the EPB.
                    if (!Fill(28))
                        FailMidRecord();
                    SetPendingPacket(offset, length, ReadU16(_pos + 8), ReadU32(_pos + 12), ReadU32(_pos + 16),
                        ReadU32(_pos + 20), ReadU32(_pos + 24), 28);
                    return true;

                case SimplePacketBlock:
                    ParseSimplePacketBlock(offset, length);
                    return true;

                case InterfaceDescriptionBlock:
                    ReadInterfaceDescription(offset, length);
                    continue;

                default:
                    // Name resolution, statistics, decryption secrets, custom blocks...: nothing the data plane uses.
                    if (!Skip(length))
                        FailMidRecord();
                    continue;
            }
        }
    }

    private void SetPendingPacket(long offset, uint blockLength, uint interfaceId, uint timestampHigh, uint timestampLow,
        uint captured, uint original, int headerLength)
    {
        if (interfaceId >= (uint)(_interfaceCount - _sectionFirstInterface))
            FailBlock(offset, $"interface id {interfaceId} has no Interface Description Block in this section");
        // Captured data (padded to 32 bits) plus the trailing length must fit the block.
        if (captured > blockLength - (uint)headerLength - 4)
            FailBlock(offset, $"captured length {captured} does not fit in a block of {blockLength} bytes");
        int index = _sectionFirstInterface + (int)interfaceId;
        _pendingOffset = offset;
        _pendingTimestamp = _interfaces[index].ToNanoseconds(((ulong)timestampHigh << 32) | timestampLow);
        _lastTimestamp = _pendingTimestamp;
        _pendingCapturedLength = (int)captured;
        _pendingOriginalLength = original;
        _pendingInterface = index;
        _pendingBlockLength = blockLength;
        _pendingTail = (int)(blockLength - (uint)headerLength - captured);
        _pos += headerLength;
        _pending = true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ParseSimplePacketBlock(long offset, uint length)
    {
        // §4.4: only the original length; the packet belongs to the section's first interface and has no timestamp,
        // so it keeps the previous record's time (it stays in place in a merge). Captured = min(original, snaplen, room).
        if (!Fill(12))
            FailMidRecord();
        if (_interfaceCount == _sectionFirstInterface)
            FailBlock(offset, "Simple Packet Block in a section without an Interface Description Block");
        uint original = ReadU32(_pos + 8);
        uint captured = Math.Min(original, length - 16);
        uint snap = _interfaces[_sectionFirstInterface].SnapLength;
        if (snap != 0)
            captured = Math.Min(captured, snap);
        _pendingOffset = offset;
        _pendingTimestamp = _lastTimestamp;
        _pendingCapturedLength = (int)captured;
        _pendingOriginalLength = original;
        _pendingInterface = _sectionFirstInterface;
        _pendingBlockLength = length;
        _pendingTail = (int)(length - 12 - captured);
        _pos += 12;
        _pending = true;
    }

    private void CheckBlockLength(long offset, uint type, uint length)
    {
        uint minimum = type switch
        {
            EnhancedPacketBlock or PacketBlock => 32,
            SimplePacketBlock => 16,
            InterfaceDescriptionBlock => 20,
            _ => 12,
        };
        if (length < minimum || (length & 3) != 0 || length > MaxBlockLength)
            FailBlock(offset, $"block type 0x{type:X} has an impossible total length {length} (minimum {minimum}, a multiple of 4, at most {MaxBlockLength})");
        if (offset + length > _fileLength)
            FailEndsMidRecord(offset, length, _fileLength - offset);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ReadSectionHeader(long offset)
    {
        // §4.1: the byte-order magic tells the endianness of this section and of every block up to the next SHB.
        if (!Fill(16))
            FailBlock(offset, "file ends inside a Section Header Block");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(_pos + 8));
        if (magic == ByteOrderMagic)
            _bigEndian = false;
        else if (BinaryPrimitives.ReverseEndianness(magic) == ByteOrderMagic)
            _bigEndian = true;
        else
            FailBlock(offset, $"Section Header Block has byte-order magic 0x{magic:X8}, expected 0x1A2B3C4D");
        uint length = ReadU32(_pos + 4);
        if (length < 28 || (length & 3) != 0 || length > MaxBlockLength)
            FailBlock(offset, $"Section Header Block has an impossible total length {length}");
        if (offset + length > _fileLength)
            FailEndsMidRecord(offset, length, _fileLength - offset);
        ushort major = ReadU16(_pos + 12);
        if (major != 1)
            FailBlock(offset, $"pcapng version {major}.x is not supported (1.x is)");
        if (!Skip(length))
            FailMidRecord();
        _sectionFirstInterface = _interfaceCount;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ReadInterfaceDescription(long offset, uint length)
    {
        if (length > _buffer.Length)
            FailBlock(offset, $"Interface Description Block of {length} bytes is larger than the {_buffer.Length}-byte read buffer");
        if (!Fill((int)length))
            FailMidRecord();
        int start = _pos;
        int index = _interfaceCount;
        ushort linkType = ReadU16(start + 8);
        uint snapLength = ReadU32(start + 12);
        if (!LinkTypes.IsSupported(linkType))
            FailBlock(offset, $"interface {index - _sectionFirstInterface}: link type {linkType} is not supported (Ethernet, raw IP, Linux cooked SLL/SLL2 are)");

        string? name = null;
        byte resolution = 6;
        long offsetSeconds = 0;
        // §3.5 options: code, length, value padded to 32 bits; opt_endofopt or the block end finishes the list.
        int at = start + 16;
        int optionsEnd = start + (int)length - 4;
        while (at + 4 <= optionsEnd)
        {
            ushort code = ReadU16(at);
            ushort optionLength = ReadU16(at + 2);
            if (code == OptEndOfOpt)
                break;
            int value = at + 4;
            if (value + optionLength > optionsEnd)
                FailBlock(offset, $"interface {index - _sectionFirstInterface}: option {code} of {optionLength} bytes runs past the end of the block");
            switch (code)
            {
                case OptIfName:
                    name = Encoding.UTF8.GetString(_buffer, value, optionLength).TrimEnd('\0');
                    break;
                case OptIfTsResol when optionLength >= 1:
                    resolution = _buffer[value];
                    break;
                case OptIfTsOffset when optionLength >= 8:
                    offsetSeconds = (long)ReadU64(value);
                    break;
            }
            at = value + ((optionLength + 3) & ~3);
        }

        var ifc = new CaptureInterface(name, (LinkType)linkType, snapLength, offsetSeconds);
        if (!ifc.SetResolution(resolution))
            FailBlock(offset, $"interface {index - _sectionFirstInterface}: if_tsresol 0x{resolution:X2} is finer than the 64-bit timestamp can count");
        if (ifc.IsFinerThanMicrosecond)
            IsNanosecond = true;
        if (_interfaceCount == _interfaces.Length)
            Array.Resize(ref _interfaces, _interfaces.Length * 2);
        _interfaces[_interfaceCount++] = ifc;
        _pos += (int)length;
    }

    private void ReadPcapHeader(uint magic)
    {
        // draft-ietf-opsawg-pcap §4: magic, version 2.4, reserved, snap length, link type.
        switch (magic)
        {
            case PcapMagicMicro: _bigEndian = false; _pcapFractionToNs = 1000; break;
            case PcapMagicNano: _bigEndian = false; _pcapFractionToNs = 1; break;
            case PcapMagicMicroSwapped: _bigEndian = true; _pcapFractionToNs = 1000; break;
            case PcapMagicNanoSwapped: _bigEndian = true; _pcapFractionToNs = 1; break;
            default:
                Fail(0, 0, $"not a pcap or pcapng capture (magic 0x{BinaryPrimitives.ReverseEndianness(magic):X8})");
                break;
        }
        IsNanosecond = _pcapFractionToNs == 1;
        if (!Fill(24))
            Fail(0, 0, $"file ends inside the 24-byte pcap header ({_end - _pos} bytes)");
        ushort major = ReadU16(4);
        if (major != 2)
            Fail(0, 0, $"pcap version {major}.{ReadU16(6)} is not supported (2.4 is)");
        uint snapLength = ReadU32(16);
        // §4: the upper bits of the link-type field carry FCS information; the link type is the low 16 bits.
        uint linkType = ReadU32(20) & 0xFFFF;
        if (!LinkTypes.IsSupported(linkType))
            Fail(0, 0, $"link type {linkType} is not supported (Ethernet, raw IP, Linux cooked SLL/SLL2 are)");
        _pcapMaxCapturedLength = Math.Max(MaxSnapLength, Math.Min(snapLength, MaxBlockLength));
        _interfaces[0] = new CaptureInterface(null, (LinkType)linkType, snapLength, 0);
        _interfaceCount = 1;
        _pos = 24;
    }

    // ---- buffer ----

    /// <summary>Makes at least <paramref name="count"/> bytes available at <c>_pos</c>; false if the file ends first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Fill(int count) => _end - _pos >= count || FillSlow(count);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FillSlow(int count)
    {
        int remaining = _end - _pos;
        if (_pos > 0)
        {
            Buffer.BlockCopy(_buffer, _pos, _buffer, 0, remaining);
            _bufferOffset += _pos;
            _pos = 0;
            _end = remaining;
        }
        while (_end < count)
        {
            int read = _stream.Read(_buffer, _end, _buffer.Length - _end);
            if (read == 0)
                return false;
            _end += read;
        }
        return true;
    }

    /// <summary>Copies the next <c>destination.Length</c> bytes of the file; false if the file ends first.</summary>
    private bool CopyOut(Span<byte> destination)
    {
        int available = _end - _pos;
        if (destination.Length <= available)
        {
            _buffer.AsSpan(_pos, destination.Length).CopyTo(destination);
            _pos += destination.Length;
            return true;
        }
        return CopyOutSlow(destination);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool CopyOutSlow(Span<byte> destination)
    {
        while (destination.Length > 0)
        {
            if (_pos == _end && !FillSlow(1))
                return false;
            int chunk = Math.Min(destination.Length, _end - _pos);
            _buffer.AsSpan(_pos, chunk).CopyTo(destination);
            _pos += chunk;
            destination = destination[chunk..];
        }
        return true;
    }

    /// <summary>Moves <paramref name="count"/> bytes forward, seeking past what is not buffered; false past the end.</summary>
    private bool Skip(long count)
    {
        int available = _end - _pos;
        if (count <= available)
        {
            _pos += (int)count;
            return true;
        }
        long target = Position + count;
        if (target > _fileLength)
            return false;
        _stream.Seek(target, SeekOrigin.Begin);
        _bufferOffset = target;
        _pos = 0;
        _end = 0;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint ReadU32(int at) => _bigEndian
        ? BinaryPrimitives.ReadUInt32BigEndian(_buffer.AsSpan(at))
        : BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(at));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ushort ReadU16(int at) => _bigEndian
        ? BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(at))
        : BinaryPrimitives.ReadUInt16LittleEndian(_buffer.AsSpan(at));

    private ulong ReadU64(int at) => _bigEndian
        ? BinaryPrimitives.ReadUInt64BigEndian(_buffer.AsSpan(at))
        : BinaryPrimitives.ReadUInt64LittleEndian(_buffer.AsSpan(at));

    // ---- errors (cold; the message is formatted only when thrown) ----

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private void Fail(long recordNumber, long offset, string problem) =>
        throw new CaptureFormatException(Path, recordNumber, offset, problem);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private void FailBlock(long offset, string problem) => Fail(RecordNumber, offset, problem);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private void FailMidRecord() =>
        Fail(RecordNumber, _pendingOffset, $"file ends mid-record at byte {_fileLength}");

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private void FailEndsMidRecord(long offset, long needed, long remaining) =>
        Fail(RecordNumber, offset, $"file ends mid-record: {needed} bytes needed, {remaining} left");
}
