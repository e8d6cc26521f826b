using System.Buffers.Binary;
using System.Text;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// Writes a pcapng file (draft-ietf-opsawg-pcapng): one Section Header Block, an Interface Description Block per
/// interface (Ethernet, <c>if_name</c>, <c>if_tsresol</c> = 10^-9 so capture-clock nanoseconds survive) that may be
/// added at any point (§4.2: an IDB precedes the packets that name it), and Enhanced Packet Blocks that can carry an
/// <c>opt_comment</c> (§3.5.1), which Wireshark shows as <c>frame.comment</c>. Blocks go into one reusable buffer, so
/// <see cref="Write"/> allocates nothing.
/// </summary>
public sealed class PcapngWriter : IDisposable
{
    private const uint SectionHeaderType = 0x0A0D0D0A;
    private const uint InterfaceDescriptionType = 1;
    private const uint EnhancedPacketType = 6;
    private const ushort OptEndOfOpt = 0, OptComment = 1, IfName = 2, IfTsresol = 9;
    private const int DefaultBufferSize = 1 << 20;

    /// <summary>Longest comment written; longer ones are cut (comments here are one line of verdict).</summary>
    public const int MaxCommentLength = 1024;

    private readonly Stream _stream;
    private readonly byte[] _buffer;
    private int _used;
    private bool _disposed;

    /// <summary>Creates (or overwrites) <paramref name="path"/> and writes the section header.</summary>
    public PcapngWriter(string path)
        : this(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 0))
    {
    }

    public PcapngWriter(Stream stream)
    {
        _stream = stream;
        _buffer = GC.AllocateUninitializedArray<byte>(DefaultBufferSize);
        // SHB: byte-order magic, version 1.0, section length unknown (-1), no options.
        var body = _buffer.AsSpan(8);
        BinaryPrimitives.WriteUInt32LittleEndian(body, 0x1A2B3C4D);
        BinaryPrimitives.WriteUInt16LittleEndian(body[4..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(body[6..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(body[8..], -1);
        Close(SectionHeaderType, 16);
    }

    /// <summary>Interfaces described so far.</summary>
    public int InterfaceCount { get; private set; }

    /// <summary>Packets written so far.</summary>
    public long PacketCount { get; private set; }

    /// <summary>Describes an Ethernet interface named <paramref name="name"/>; returns its interface id.</summary>
    public int AddInterface(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int nameLength = Encoding.UTF8.GetByteCount(name);
        Reserve(8 + 8 + Padded(4 + nameLength) + 8 + 4 + 4);
        var body = _buffer.AsSpan(_used + 8);
        BinaryPrimitives.WriteUInt16LittleEndian(body, (ushort)LinkType.Ethernet);
        BinaryPrimitives.WriteUInt16LittleEndian(body[2..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], PcapWriter.SnapLength);
        int n = 8;
        n += Option(body[n..], IfName, Encoding.UTF8.GetBytes(name, body[(n + 4)..]));
        body[n + 4] = 9; // if_tsresol: 10^-9 s
        n += Option(body[n..], IfTsresol, 1);
        n += Option(body[n..], OptEndOfOpt, 0);
        Close(InterfaceDescriptionType, n);
        return InterfaceCount++;
    }

    /// <summary>
    /// Appends one Ethernet frame on interface <paramref name="interfaceId"/>, stamped <paramref name="timestampNs"/>
    /// (nanoseconds since the Unix epoch), with an optional UTF-8 comment.
    /// </summary>
    public void Write(int interfaceId, ReadOnlySpan<byte> frame, long timestampNs, ReadOnlySpan<byte> comment = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((uint)interfaceId >= (uint)InterfaceCount) throw new ArgumentOutOfRangeException(nameof(interfaceId));
        int captured = Math.Min(frame.Length, PcapWriter.SnapLength);
        if (comment.Length > MaxCommentLength) comment = comment[..MaxCommentLength];
        Reserve(8 + 20 + Padded(captured) + (comment.IsEmpty ? 0 : Padded(4 + comment.Length) + 4) + 4);
        var body = _buffer.AsSpan(_used + 8);
        ulong ts = (ulong)timestampNs;
        BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)interfaceId);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], (uint)(ts >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(body[8..], (uint)ts);
        BinaryPrimitives.WriteUInt32LittleEndian(body[12..], (uint)captured);
        BinaryPrimitives.WriteUInt32LittleEndian(body[16..], (uint)frame.Length);
        frame[..captured].CopyTo(body[20..]);
        int n = 20 + Padded(captured);
        body[(20 + captured)..n].Clear();
        if (!comment.IsEmpty)
        {
            comment.CopyTo(body[(n + 4)..]);
            n += Option(body[n..], OptComment, comment.Length);
            n += Option(body[n..], OptEndOfOpt, 0);
        }
        Close(EnhancedPacketType, n);
        PacketCount++;
    }

    /// <summary>Writes buffered blocks to the file.</summary>
    public void Flush()
    {
        FlushBuffer();
        _stream.Flush();
    }

    public void Dispose()
    {
        if (_disposed) return;
        Flush();
        _disposed = true;
        _stream.Dispose();
    }

    private static int Padded(int length) => (length + 3) & ~3;

    /// <summary>Writes an option header for a value already placed after it and pads the value; returns its size.</summary>
    private static int Option(Span<byte> at, ushort code, int valueLength)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(at, code);
        BinaryPrimitives.WriteUInt16LittleEndian(at[2..], (ushort)valueLength);
        int size = 4 + Padded(valueLength);
        at[(4 + valueLength)..size].Clear();
        return size;
    }

    /// <summary>Frames the block whose body (<paramref name="bodyLength"/> bytes) is at _used + 8: type, length, body, length.</summary>
    private void Close(uint type, int bodyLength)
    {
        int total = 8 + bodyLength + 4;
        var block = _buffer.AsSpan(_used, total);
        BinaryPrimitives.WriteUInt32LittleEndian(block, type);
        BinaryPrimitives.WriteUInt32LittleEndian(block[4..], (uint)total);
        BinaryPrimitives.WriteUInt32LittleEndian(block[(total - 4)..], (uint)total);
        _used += total;
    }

    private void Reserve(int bytes)
    {
        if (_used + bytes > _buffer.Length) FlushBuffer();
    }

    private void FlushBuffer()
    {
        if (_used == 0) return;
        _stream.Write(_buffer, 0, _used);
        _used = 0;
    }
}
