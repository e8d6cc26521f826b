using System.Text;
using System.Text.Json;
using YamlDotNet.Core;

namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// Reads a .json manifest (the API's own format, what <c>kubectl get -o json</c> writes) into the same
/// <see cref="ManifestNode"/> tree as YAML, with System.Text.Json's reader instead of YamlDotNet's parser: JSON is YAML,
/// but a YAML parser pays for indentation, anchors and scalar styles JSON does not have. Marks carry the line and column
/// of every value, so errors read the same as for YAML. Several top-level values in one file are several documents.
/// </summary>
internal static class ManifestJsonReader
{
    /// <summary>Null when the text does not start like JSON (then it is read as YAML).</summary>
    public static List<ManifestNode>? TryRead(string text, out YamlException? syntaxError)
    {
        syntaxError = null;
        var first = text.AsSpan().TrimStart();
        if (first.IsEmpty || first[0] is not ('{' or '[')) return null;
        var bytes = Encoding.UTF8.GetBytes(text);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { AllowMultipleValues = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 256 });
        var lines = new LineCounter(bytes);
        var documents = new List<ManifestNode>();
        try
        {
            while (reader.Read()) documents.Add(ReadValue(ref reader, lines));
        }
        catch (JsonException e)
        {
            long line = (e.LineNumber ?? 0) + 1, column = (e.BytePositionInLine ?? 0) + 1;
            var at = new Mark(0, line, column);
            int cut = e.Message.IndexOf(" LineNumber:", StringComparison.Ordinal);
            syntaxError = new YamlException(at, at, "JSON: " + (cut > 0 ? e.Message[..cut].TrimEnd(' ', '|', '.') : e.Message));
        }
        return documents;
    }

    private static ManifestNode ReadValue(ref Utf8JsonReader reader, LineCounter lines)
    {
        var start = lines.MarkAt(reader.TokenStartIndex);
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
            {
                var entries = new List<KeyValuePair<ManifestScalar, ManifestNode>>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                {
                    var key = new ManifestScalar(lines.MarkAt(reader.TokenStartIndex), reader.GetString()!, ScalarStyle.DoubleQuoted);
                    reader.Read();
                    entries.Add(new(key, ReadValue(ref reader, lines)));
                }
                return new ManifestMapping(start, reader.TokenStartIndex + 1, entries);
            }
            case JsonTokenType.StartArray:
            {
                var items = new List<ManifestNode>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) items.Add(ReadValue(ref reader, lines));
                return new ManifestSequence(start, items);
            }
            case JsonTokenType.String:
                return new ManifestScalar(start, reader.GetString()!, ScalarStyle.DoubleQuoted);
            case JsonTokenType.Null:
                return new ManifestScalar(start, "null", ScalarStyle.Plain);
            default: // numbers, true, false: their text, resolved as YAML's plain scalars are (one buffer: no ValueSequence)
                return new ManifestScalar(start, Encoding.UTF8.GetString(reader.ValueSpan), ScalarStyle.Plain);
        }
    }

    /// <summary>Line and column of byte offsets that only move forward (the reader's tokens), counted incrementally.</summary>
    private sealed class LineCounter(byte[] text)
    {
        private long _at, _line = 1, _lineStart;

        public Mark MarkAt(long offset)
        {
            if (offset < _at) { _at = 0; _line = 1; _lineStart = 0; }
            var span = text.AsSpan((int)_at, (int)(offset - _at));
            int newlines = span.Count((byte)'\n');
            if (newlines > 0)
            {
                _line += newlines;
                _lineStart = _at + span.LastIndexOf((byte)'\n') + 1;
            }
            _at = offset;
            return new Mark(offset, _line, offset - _lineStart + 1);
        }
    }
}
