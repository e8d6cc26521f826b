using System.Collections.Immutable;
using k8s;
using k8s.Models;
using YamlDotNet.Core;

namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// Loads cluster objects from a directory of manifests (or one manifest file), the way <c>kubectl apply -R -f DIR</c>
/// reads them: every *.yaml, *.yml and *.json file, recursively, every "---" document. Bad input never throws:
/// every problem in every file becomes one <see cref="ClusterError"/>, so <c>fastpath check</c> reports them all at once.
/// </summary>
public static class ClusterDirectory
{
    private static readonly string[] Extensions = [".yaml", ".yml", ".json"];

    public static ClusterLoadResult Load(string path)
    {
        var loader = new DocumentLoader();
        if (File.Exists(path))
        {
            loader.LoadFile(path);
        }
        else if (Directory.Exists(path))
        {
            foreach (var file in ManifestFiles(path)) loader.LoadFile(file);
        }
        else
        {
            loader.Errors.Add(new ClusterError(path, null, null, null, "no such file or directory"));
        }
        return loader.Finish(path);
    }

    /// <summary>
    /// Loads the manifest <paramref name="text"/> as the file <paramref name="file"/> would load (the name only picks
    /// JSON or YAML and labels the errors), without touching the file system: the manifest fuzz target runs this.
    /// </summary>
    public static ClusterLoadResult LoadText(string file, string text)
    {
        var loader = new DocumentLoader();
        loader.LoadText(file, text);
        return loader.Finish(file);
    }

    /// <summary>
    /// Reads one manifest file on its own, for sources that follow a directory file by file. Objects that carried an
    /// error are left out of <see cref="ManifestFile.Objects"/> (their error says why); cross-object checks are the
    /// caller's.
    /// </summary>
    public static ManifestFile ReadFile(string file)
    {
        var loader = new DocumentLoader();
        loader.LoadFile(file);
        return new ManifestFile(file, loader.Objects, [.. loader.Errors], [.. loader.Warnings]);
    }

    /// <summary>
    /// Validates objects read elsewhere (a snapshot of an API server, plus a FastPathConfiguration file) as one
    /// cluster, the way <see cref="Load"/> validates a directory.
    /// </summary>
    public static ClusterLoadResult FromObjects(string source, IEnumerable<IClusterObject> objects, IEnumerable<ClusterError> errors)
    {
        var loader = new DocumentLoader();
        loader.Errors.AddRange(errors);
        foreach (var o in objects) loader.Add(o);
        return loader.Finish(source);
    }

    /// <summary>Whether <paramref name="path"/> names a file the directory loader reads (by extension and name).</summary>
    public static bool IsManifestFile(string path) =>
        !Path.GetFileName(path).StartsWith('.') && Extensions.Any(x => path.EndsWith(x, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// The configuration in force: the declared one (or the defaults) with clusterCIDRs defaulted to the union of the
    /// nodes' podCIDRs (what kube-controller-manager allocated them from).
    /// </summary>
    public static FastPathConfiguration EffectiveConfiguration(FastPathConfiguration? declared, IEnumerable<ClusterObject<V1Node>> nodes)
    {
        var config = declared ?? FastPathConfiguration.Default;
        if (!config.ClusterCidrs.IsEmpty) return config;
        var cidrs = ImmutableArray.CreateBuilder<Cidr>();
        foreach (var node in nodes)
            foreach (var text in ClusterValidator.PodCidrTexts(node.Value))
                if (Cidr.TryParse(text, out var c) && !cidrs.Contains(c)) cidrs.Add(c);
        return config with { ClusterCidrs = cidrs.ToImmutable() };
    }

    /// <summary>
    /// Manifest files under <paramref name="directory"/>, sorted by path (ordinal) so port numbering and error order
    /// do not depend on the file system. Names starting with '.' are skipped: a ConfigMap mounted as a directory holds
    /// "..data" and timestamped copies of every file, which would load every object twice.
    /// </summary>
    public static List<string> ManifestFiles(string directory)
    {
        var files = new List<string>();
        var pending = new Stack<string>();
        pending.Push(directory);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            IEnumerable<string> entries;
            try { entries = Directory.EnumerateFileSystemEntries(dir).ToList(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            foreach (var entry in entries)
            {
                if (Path.GetFileName(entry).StartsWith('.')) continue;
                if (Directory.Exists(entry)) pending.Push(entry);
                else if (IsManifestFile(entry)) files.Add(entry);
            }
        }
        files.Sort(StringComparer.Ordinal);
        return files;
    }

    private sealed class DocumentLoader
    {
        public readonly List<ClusterError> Errors = [];
        public readonly List<ClusterError> Warnings = [];
        /// <summary>Every object read without an error, in file order (the FastPathConfiguration included).</summary>
        public readonly List<IClusterObject> Objects = [];
        private readonly ImmutableArray<ClusterObject<V1Node>>.Builder _nodes = ImmutableArray.CreateBuilder<ClusterObject<V1Node>>();
        private readonly ImmutableArray<ClusterObject<V1Pod>>.Builder _pods = ImmutableArray.CreateBuilder<ClusterObject<V1Pod>>();
        private readonly ImmutableArray<ClusterObject<V1Service>>.Builder _services = ImmutableArray.CreateBuilder<ClusterObject<V1Service>>();
        private readonly ImmutableArray<ClusterObject<V1EndpointSlice>>.Builder _slices = ImmutableArray.CreateBuilder<ClusterObject<V1EndpointSlice>>();
        private readonly ImmutableArray<ClusterObject<V1Namespace>>.Builder _namespaces = ImmutableArray.CreateBuilder<ClusterObject<V1Namespace>>();
        private readonly ImmutableArray<ClusterObject<V1NetworkPolicy>>.Builder _policies = ImmutableArray.CreateBuilder<ClusterObject<V1NetworkPolicy>>();
        private FastPathConfiguration? _configuration;
        private string? _configurationFile;

        /// <summary>Takes an object already read (by another source).</summary>
        public void Add(IClusterObject o)
        {
            switch (o)
            {
                case ClusterObject<V1Node> x: _nodes.Add(x); break;
                case ClusterObject<V1Pod> x: _pods.Add(x); break;
                case ClusterObject<V1Service> x: _services.Add(x); break;
                case ClusterObject<V1EndpointSlice> x: _slices.Add(x); break;
                case ClusterObject<V1Namespace> x: _namespaces.Add(x); break;
                case ClusterObject<V1NetworkPolicy> x: _policies.Add(x); break;
                case ClusterObject<FastPathConfiguration> x: _configuration = x.Value; _configurationFile = x.File; break;
            }
            Objects.Add(o);
        }

        public void LoadFile(string file)
        {
            string text;
            try { text = File.ReadAllText(file); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Errors.Add(new ClusterError(file, null, null, null, $"cannot read: {e.Message}"));
                return;
            }
            LoadText(file, text);
        }

        public void LoadText(string file, string text)
        {
            YamlException? syntaxError = null;
            var documents = (file.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? ManifestJsonReader.TryRead(text, out syntaxError) : null)
                ?? ManifestReader.ReadDocuments(text, out syntaxError);
            var items = ExpandLists(file, documents);
            // Typed reading is independent per object and, after parsing, the rest of the cost: all cores share it,
            // and the results are taken in file order so errors and duplicates come out as a sequential read gives them.
            var decoded = new ManifestJson.Decoded?[items.Count];
            Parallel.For(0, items.Count, new ParallelOptions { MaxDegreeOfParallelism = items.Count < 64 ? 1 : Environment.ProcessorCount },
                i => decoded[i] = ManifestJson.DecodeObject(items[i].Node));
            for (int i = 0; i < items.Count; i++) LoadDocument(file, items[i].Node, items[i].Item, decoded[i]);
            if (syntaxError is not null)
                Errors.Add(new ClusterError(file, (int)syntaxError.Start.Line, null, null, $"YAML syntax error: {YamlMessage(syntaxError)}"));
        }

        /// <summary>
        /// What <c>kubectl get -o yaml|json</c> writes: one <c>kind: List</c> (or <c>PodList</c>, ...) whose
        /// <c>items</c> are the objects. Each item is read as a document of its own, named "items[i]" in errors.
        /// </summary>
        private List<(ManifestNode Node, string? Item)> ExpandLists(string file, List<ManifestNode> documents)
        {
            var items = new List<(ManifestNode, string?)>(documents.Count);
            foreach (var document in documents)
            {
                if (document is ManifestMapping map && map.Scalar("kind") is { } kind && kind.EndsWith("List", StringComparison.Ordinal)
                    && map.Scalar("apiVersion") is not null)
                {
                    if (map["items"] is ManifestSequence list)
                    {
                        for (int i = 0; i < list.Items.Count; i++) items.Add((list.Items[i], $"items[{i}]"));
                        continue;
                    }
                    if (map["items"] is null or ManifestScalar { IsNull: true }) continue; // an empty list
                    Errors.Add(new ClusterError(file, (int)map["items"]!.Start.Line, kind, "items", "expected a list of objects"));
                    continue;
                }
                items.Add((document, null));
            }
            return items;
        }

        private void LoadDocument(string file, ManifestNode document, string? item, ManifestJson.Decoded? decoded)
        {
            int line = (int)document.Start.Line;
            if (document is ManifestScalar { IsNull: true }) return; // empty document, e.g. a trailing "---"
            if (document is not ManifestMapping map)
            {
                Errors.Add(new ClusterError(file, line, item, null, "expected a Kubernetes object (a mapping with apiVersion and kind)"));
                return;
            }
            string? apiVersion = map.Scalar("apiVersion");
            string? kind = map.Scalar("kind");
            if (apiVersion is null || kind is null)
            {
                Errors.Add(new ClusterError(file, line, Prefixed(item, kind), apiVersion is null ? "apiVersion" : "kind", "required"));
                return;
            }
            var metadata = map["metadata"] as ManifestMapping;
            string? name = metadata?.Scalar("name");
            string? ns = metadata?.Scalar("namespace");

            switch (apiVersion, kind)
            {
                case ("v1", "Node"):
                    Add(_nodes, file, map, kind, name, null, item, decoded);
                    break;
                case ("v1", "Namespace"):
                    Add(_namespaces, file, map, kind, name, null, item, decoded);
                    break;
                case ("v1", "Pod"):
                    Add(_pods, file, map, kind, name, ns ?? "default", item, decoded);
                    break;
                case ("v1", "Service"):
                    Add(_services, file, map, kind, name, ns ?? "default", item, decoded);
                    break;
                case ("discovery.k8s.io/v1", "EndpointSlice"):
                    Add(_slices, file, map, kind, name, ns ?? "default", item, decoded);
                    break;
                case ("networking.k8s.io/v1", "NetworkPolicy"):
                    Add(_policies, file, map, kind, name, ns ?? "default", item, decoded);
                    break;
                case (FastPathConfiguration.ApiVersion, FastPathConfiguration.KindName):
                    string label = Prefixed(item, name is null ? kind : $"{kind} {name}")!;
                    int before = Errors.Count;
                    var config = FastPathConfigurationReader.Read(map, file, label, Errors);
                    if (Errors.Count == before) Objects.Add(new ClusterObject<FastPathConfiguration>(config, kind, null, name ?? "", file, line));
                    if (_configurationFile is not null)
                        Errors.Add(new ClusterError(file, line, label, null, $"duplicate: a FastPathConfiguration is already defined in {_configurationFile}"));
                    else
                    {
                        _configuration = config;
                        _configurationFile = file;
                    }
                    break;
                case (_, "Node" or "Namespace" or "Pod" or "Service" or "EndpointSlice" or "NetworkPolicy" or FastPathConfiguration.KindName):
                    Errors.Add(new ClusterError(file, line, Prefixed(item, ObjectLabel(kind, ns, name)), "apiVersion",
                        $"\"{apiVersion}\" is not supported for {kind} (use {SupportedApiVersion(kind)})"));
                    break;
                default:
                    Warnings.Add(new ClusterError(file, line, Prefixed(item, ObjectLabel(kind, ns, name)), null, $"skipped: FastPath does not use kind {kind} ({apiVersion})"));
                    break;
            }
        }

        private static string SupportedApiVersion(string kind) => kind switch
        {
            "EndpointSlice" => "discovery.k8s.io/v1",
            "NetworkPolicy" => "networking.k8s.io/v1",
            FastPathConfiguration.KindName => FastPathConfiguration.ApiVersion,
            _ => "v1",
        };

        /// <summary>"items[3] Pod default/web" for an item of a List, else the label itself.</summary>
        private static string? Prefixed(string? item, string? label) => item is null ? label : label is null ? item : $"{item} {label}";

        private static string ObjectLabel(string kind, string? ns, string? name) =>
            name is null ? kind : ns is null ? $"{kind} {name}" : $"{kind} {ns}/{name}";

        private void Add<T>(ImmutableArray<ClusterObject<T>>.Builder into, string file, ManifestMapping map,
            string kind, string? name, string? ns, string? item, ManifestJson.Decoded? decoded) where T : class, IMetadata<V1ObjectMeta>
        {
            int line = (int)map.Start.Line;
            string label = Prefixed(item, ObjectLabel(kind, ns, name))!;
            if (name is null)
            {
                Errors.Add(new ClusterError(file, line, Prefixed(item, kind), "metadata.name", "required"));
                return;
            }
            // Kubernetes object names: DNS-1123 subdomains (Namespaces and Services: labels). A '/' would also make
            // the "namespace/pod" port name ambiguous.
            bool labelName = kind is "Namespace" or "Service";
            if (labelName ? !ClusterValidator.IsDns1123Label(name) : !ClusterValidator.IsDns1123Subdomain(name))
            {
                Errors.Add(new ClusterError(file, null, label, "metadata.name",
                    $"\"{name}\" is not a valid name (lowercase letters, digits, '-'{(labelName ? "" : ", '.'")}; at most {(labelName ? 63 : 253)} characters)"));
                return;
            }
            if (ns is not null && !ClusterValidator.IsDns1123Label(ns))
            {
                Errors.Add(new ClusterError(file, null, label, "metadata.namespace", $"\"{ns}\" is not a valid namespace name"));
                return;
            }

            var (value, warning, error) = decoded ?? ManifestJson.DecodeObject(map) ?? new(null, null, null);
            if (warning is not null)
                Warnings.Add(new ClusterError(file, (int)(warning.Node ?? map).Start.Line, label, warning.Field, warning.Message));
            if (error is not null)
                Errors.Add(new ClusterError(file, (int)(error.Node ?? map).Start.Line, label, error.Field, error.Message));
            if (value is not T typed) return;
            // kubectl puts objects without metadata.namespace into the context's namespace; for a directory that is
            // "default". Written back so later stages read one place.
            if (ns is not null && typed.Metadata is { } meta) meta.NamespaceProperty = ns;
            var read = new ClusterObject<T>(typed, kind, ns, name, file, line);
            into.Add(read);
            Objects.Add(read);
        }

        public ClusterLoadResult Finish(string source)
        {
            var nodes = _nodes.ToImmutable();
            var config = EffectiveConfiguration(_configuration, nodes);
            var state = new ClusterState
            {
                Source = source,
                Nodes = nodes,
                Pods = _pods.ToImmutable(),
                Services = _services.ToImmutable(),
                EndpointSlices = _slices.ToImmutable(),
                Namespaces = _namespaces.ToImmutable(),
                NetworkPolicies = _policies.ToImmutable(),
                Configuration = config,
                ConfigurationFile = _configurationFile,
            };
            ClusterValidator.Validate(state, Errors);
            return new ClusterLoadResult(state, [.. Errors], [.. Warnings]);
        }
    }

    /// <summary>YamlDotNet wraps converter failures ("Exception during deserialization"); the inner message says what.</summary>
    private static string YamlMessage(YamlException e)
    {
        string message = e.InnerException is { } inner && e.Message.StartsWith("Exception during deserialization", StringComparison.Ordinal)
            ? inner.Message
            : e.Message;
        return message.ReplaceLineEndings(" ").Trim();
    }
}
