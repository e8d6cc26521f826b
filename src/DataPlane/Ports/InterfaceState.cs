using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// Whether an existing interface can be attached: it exists in this process's network namespace and is up. The
/// messages name the interface and what to do, since they end up as `fastpath run`'s one-line errors.
/// </summary>
public static partial class InterfaceState
{
    private const int IffUp = 0x1;

    /// <summary>The interface's index, 0 when no interface of that name exists here.</summary>
    public static int Index(string name) => (int)NameToIndex(name);

    /// <summary>True when the interface exists and is administratively up.</summary>
    public static bool IsUp(string name) =>
        File.Exists($"/sys/class/net/{name}/flags")
        && (Convert.ToInt32(File.ReadAllText($"/sys/class/net/{name}/flags").Trim(), 16) & IffUp) != 0;

    /// <summary>The index of <paramref name="name"/>, which must exist and be up.</summary>
    /// <exception cref="IOException">Missing or down, with what to do.</exception>
    public static int Require(string name)
    {
        if (!LinkDevice.IsValidName(name))
            throw new IOException($"attach {name}: not a valid interface name (1-{LinkDevice.MaxNameLength} characters, no '/', ':' or spaces)");
        int index = Index(name);
        if (index == 0) throw new IOException($"attach {name}: no such interface in this network namespace (see `ip link show`)");
        if (!IsUp(name)) throw new IOException($"attach {name}: the interface is down (`ip link set {name} up` first)");
        return index;
    }

    [LibraryImport("libc", EntryPoint = "if_nametoindex", StringMarshalling = StringMarshalling.Utf8)]
    private static partial uint NameToIndex(string name);
}
