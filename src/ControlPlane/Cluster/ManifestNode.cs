using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// A minimal YAML tree that keeps source positions, built from YamlDotNet's parser events (or, for .json files, from
/// System.Text.Json's reader): enough to learn apiVersion/kind/metadata, read FastPathConfiguration field by field,
/// point errors at a field's line, and write each object as JSON for its typed model (<see cref="ManifestJson"/>).
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
    /// <summary>Below this many characters a text is read on the calling thread.</summary>
    private const int ParallelThreshold = 256 * 1024;

    /// <summary>
    /// Reads every document of a YAML (or JSON) text. Documents before a syntax error are kept; the error itself is
    /// returned with its mark, since one broken document makes the rest of the stream unreadable.
    /// <para>A large text is cut at its document markers ("---" at the start of a line, which YAML 1.2 §9.1 forbids
    /// inside content, block scalars and quoted scalars included) and the pieces are parsed on all cores, their marks
    /// shifted back to the file's lines and characters: parsing is most of the cost of a 20,000-object file.</para>
    /// </summary>
    public static List<ManifestNode> ReadDocuments(string text, out YamlException? syntaxError)
    {
        var pieces = text.Length < ParallelThreshold ? [0] : DocumentStarts(text);
        var results = new (List<ManifestNode> Documents, YamlException? Error)[pieces.Count];
        Parallel.For(0, pieces.Count, new ParallelOptions { MaxDegreeOfParallelism = pieces.Count == 1 ? 1 : Environment.ProcessorCount }, i =>
        {
            int start = pieces[i], end = i + 1 < pieces.Count ? pieces[i + 1] : text.Length;
            var origin = i == 0 ? Mark.Empty : Origin(text, start);
            results[i].Documents = ReadPiece(text.Substring(start, end - start), origin, out results[i].Error);
        });
        var documents = new List<ManifestNode>();
        syntaxError = null;
        foreach (var (docs, error) in results)
        {
            documents.AddRange(docs);
            if (error is null) continue;
            syntaxError = error;
            break;
        }
        return documents;
    }

    /// <summary>
    /// Where the pieces start: 0, then every "---" line start, grouped so that each piece holds at least 64 KiB
    /// (documents stay whole; a piece may hold many).
    /// </summary>
    private static List<int> DocumentStarts(string text)
    {
        var starts = new List<int> { 0 };
        const int MinPiece = 64 * 1024;
        int at = text.IndexOf("\n---", MinPiece, StringComparison.Ordinal);
        while (at >= 0)
        {
            int marker = at + 1, after = marker + 3;
            bool isMarker = after == text.Length || text[after] is '\n' or '\r' or ' ' or '\t';
            if (isMarker)
            {
                starts.Add(marker);
                at = marker + MinPiece < text.Length ? text.IndexOf("\n---", marker + MinPiece, StringComparison.Ordinal) : -1;
            }
            else at = text.IndexOf("\n---", after, StringComparison.Ordinal);
        }
        return starts;
    }

    /// <summary>The mark of character <paramref name="index"/> (at a line start) in the whole text.</summary>
    private static Mark Origin(string text, int index) =>
        new(index, text.AsSpan(0, index).Count('\n') + 1, 1);

    private static List<ManifestNode> ReadPiece(string text, Mark origin, out YamlException? syntaxError)
    {
        var documents = new List<ManifestNode>();
        syntaxError = null;
        var reader = new PieceReader(origin);
        var parser = new Parser(new StringReader(text));
        try
        {
            parser.Consume<StreamStart>();
            while (parser.TryConsume<DocumentStart>(out _))
            {
                reader.Anchors.Clear();
                documents.Add(reader.ReadNode(parser));
                parser.Consume<DocumentEnd>();
            }
            parser.Consume<StreamEnd>();
        }
        catch (YamlException e)
        {
            syntaxError = new YamlException(reader.Shift(e.Start), reader.Shift(e.End), e.Message, e.InnerException);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet's scanner throws this instead of a YamlException on some broken plain scalars (found by
            // fuzzing: tests/FastPath.Tests/Fuzz/regressions/manifest); it is still a syntax error in the file.
            var at = reader.Shift(parser.Current?.Start ?? Mark.Empty);
            syntaxError = new YamlException(at, at, $"unreadable YAML ({e.Message})");
        }
        return documents;
    }

    /// <summary>Builds the tree of one piece, its marks moved to where the piece sits in the file.</summary>
    private sealed class PieceReader(Mark origin)
    {
        /// <summary>Anchored nodes of the current document: an alias (*name) repeats one (as KubernetesYaml's MergingParser did).</summary>
        public readonly Dictionary<string, ManifestNode> Anchors = new(StringComparer.Ordinal);

        public Mark Shift(Mark m) =>
            origin.Index == 0 && origin.Line <= 1 ? m : new Mark(m.Index + origin.Index, m.Line + origin.Line - 1, m.Column);

        public ManifestNode ReadNode(IParser parser)
        {
            if (parser.TryConsume<Scalar>(out var scalar))
                return Anchor(scalar, new ManifestScalar(Shift(scalar.Start), scalar.Value, scalar.Style));
            if (parser.TryConsume<MappingStart>(out var mapStart))
            {
                var entries = new List<KeyValuePair<ManifestScalar, ManifestNode>>();
                MappingEnd mapEnd;
                while (!parser.TryConsume<MappingEnd>(out mapEnd!))
                {
                    var key = ReadNode(parser);
                    var value = ReadNode(parser);
                    // Kubernetes objects only have string keys; a complex key cannot name a field, so it is kept under
                    // an empty name and the typed reader reports it.
                    entries.Add(new(key as ManifestScalar ?? new ManifestScalar(key.Start, "", ScalarStyle.Plain), value));
                }
                // A block mapping ends where the next token starts; a flow mapping's end mark sits on its '}'.
                long end = mapStart.Style == MappingStyle.Flow ? mapEnd.Start.Index + 1 : mapEnd.Start.Index;
                return Anchor(mapStart, new ManifestMapping(Shift(mapStart.Start), end + origin.Index, entries));
            }
            if (parser.TryConsume<SequenceStart>(out var seqStart))
            {
                var items = new List<ManifestNode>();
                while (!parser.TryConsume<SequenceEnd>(out _)) items.Add(ReadNode(parser));
                return Anchor(seqStart, new ManifestSequence(Shift(seqStart.Start), items));
            }
            var alias = parser.Consume<AnchorAlias>();
            return Anchors.TryGetValue(alias.Value.Value, out var target) ? target : new ManifestScalar(Shift(alias.Start), "", ScalarStyle.Plain);
        }

        private ManifestNode Anchor(NodeEvent e, ManifestNode node)
        {
            if (!e.Anchor.IsEmpty) Anchors[e.Anchor.Value] = node;
            return node;
        }
    }
}
