#!/usr/bin/env python3
"""Writes the issue-17 ingest cluster: NODES Nodes (nodes.yaml) and SERVICES Services with one EndpointSlice of
ENDPOINTS ready endpoints each (services.yaml), shaped like `kubectl get -o yaml` output (managedFields, status,
ownerReferences), plus a FastPathConfiguration. Usage: generate.py DIR [SERVICES] [NODES] [--json]"""
import json, os, sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
as_json = "--json" in sys.argv
out = args[0]
services = int(args[1]) if len(args) > 1 else 10_000
nodes = int(args[2]) if len(args) > 2 else 500
endpoints = 10
os.makedirs(out, exist_ok=True)


def managed(manager, op):
    return [{"apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}},
             "manager": manager, "operation": op, "time": "2024-05-01T10:00:00Z"}]


def node(n):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"node-{n}", "uid": f"00000000-0000-0000-0000-{n:012d}", "resourceVersion": str(1000 + n),
                         "creationTimestamp": "2024-05-01T10:00:00Z",
                         "labels": {"kubernetes.io/hostname": f"node-{n}", "kubernetes.io/os": "linux"},
                         "annotations": {"fastpath.io/mac": "02:00:00:%02x:%02x:01" % (n >> 8, n & 255)},
                         "managedFields": managed("kubelet", "Update")},
            "spec": {"podCIDR": f"10.{n >> 8}.{n & 255}.0/24", "podCIDRs": [f"10.{n >> 8}.{n & 255}.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.{n >> 8}.{(n & 255)}"},
                                     {"type": "Hostname", "address": f"node-{n}"}],
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": "2024-05-01T10:00:00Z", "lastTransitionTime": "2024-05-01T10:00:00Z"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.0", "containerRuntimeVersion": "containerd://1.7.0",
                                    "architecture": "amd64", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12",
                                    "kernelVersion": "6.1.0", "bootID": "b", "machineID": "m", "systemUUID": "s",
                                    "kubeProxyVersion": "v1.31.0"}}}


def service(s):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{s}", "namespace": "default", "uid": f"10000000-0000-0000-0000-{s:012d}",
                         "resourceVersion": str(5000 + s), "creationTimestamp": "2024-05-01T10:00:00Z",
                         "labels": {"app": f"svc-{s}"}, "managedFields": managed("kubectl", "Apply")},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.96.{s >> 8}.{s & 255}", "clusterIPs": [f"10.96.{s >> 8}.{s & 255}"],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
                     "sessionAffinity": "None", "selector": {"app": f"svc-{s}"},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
            "status": {"loadBalancer": {}}}


def slice_(s):
    eps = []
    for e in range(endpoints):
        n = (s * endpoints + e) % nodes
        host = (s * endpoints + e) // nodes % 250 + 2
        eps.append({"addresses": [f"10.{n >> 8}.{n & 255}.{host}"],
                    "conditions": {"ready": True},
                    "nodeName": f"node-{n}"})
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"svc-{s}-abcde", "namespace": "default", "resourceVersion": str(20000 + s),
                         "generateName": f"svc-{s}-", "creationTimestamp": "2024-05-01T10:00:00Z",
                         "labels": {"kubernetes.io/service-name": f"svc-{s}",
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": f"svc-{s}",
                                              "uid": f"10000000-0000-0000-0000-{s:012d}",
                                              "blockOwnerDeletion": True, "controller": True}]},
            "endpoints": eps,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


config = {"apiVersion": "fastpath.io/v1alpha1", "kind": "FastPathConfiguration",
          "clusterCIDRs": ["10.0.0.0/8"], "serviceCIDRs": ["10.96.0.0/12"]}


def write(name, docs):
    if as_json:
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": docs}, f, indent=2)
        return
    import yaml
    with open(os.path.join(out, name + ".yaml"), "w") as f:
        yaml.dump_all(docs, f, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False)


write("nodes", [config] + [node(n) for n in range(nodes)])
svcs = []
for s in range(services):
    svcs.append(service(s))
    svcs.append(slice_(s))
write("services", svcs)
