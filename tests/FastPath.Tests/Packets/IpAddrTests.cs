using System.Net;
using FastPath.DataPlane.Packets;
using Xunit;

namespace FastPath.Tests.Packets;

/// <summary>IpAddr's own dotted-quad parser and formatter agree with <see cref="IPAddress"/> on every input.</summary>
public class IpAddrTests
{
    [Theory]
    [InlineData("10.244.1.11")]
    [InlineData("0.0.0.0")]
    [InlineData("255.255.255.255")]
    [InlineData("1.2.3.4")]
    [InlineData("010.0.0.1")] // octal to IPAddress: left to its parser
    [InlineData("1.2.3.04")]
    [InlineData("1.2.3")]
    [InlineData("1")]
    [InlineData("256.1.1.1")]
    [InlineData("1.2.3.4.5")]
    [InlineData("1..2.3")]
    [InlineData("1.2.3.4 ")]
    [InlineData(" 1.2.3.4")]
    [InlineData("1.2.3.")]
    [InlineData("0x7f.0.0.1")]
    [InlineData("1.2.3.1000")]
    [InlineData("::ffff:10.0.0.1")]
    [InlineData("fd00::1")]
    [InlineData("")]
    [InlineData("garbage")]
    public void TryParseAgreesWithIPAddress(string text)
    {
        bool expected = IPAddress.TryParse(text, out var ip);
        Assert.Equal(expected, IpAddr.TryParse(text, out var addr));
        if (!expected) return;
        if (ip!.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        Assert.Equal(IpAddr.From(ip), addr);
    }

    [Fact]
    public void ToStringAndTryFormatAgreeWithIPAddress()
    {
        var random = new Random(20);
        var addresses = new List<IpAddr> { IpAddr.FromV4(0), IpAddr.FromV4(uint.MaxValue) };
        for (int i = 0; i < 1000; i++) addresses.Add(IpAddr.FromV4((uint)random.NextInt64(0, 1L << 32)));
        addresses.Add(IpAddr.From(IPAddress.Parse("fd00:10:244::1")));
        Span<char> buffer = stackalloc char[64];
        foreach (var a in addresses)
        {
            string expected = a.ToIPAddress().ToString();
            Assert.Equal(expected, a.ToString());
            Assert.True(a.TryFormat(buffer, out int written, default, null));
            Assert.Equal(expected, buffer[..written].ToString());
            Assert.True(IpAddr.TryParse(expected, out var back));
            Assert.Equal(a, back);
        }
        Assert.False(IpAddr.FromV4(0x0A00_0001).TryFormat(buffer[..5], out _, default, null)); // "10.0.0.1" needs 8
    }
}
