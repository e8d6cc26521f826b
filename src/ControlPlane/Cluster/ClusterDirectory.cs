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

        public void LoadFile(string file)
        {
            string text;
            try { text = File.ReadAllText(file); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Errors.Add(new ClusterError(file, null, null, null, $"cannot read: {e.Message}"));
                return;
            }
            var documents = ManifestReader.ReadDocuments(text, out var syntaxError);
            foreach (var document in documents) LoadDocument(file, text, document);
            if (syntaxError is not null)
                Errors.Add(new ClusterError(file, (int)syntaxError.Start.Line, null, null, $"YAML syntax error: {YamlMessage(syntaxError)}"));
        }

        private void LoadDocument(string file, string text, ManifestNode document)
        {
            int line = (int)document.Start.Line;
            if (document is ManifestScalar { IsNull: true }) return; // empty document, e.g. a trailing "---"
            if (document is not ManifestMapping map)
            {
                Errors.Add(new ClusterError(file, line, null, null, "expected a Kubernetes object (a mapping with apiVersion and kind)"));
                return;
            }
            string? apiVersion = map.Scalar("apiVersion");
            string? kind = map.Scalar("kind");
            if (apiVersion is null || kind is null)
            {
                Errors.Add(new ClusterError(file, line, kind, apiVersion is null ? "apiVersion" : "kind", "required"));
                return;
            }
            var metadata = map["metadata"] as ManifestMapping;
            string? name = metadata?.Scalar("name");
            string? ns = metadata?.Scalar("namespace");

            switch (apiVersion, kind)
            {
                case ("v1", "Node"):
                    Add(_nodes, file, text, map, kind, name, null);
                    break;
                case ("v1", "Namespace"):
                    Add(_namespaces, file, text, map, kind, name, null);
                    break;
                case ("v1", "Pod"):
                    Add(_pods, file, text, map, kind, name, ns ?? "default");
                    break;
                case ("v1", "Service"):
                    Add(_services, file, text, map, kind, name, ns ?? "default");
                    break;
                case ("discovery.k8s.io/v1", "EndpointSlice"):
                    Add(_slices, file, text, map, kind, name, ns ?? "default");
                    break;
                case ("networking.k8s.io/v1", "NetworkPolicy"):
                    Add(_policies, file, text, map, kind, name, ns ?? "default");
                    break;
                case (FastPathConfiguration.ApiVersion, FastPathConfiguration.KindName):
                    string label = name is null ? kind : $"{kind} {name}";
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
                    Errors.Add(new ClusterError(file, line, ObjectLabel(kind, ns, name), "apiVersion",
                        $"\"{apiVersion}\" is not supported for {kind} (use {SupportedApiVersion(kind)})"));
                    break;
                default:
                    Warnings.Add(new ClusterError(file, line, ObjectLabel(kind, ns, name), null, $"skipped: FastPath does not use kind {kind} ({apiVersion})"));
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

        private static string ObjectLabel(string kind, string? ns, string? name) =>
            name is null ? kind : ns is null ? $"{kind} {name}" : $"{kind} {ns}/{name}";

        private void Add<T>(ImmutableArray<ClusterObject<T>>.Builder into, string file, string text, ManifestMapping map,
            string kind, string? name, string? ns) where T : class, IMetadata<V1ObjectMeta>
        {
            int line = (int)map.Start.Line;
            string label = ObjectLabel(kind, ns, name);
            if (name is null)
            {
                Errors.Add(new ClusterError(file, line, kind, "metadata.name", "required"));
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

            var value = Deserialize<T>(file, text, map, label);
            if (value is null) return;
            // kubectl puts objects without metadata.namespace into the context's namespace; for a directory that is
            // "default". Written back so later stages read one place.
            if (ns is not null && value.Metadata is { } meta) meta.NamespaceProperty = ns;
            var read = new ClusterObject<T>(value, kind, ns, name, file, line);
            into.Add(read);
            Objects.Add(read);
        }

        private T? Deserialize<T>(string file, string text, ManifestMapping map, string label) where T : class
        {
            string slice = ManifestReader.Slice(text, map);
            try
            {
                // Strict first, to warn about fields the model does not know (often a typo such as "podIp"); the API
                // server's default field validation also only warns (KEP-2885), so the object still loads.
                return KubernetesYaml.Deserialize<T>(slice, strict: true);
            }
            catch (YamlException e) when (UnknownProperty(e) is { } property)
            {
                Warnings.Add(new ClusterError(file, (int)e.Start.Line, label, FieldAt(map, SourceIndex(map, e.Start.Index)) ?? property, "unknown field ignored"));
            }
            catch (Exception e)
            {
                AddDeserializeError(file, map, label, e);
                return null;
            }
            try
            {
                return KubernetesYaml.Deserialize<T>(slice, strict: false);
            }
            catch (Exception e)
            {
                AddDeserializeError(file, map, label, e);
                return null;
            }
        }

        private void AddDeserializeError(string file, ManifestMapping map, string label, Exception e)
        {
            if (e is YamlException y)
                Errors.Add(new ClusterError(file, (int)y.Start.Line, label, FieldAt(map, SourceIndex(map, y.Start.Index)), YamlMessage(y)));
            else
                Errors.Add(new ClusterError(file, (int)map.Start.Line, label, null, e.Message));
        }

        /// <summary>Maps an index in <see cref="ManifestReader.Slice"/>'s padded text back to the file's text.</summary>
        private static long SourceIndex(ManifestMapping map, long sliceIndex) =>
            sliceIndex - (map.Start.Line - 1) - (map.Start.Column - 1) + map.Start.Index;

        private static string? UnknownProperty(YamlException e)
        {
            // YamlDotNet: "Property 'podIp' not found on type 'k8s.Models.V1PodStatus'."
            const string prefix = "Property '";
            if (!e.Message.StartsWith(prefix, StringComparison.Ordinal) || !e.Message.Contains("' not found on type", StringComparison.Ordinal)) return null;
            int end = e.Message.IndexOf('\'', prefix.Length);
            return e.Message[prefix.Length..end];
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

    /// <summary>The field path ("spec.containers[0].ports[0].containerPort") at a character index of the document.</summary>
    private static string? FieldAt(ManifestNode root, long index)
    {
        var path = new System.Text.StringBuilder();
        var node = root;
        while (true)
        {
            if (node is ManifestMapping map)
            {
                KeyValuePair<ManifestScalar, ManifestNode>? hit = null;
                foreach (var e in map.Entries)
                    if (e.Key.Start.Index <= index) hit = e;
                if (hit is not { } h) break;
                if (path.Length > 0) path.Append('.');
                path.Append(h.Key.Value);
                node = h.Value;
            }
            else if (node is ManifestSequence seq)
            {
                int hit = -1;
                for (int i = 0; i < seq.Items.Count; i++)
                    if (seq.Items[i].Start.Index <= index) hit = i;
                if (hit < 0) break;
                path.Append('[').Append(hit).Append(']');
                node = seq.Items[hit];
            }
            else break;
        }
        return path.Length == 0 ? null : path.ToString();
    }
}
