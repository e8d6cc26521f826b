using System.Buffers.Binary;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// Writes a classic pcap file (draft-ietf-opsawg-pcap), link type Ethernet, little-endian, microsecond or nanosecond
/// timestamps. Records go into one reusable buffer that is written out when full and on <see cref="Dispose"/>, so
/// <see cref="Write"/> allocates nothing.
/// </summary>
public sealed class PcapWriter : IDisposable
{
    /// <summary>libpcap's MAXIMUM_SNAPLEN: frames longer than this are written truncated, keeping their wire length.</summary>
    public const int SnapLength = 262144;

    private const int DefaultBufferSize = 1 << 20;
    private const int FileHeaderLength = 24;
    private const int RecordHeaderLength = 16;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly bool _nanosecond;
    private readonly byte[] _buffer;
    private int _used;
    private bool _disposed;

    /// <summary>Creates (or overwrites) <paramref name="path"/>.</summary>
    public PcapWriter(string path, bool nanosecond = false)
        : this(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 0), nanosecond, leaveOpen: false)
    {
    }

    public PcapWriter(Stream stream, bool nanosecond = false, bool leaveOpen = false)
    {
        _stream = stream;
        _leaveOpen = leaveOpen;
        _nanosecond = nanosecond;
        _buffer = GC.AllocateUninitializedArray<byte>(DefaultBufferSize);

        Span<byte> header = _buffer.AsSpan(0, FileHeaderLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header, nanosecond ? 0xA1B23C4Du : 0xA1B2C3D4u);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 4);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], 0); // reserved (thiszone, sigfigs): always 0
        BinaryPrimitives.WriteUInt32LittleEndian(header[16..], SnapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header[20..], (uint)LinkType.Ethernet);
        _used = FileHeaderLength;
    }

    /// <summary>Records written so far.</summary>
    public long PacketCount { get; private set; }

    public bool IsNanosecond => _nanosecond;

    /// <summary>Appends one Ethernet frame stamped <paramref name="timestampNs"/> (nanoseconds since the Unix epoch).</summary>
    public void Write(ReadOnlySpan<byte> frame, long timestampNs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int captured = Math.Min(frame.Length, SnapLength);
        if (_used + RecordHeaderLength + captured > _buffer.Length)
            Flush(keepStreamBuffers: true);

        // Floor division so times before 1970 still give a fraction in [0, 1 s).
        long seconds = Math.DivRem(timestampNs, 1_000_000_000L, out long remainder);
        if (remainder < 0)
        {
            seconds--;
            remainder += 1_000_000_000L;
        }
        Span<byte> header = _buffer.AsSpan(_used, RecordHeaderLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)seconds);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)(_nanosecond ? remainder : remainder / 1000));
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], (uint)captured);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], (uint)frame.Length);
        _used += RecordHeaderLength;

        if (captured <= _buffer.Length - _used)
        {
            frame[..captured].CopyTo(_buffer.AsSpan(_used));
            _used += captured;
        }
        else
        {
            // Only when the buffer is smaller than the snap length; not the case with the default sizes.
            Flush(keepStreamBuffers: true);
            _stream.Write(frame[..captured]);
        }
        PacketCount++;
    }

    /// <summary>Writes buffered records to the file.</summary>
    public void Flush() => Flush(keepStreamBuffers: false);

    private void Flush(bool keepStreamBuffers)
    {
        if (_used > 0)
        {
            _stream.Write(_buffer, 0, _used);
            _used = 0;
        }
        if (!keepStreamBuffers)
            _stream.Flush();
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        Flush();
        _disposed = true;
        if (!_leaveOpen)
            _stream.Dispose();
    }
}
