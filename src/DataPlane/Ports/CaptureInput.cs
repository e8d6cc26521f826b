namespace FastPath.DataPlane.Ports;

/// <summary>
/// One capture given to replay: <c>FILE</c> or <c>PORT=FILE</c>. <see cref="Port"/> is the resolved port index when the
/// command line named one, else null (then a pcapng interface name, else the source address, decides).
/// </summary>
public readonly record struct CaptureInput(string Path, short? Port = null);
