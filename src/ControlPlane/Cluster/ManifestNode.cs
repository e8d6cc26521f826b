using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// A minimal YAML tree that keeps source positions. KubernetesYaml deserializes one document at a time and
/// YamlDotNet's own representation model loses marks when read per document, so the loader walks the parser's
/// events itself: enough to learn apiVersion/kind/metadata, read FastPathConfiguration field by field, and cut
/// each object's exact text out of the file for KubernetesYaml.
/// </summary>
internal abstract record ManifestNode(Mark Start);

internal sealed record ManifestScalar(Mark Start, string Value, ScalarStyle Style) : ManifestNode(Start)
{
    /// <summary>A plain empty scalar or "~"/"null": YAML's null (an empty document reads as this).</summary>
    public bool IsNull => Style == ScalarStyle.Plain && Value is "" or "~" or "null" or "Null" or "NULL";
}

internal sealed record ManifestSequence(Mark Start, IReadOnlyList<ManifestNode> Items) : ManifestNode(Start);

/// <param name="EndIndex">Character index just past the mapping's text (exclusive).</param>
internal sealed record ManifestMapping(Mark Start, long EndIndex, IReadOnlyList<KeyValuePair<ManifestScalar, ManifestNode>> Entries)
    : ManifestNode(Start)
{
    public ManifestNode? this[string key]
    {
        get
        {
            foreach (var e in Entries)
                if (string.Equals(e.Key.Value, key, StringComparison.Ordinal)) return e.Value;
            return null;
        }
    }

    public string? Scalar(string key) => this[key] is ManifestScalar { IsNull: false } s ? s.Value : null;
}

internal static class ManifestReader
{
    /// <summary>
    /// Reads every document of a YAML (or JSON) text. Documents before a syntax error are kept; the error itself is
    /// returned with its mark, since one broken document makes the rest of the stream unreadable.
    /// </summary>
    public static List<ManifestNode> ReadDocuments(string text, out YamlException? syntaxError)
    {
        var documents = new List<ManifestNode>();
        syntaxError = null;
        var parser = new Parser(new StringReader(text));
        try
        {
            parser.Consume<StreamStart>();
            while (parser.TryConsume<DocumentStart>(out _))
            {
                documents.Add(ReadNode(parser));
                parser.Consume<DocumentEnd>();
            }
            parser.Consume<StreamEnd>();
        }
        catch (YamlException e)
        {
            syntaxError = e;
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet's scanner throws this instead of a YamlException on some broken plain scalars (found by
            // fuzzing: tests/FastPath.Tests/Fuzz/regressions/manifest); it is still a syntax error in the file.
            var at = parser.Current?.Start ?? Mark.Empty;
            syntaxError = new YamlException(at, at, $"unreadable YAML ({e.Message})");
        }
        return documents;
    }

    private static ManifestNode ReadNode(IParser parser)
    {
        if (parser.TryConsume<Scalar>(out var scalar))
            return new ManifestScalar(scalar.Start, scalar.Value, scalar.Style);
        if (parser.TryConsume<MappingStart>(out var mapStart))
        {
            var entries = new List<KeyValuePair<ManifestScalar, ManifestNode>>();
            MappingEnd mapEnd;
            while (!parser.TryConsume<MappingEnd>(out mapEnd!))
            {
                var key = ReadNode(parser);
                var value = ReadNode(parser);
                // Kubernetes objects only have string keys; a complex key cannot name a field, so it is kept under
                // an empty name and the typed deserializer reports it.
                entries.Add(new(key as ManifestScalar ?? new ManifestScalar(key.Start, "", ScalarStyle.Plain), value));
            }
            // A block mapping ends where the next token starts; a flow mapping's end mark sits on its '}'.
            long end = mapStart.Style == MappingStyle.Flow ? mapEnd.Start.Index + 1 : mapEnd.Start.Index;
            return new ManifestMapping(mapStart.Start, end, entries);
        }
        if (parser.TryConsume<SequenceStart>(out var seqStart))
        {
            var items = new List<ManifestNode>();
            while (!parser.TryConsume<SequenceEnd>(out _)) items.Add(ReadNode(parser));
            return new ManifestSequence(seqStart.Start, items);
        }
        // An alias (*name) repeats an anchored node; FastPath's own fields never need one, and KubernetesYaml resolves
        // aliases itself when it reads the object's text.
        var other = parser.Consume<NodeEvent>();
        return new ManifestScalar(other.Start, "", ScalarStyle.Plain);
    }

    /// <summary>
    /// The text of one mapping, padded so that line and column numbers match the original file: YamlDotNet's error
    /// marks from deserializing it then point into the user's file.
    /// </summary>
    public static string Slice(string text, ManifestMapping mapping)
    {
        int start = (int)mapping.Start.Index;
        int end = (int)Math.Min(mapping.EndIndex, text.Length);
        return string.Concat(new string('\n', (int)mapping.Start.Line - 1), new string(' ', (int)mapping.Start.Column - 1),
            text.AsSpan(start, end - start));
    }
}
