using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using YamlDotNet.Core;

namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// Turns a YAML document already read into a <see cref="ManifestNode"/> tree into a typed KubernetesClient model, the
/// way kubectl does it (sigs.k8s.io/yaml: YAML → JSON → the API types' JSON decoder): the tree is written out as JSON
/// and read by System.Text.Json with KubernetesClient's converters. The document is parsed once; the YamlDotNet
/// deserializer (reflection per property, one global lock, and a second parse of every object's text) took 9 of the
/// 11 s that 20,500 documents cost before (docs/BENCHMARKS.md, issue 17).
/// <para>Plain scalars resolve by the YAML 1.2 core schema (null, booleans, numbers); as with the YAML reader before,
/// a number or boolean where the model wants a string is read as its text, and a quoted number as a number.</para>
/// </summary>
internal static class ManifestJson
{
    private static readonly JsonSerializerOptions Lenient = Options(strict: false);
    private static readonly JsonSerializerOptions Strict = Options(strict: true);

    private static JsonSerializerOptions Options(bool strict)
    {
        var o = new JsonSerializerOptions
        {
            TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            NumberHandling = JsonNumberHandling.AllowReadingFromString,
            // The API server's strict field validation (KEP-2885) reports unknown and duplicate fields.
            UnmappedMemberHandling = strict ? JsonUnmappedMemberHandling.Disallow : JsonUnmappedMemberHandling.Skip,
            AllowDuplicateProperties = !strict,
            MaxDepth = 128,
        };
        o.Converters.Add(new ScalarTextConverter());
        o.Converters.Add(new JsonStringEnumConverter());
        o.Converters.Add(new k8s.KubernetesJson.Iso8601TimeSpanConverter());
        o.Converters.Add(new k8s.KubernetesJson.KubernetesDateTimeConverter());
        o.Converters.Add(new k8s.KubernetesJson.KubernetesDateTimeOffsetConverter());
        o.MakeReadOnly(populateMissingResolver: false);
        return o;
    }

    /// <summary>The typed models of the kinds FastPath reads, by apiVersion and kind.</summary>
    private static readonly Dictionary<(string ApiVersion, string Kind), Type> Models = new()
    {
        [("v1", "Node")] = typeof(k8s.Models.V1Node),
        [("v1", "Namespace")] = typeof(k8s.Models.V1Namespace),
        [("v1", "Pod")] = typeof(k8s.Models.V1Pod),
        [("v1", "Service")] = typeof(k8s.Models.V1Service),
        [("discovery.k8s.io/v1", "EndpointSlice")] = typeof(k8s.Models.V1EndpointSlice),
        [("networking.k8s.io/v1", "NetworkPolicy")] = typeof(k8s.Models.V1NetworkPolicy),
    };

    /// <summary>One document read as its model (null <see cref="Value"/> when <see cref="Error"/> says why).</summary>
    public sealed record Decoded(object? Value, Problem? Warning, Problem? Error);

    /// <summary>Reads a document of a kind FastPath models; null for anything else (the caller says what it is).</summary>
    public static Decoded? DecodeObject(ManifestNode document) =>
        document is ManifestMapping map && map.Scalar("apiVersion") is { } apiVersion && map.Scalar("kind") is { } kind
        && Models.TryGetValue((apiVersion, kind), out var type)
            ? new Decoded(Deserialize(type, map, out var warning, out var error), warning, error)
            : null;

    /// <summary>A problem reading a document into its model: the field path and its node.</summary>
    public sealed record Problem(string? Field, ManifestNode? Node, string Message, bool UnknownField);

    /// <summary>
    /// Reads <paramref name="document"/> as <paramref name="type"/>. Strict first (unknown or duplicate fields are a
    /// <paramref name="warning"/>, then the object is read leniently); a value that does not fit is a
    /// <paramref name="error"/> and null is returned.
    /// </summary>
    public static object? Deserialize(Type type, ManifestMapping document, out Problem? warning, out Problem? error)
    {
        warning = error = null;
        var json = new ArrayBufferWriter<byte>(4096);
        using (var writer = new Utf8JsonWriter(json, new JsonWriterOptions { SkipValidation = true, MaxDepth = 1024 }))
            Write(writer, document);
        try
        {
            return JsonSerializer.Deserialize(json.WrittenSpan, type, Strict);
        }
        catch (JsonException e) when (IsFieldProblem(e))
        {
            warning = ToProblem(document, e);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or OverflowException)
        {
            error = ToProblem(document, e);
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize(json.WrittenSpan, type, Lenient);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or OverflowException)
        {
            error = ToProblem(document, e);
            return null;
        }
    }

    // STJ: "The JSON property 'podIp' could not be mapped to any .NET member contained in type '...'." and
    // "Duplicate property 'x' encountered during deserialization of type '...'."
    private static bool IsFieldProblem(JsonException e) =>
        e.Message.Contains("could not be mapped to any .NET member", StringComparison.Ordinal)
        || e.Message.StartsWith("Duplicate property", StringComparison.Ordinal);

    private static Problem ToProblem(ManifestMapping document, Exception e)
    {
        string? path = (e as JsonException)?.Path ?? (e.InnerException as JsonException)?.Path;
        var segments = PathSegments(path);
        bool unknown = e is JsonException j && IsFieldProblem(j);
        if (unknown && e.Message.StartsWith("The JSON property '", StringComparison.Ordinal))
        {
            // The path may stop at the object holding the unknown property; the property itself is in the message.
            int start = "The JSON property '".Length;
            string property = e.Message[start..e.Message.IndexOf('\'', start)];
            if (segments.Count == 0 || segments[^1] is not string last || last != property) segments.Add(property);
        }
        var node = Find(document, segments);
        string field = FieldPath(segments);
        string message = e.Message;
        int cut = message.IndexOf(" Path: ", StringComparison.Ordinal);
        if (cut >= 0) message = message[..cut];
        const string notConverted = "The JSON value could not be converted to ";
        if (message.StartsWith(notConverted, StringComparison.Ordinal) && node is ManifestScalar s)
            message = $"\"{s.Value}\" is not a valid {TypeName(message[notConverted.Length..].TrimEnd('.'))}";
        if (unknown)
            message = message.StartsWith("Duplicate", StringComparison.Ordinal) ? "duplicate field: the last value is used" : "unknown field ignored";
        return new Problem(field.Length == 0 ? null : field, node, message.ReplaceLineEndings(" ").Trim(), unknown);
    }

    private static string TypeName(string clr) =>
        clr.Replace("System.Nullable`1[", "", StringComparison.Ordinal).Replace("System.", "", StringComparison.Ordinal).TrimEnd(']');

    /// <summary>"$.spec.ports[0].port" or "$['a.b'][2]" → its keys and indexes.</summary>
    private static List<object> PathSegments(string? path)
    {
        var segments = new List<object>();
        if (string.IsNullOrEmpty(path)) return segments;
        int i = path.StartsWith('$') ? 1 : 0;
        while (i < path.Length)
        {
            if (path[i] == '.')
            {
                int end = i + 1;
                while (end < path.Length && path[end] is not '.' and not '[') end++;
                segments.Add(path[(i + 1)..end]);
                i = end;
            }
            else if (path[i] == '[' && i + 1 < path.Length && path[i + 1] == '\'')
            {
                int end = path.IndexOf("']", i + 2, StringComparison.Ordinal);
                if (end < 0) break;
                segments.Add(path[(i + 2)..end]);
                i = end + 2;
            }
            else if (path[i] == '[')
            {
                int end = path.IndexOf(']', i);
                if (end < 0 || !int.TryParse(path.AsSpan(i + 1, end - i - 1), NumberStyles.None, CultureInfo.InvariantCulture, out int index)) break;
                segments.Add(index);
                i = end + 1;
            }
            else break;
        }
        return segments;
    }

    private static string FieldPath(List<object> segments)
    {
        var text = new System.Text.StringBuilder();
        foreach (var s in segments)
        {
            if (s is int index) text.Append('[').Append(index).Append(']');
            else { if (text.Length > 0) text.Append('.'); text.Append((string)s); }
        }
        return text.ToString();
    }

    /// <summary>
    /// The deepest node the path reaches: a scalar value, or the key of the last mapping entry (so an unknown field or
    /// a wrong nested object points at its key's line).
    /// </summary>
    private static ManifestNode? Find(ManifestNode root, List<object> segments)
    {
        ManifestNode node = root;
        for (int i = 0; i < segments.Count; i++)
        {
            ManifestNode? next = null;
            if (segments[i] is int index && node is ManifestSequence seq && index < seq.Items.Count) next = seq.Items[index];
            else if (segments[i] is string key && node is ManifestMapping map)
            {
                foreach (var e in map.Entries)
                    if (string.Equals(e.Key.Value, key, StringComparison.Ordinal))
                        next = e.Value is ManifestScalar || i < segments.Count - 1 ? e.Value : e.Key;
            }
            if (next is null) return node;
            node = next;
        }
        return node;
    }

    /// <summary>Writes the tree as JSON; a merge key ("&lt;&lt;: *base") contributes the entries not given explicitly.</summary>
    public static void Write(Utf8JsonWriter writer, ManifestNode node)
    {
        switch (node)
        {
            case ManifestMapping map:
                writer.WriteStartObject();
                HashSet<string>? explicitKeys = null;
                foreach (var e in map.Entries)
                {
                    if (e.Key.Value == "<<" && e.Key.Style == ScalarStyle.Plain)
                    {
                        explicitKeys ??= [.. map.Entries.Select(x => x.Key.Value)];
                        foreach (var merged in e.Value is ManifestSequence ms ? ms.Items : [e.Value])
                            if (merged is ManifestMapping m)
                                foreach (var me in m.Entries)
                                    if (explicitKeys.Add(me.Key.Value)) { writer.WritePropertyName(me.Key.Value); Write(writer, me.Value); }
                        continue;
                    }
                    writer.WritePropertyName(e.Key.Value);
                    Write(writer, e.Value);
                }
                writer.WriteEndObject();
                break;
            case ManifestSequence seq:
                writer.WriteStartArray();
                foreach (var item in seq.Items) Write(writer, item);
                writer.WriteEndArray();
                break;
            case ManifestScalar s:
                WriteScalar(writer, s);
                break;
        }
    }

    private static void WriteScalar(Utf8JsonWriter writer, ManifestScalar s)
    {
        if (s.Style != ScalarStyle.Plain) { writer.WriteStringValue(s.Value); return; }
        if (s.IsNull) { writer.WriteNullValue(); return; }
        switch (s.Value)
        {
            case "true" or "True" or "TRUE": writer.WriteBooleanValue(true); return;
            case "false" or "False" or "FALSE": writer.WriteBooleanValue(false); return;
        }
        if (IsJsonNumber(s.Value)) writer.WriteRawValue(s.Value, skipInputValidation: true);
        else writer.WriteStringValue(s.Value);
    }

    /// <summary>Whether a plain scalar is a number JSON can carry as is (YAML 1.2 core ints and floats in JSON form).</summary>
    private static bool IsJsonNumber(string v)
    {
        int i = 0;
        if (i < v.Length && v[i] == '-') i++;
        if (i == v.Length || !char.IsAsciiDigit(v[i])) return false;
        if (v[i] == '0' && i + 1 < v.Length && char.IsAsciiDigit(v[i + 1])) return false; // 0755: not JSON
        while (i < v.Length && char.IsAsciiDigit(v[i])) i++;
        if (i < v.Length && v[i] == '.')
        {
            i++;
            if (i == v.Length || !char.IsAsciiDigit(v[i])) return false;
            while (i < v.Length && char.IsAsciiDigit(v[i])) i++;
        }
        if (i < v.Length && v[i] is 'e' or 'E')
        {
            i++;
            if (i < v.Length && v[i] is '+' or '-') i++;
            if (i == v.Length || !char.IsAsciiDigit(v[i])) return false;
            while (i < v.Length && char.IsAsciiDigit(v[i])) i++;
        }
        return i == v.Length;
    }

    /// <summary>A string field given a plain number or boolean ("version: 2" as a label) reads as the scalar's text.</summary>
    private sealed class ScalarTextConverter : JsonConverter<string>
    {
        public override bool HandleNull => false;

        public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
        {
            JsonTokenType.String => reader.GetString(),
            JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan),
            JsonTokenType.True => "true",
            JsonTokenType.False => "false",
            _ => throw new JsonException($"expected a string, not {reader.TokenType}"),
        };

        public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
    }
}
