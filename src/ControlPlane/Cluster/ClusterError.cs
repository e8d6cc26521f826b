namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// One problem found in the cluster objects, rendered as ONE line naming file, object and field, in the spirit of
/// kubectl's validation messages: <c>cluster/pods.yaml: Pod default/web-1: status.podIP: "10.244.1.300" is not an IP address</c>.
/// Every part but the message is optional (a YAML syntax error has a line but no object; a missing node has no file).
/// </summary>
public sealed record ClusterError(string? File, int? Line, string? Object, string? Field, string Message)
{
    public override string ToString()
    {
        var parts = new List<string>(4);
        if (File is not null) parts.Add(Line is int line ? $"{File}:{line}" : File);
        if (Object is not null) parts.Add(Object);
        if (Field is not null) parts.Add(Field);
        parts.Add(Message);
        return string.Join(": ", parts);
    }
}
