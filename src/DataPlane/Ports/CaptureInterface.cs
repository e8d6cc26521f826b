namespace FastPath.DataPlane.Ports;

/// <summary>
/// What a capture says about one interface: pcapng Interface Description Block fields (draft-ietf-opsawg-pcapng §4.2)
/// or the classic pcap header. Precomputes the timestamp conversion so the per-record cost is one multiply or divide.
/// </summary>
internal struct CaptureInterface
{
    private enum Scale : byte { Multiply, Divide, BinaryFraction }

    private Scale _scale;
    private ulong _factor;
    private int _shift;
    private long _offsetNs;

    public CaptureInterface(string? name, LinkType linkType, uint snapLength, long offsetSeconds)
    {
        Name = name;
        LinkType = linkType;
        SnapLength = snapLength;
        _offsetNs = offsetSeconds * 1_000_000_000L;
        _scale = Scale.Multiply;
        _factor = 1000;
    }

    public string? Name { get; }
    public LinkType LinkType { get; }
    public uint SnapLength { get; }
    public bool IsFinerThanMicrosecond { get; private set; }

    /// <summary>
    /// Applies if_tsresol (§4.2 option 9): most significant bit clear means 10^-n seconds, set means 2^-n seconds.
    /// False if the unit cannot be converted (10^-20 and finer do not fit a 64-bit divisor).
    /// </summary>
    public bool SetResolution(byte tsresol)
    {
        int n = tsresol & 0x7F;
        if ((tsresol & 0x80) == 0)
        {
            if (n <= 9)
            {
                _scale = Scale.Multiply;
                _factor = Pow10(9 - n);
            }
            else if (n <= 19)
            {
                _scale = Scale.Divide;
                _factor = Pow10(n - 9);
            }
            else
            {
                return false;
            }
            IsFinerThanMicrosecond = n > 6;
        }
        else
        {
            if (n > 63)
                return false;
            _scale = Scale.BinaryFraction;
            _shift = n;
            // 2^-20 s is about 0.95 µs: anything finer than 2^-19 has sub-microsecond ticks.
            IsFinerThanMicrosecond = n >= 20;
        }
        return true;
    }

    /// <summary>Nanoseconds since the Unix epoch for a raw pcapng timestamp.</summary>
    public readonly long ToNanoseconds(ulong ticks)
    {
        ulong ns = _scale switch
        {
            Scale.Multiply => ticks * _factor,
            Scale.Divide => ticks / _factor,
            // Whole seconds, then the binary fraction scaled in 128 bits so 2^-63 units do not overflow.
            _ => (ticks >> _shift) * 1_000_000_000UL +
                 (ulong)(((UInt128)(ticks & ((1UL << _shift) - 1)) * 1_000_000_000UL) >> _shift),
        };
        return (long)ns + _offsetNs;
    }

    private static ulong Pow10(int n)
    {
        ulong value = 1;
        for (int i = 0; i < n; i++)
            value *= 10;
        return value;
    }
}
