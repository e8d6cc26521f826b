using System.Buffers.Binary;
using System.Text;

namespace FastPath.Tests.Ports;

/// <summary>
/// Writes pcapng blocks byte by byte as draft-ietf-opsawg-pcapng lays them out, in the byte order of the current
/// section, so reader tests do not depend on the reader's own understanding of the format.
/// </summary>
internal sealed class PcapNgImage
{
    private readonly MemoryStream _bytes = new();
    private bool _bigEndian;

    public byte[] ToArray() => _bytes.ToArray();

    public PcapNgImage Section(bool bigEndian)
    {
        _bigEndian = bigEndian;
        var body = new List<byte>();
        body.AddRange(U32(0x1A2B3C4D));
        body.AddRange(U16(1));
        body.AddRange(U16(0));
        body.AddRange(U64(ulong.MaxValue)); // section length unknown
        return Block(0x0A0D0D0A, body);
    }

    public PcapNgImage Interface(ushort linkType, uint snapLength = 0, string? name = null, byte? tsresol = null,
        long? tsoffset = null)
    {
        var body = new List<byte>();
        body.AddRange(U16(linkType));
        body.AddRange(U16(0));
        body.AddRange(U32(snapLength));
        if (name is not null)
            Option(body, 2, Encoding.UTF8.GetBytes(name));
        Option(body, 1, Encoding.UTF8.GetBytes("a comment the reader skips"));
        if (tsresol is byte r)
            Option(body, 9, [r]);
        if (tsoffset is long o)
            Option(body, 14, U64((ulong)o));
        Option(body, 0, []);
        return Block(1, body);
    }

    public PcapNgImage Enhanced(uint interfaceId, ulong timestamp, byte[] data, uint? originalLength = null)
    {
        var body = new List<byte>();
        body.AddRange(U32(interfaceId));
        body.AddRange(U32((uint)(timestamp >> 32)));
        body.AddRange(U32((uint)timestamp));
        body.AddRange(U32((uint)data.Length));
        body.AddRange(U32(originalLength ?? (uint)data.Length));
        AddPadded(body, data);
        Option(body, 1, Encoding.UTF8.GetBytes("epb comment"));
        Option(body, 0, []);
        return Block(6, body);
    }

    public PcapNgImage Simple(byte[] data, uint? originalLength = null)
    {
        var body = new List<byte>();
        body.AddRange(U32(originalLength ?? (uint)data.Length));
        AddPadded(body, data);
        return Block(3, body);
    }

    /// <summary>The obsolete Packet Block (pcapng draft appendix): 16-bit interface id and drops count.</summary>
    public PcapNgImage Obsolete(ushort interfaceId, ulong timestamp, byte[] data)
    {
        var body = new List<byte>();
        body.AddRange(U16(interfaceId));
        body.AddRange(U16(0));
        body.AddRange(U32((uint)(timestamp >> 32)));
        body.AddRange(U32((uint)timestamp));
        body.AddRange(U32((uint)data.Length));
        body.AddRange(U32((uint)data.Length));
        AddPadded(body, data);
        return Block(2, body);
    }

    /// <summary>A block type the reader must skip (Name Resolution, Interface Statistics, custom...).</summary>
    public PcapNgImage Other(uint type, int bodyLength)
    {
        var body = new List<byte>(new byte[bodyLength]);
        return Block(type, body);
    }

    private PcapNgImage Block(uint type, List<byte> body)
    {
        while (body.Count % 4 != 0)
            body.Add(0);
        uint total = (uint)(body.Count + 12);
        _bytes.Write(U32(type));
        _bytes.Write(U32(total));
        _bytes.Write(body.ToArray());
        _bytes.Write(U32(total));
        return this;
    }

    private void Option(List<byte> body, ushort code, byte[] value)
    {
        body.AddRange(U16(code));
        body.AddRange(U16((ushort)value.Length));
        AddPadded(body, value);
    }

    private static void AddPadded(List<byte> body, byte[] data)
    {
        body.AddRange(data);
        while (body.Count % 4 != 0)
            body.Add(0);
    }

    private byte[] U16(ushort v)
    {
        var b = new byte[2];
        if (_bigEndian) BinaryPrimitives.WriteUInt16BigEndian(b, v); else BinaryPrimitives.WriteUInt16LittleEndian(b, v);
        return b;
    }

    private byte[] U32(uint v)
    {
        var b = new byte[4];
        if (_bigEndian) BinaryPrimitives.WriteUInt32BigEndian(b, v); else BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    private byte[] U64(ulong v)
    {
        var b = new byte[8];
        if (_bigEndian) BinaryPrimitives.WriteUInt64BigEndian(b, v); else BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }
}
