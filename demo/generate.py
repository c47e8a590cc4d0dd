#!/usr/bin/env python3
"""Generates the demo catalog under demo/catalog and demo/previous.

Deterministic: every uid is a UUIDv5 of the object's identity, every time is
fixed, so re-running produces byte-identical files. Stdlib only.

    python3 demo/generate.py
"""
import json
import os
import uuid

ROOT = os.path.dirname(os.path.abspath(__file__))
NS_UUID = uuid.UUID("5d1c0f6e-2a51-4c3e-9d8e-0b6f3c4a2e17")
CLUSTER = "demo-eu1"
CREATED = "2026-10-02T08:00:00Z"
STARTED = "2026-11-10T09:30:00Z"


def uid(*parts):
    return str(uuid.uuid5(NS_UUID, "/".join(parts)))


def meta(kind, name, namespace=None, labels=None, owner=None, rv=1000, extra=None):
    m = {"name": name}
    if namespace:
        m["namespace"] = namespace
    m["uid"] = uid(kind, namespace or "", name)
    m["creationTimestamp"] = CREATED
    m["resourceVersion"] = str(rv)
    if labels:
        m["labels"] = labels
    if owner:
        m["ownerReferences"] = [{"apiVersion": owner[0], "kind": owner[1], "name": owner[2],
                                 "uid": owner[3], "controller": True, "blockOwnerDeletion": True}]
    m["managedFields"] = [{"manager": "kube-controller-manager", "operation": "Update",
                           "apiVersion": "v1", "time": "2026-11-10T09:30:00Z", "fieldsType": "FieldsV1"}]
    if extra:
        m.update(extra)
    return m


# --- a tiny YAML emitter (block style) --------------------------------------

SPECIAL = set(":#{}[],&*!|>'\"%@`")


def scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    s = str(v)
    plain = (s and s.strip() == s and s[0] not in SPECIAL and s[0] not in "-?"
             and ": " not in s and " #" not in s and "\n" not in s
             and s.lower() not in ("true", "false", "null", "yes", "no", "on", "off", "~")
             and not _looks_numeric(s))
    return s if plain else json.dumps(s)


def _looks_numeric(s):
    try:
        float(s)
        return True
    except ValueError:
        return s[:1].isdigit()


def emit(v, indent=0):
    pad = "  " * indent
    out = []
    if isinstance(v, dict):
        if not v:
            return [pad + "{}"]
        for k, val in v.items():
            key = scalar(k)
            if isinstance(val, (dict, list)) and val:
                out.append(f"{pad}{key}:")
                out.extend(emit(val, indent + 1 if isinstance(val, dict) else indent))
            elif isinstance(val, (dict, list)):
                out.append(f"{pad}{key}: {'{}' if isinstance(val, dict) else '[]'}")
            else:
                out.append(f"{pad}{key}: {scalar(val)}")
    elif isinstance(v, list):
        for item in v:
            if isinstance(item, (dict, list)) and item:
                lines = emit(item, indent + 1)
                first = lines[0].lstrip()
                out.append(f"{pad}- {first}")
                out.extend(lines[1:])
            else:
                out.append(f"{pad}- {scalar(item) if not isinstance(item, (dict, list)) else ('{}' if isinstance(item, dict) else '[]')}")
    else:
        out.append(pad + scalar(v))
    return out


def write_yaml(rel, doc):
    path = os.path.join(ROOT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(emit(doc)) + "\n")


def write_json(rel, doc):
    path = os.path.join(ROOT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


# --- the cluster ---------------------------------------------------------------

NODES = ["ip-10-0-1-21.eu-west-1.compute.internal", "ip-10-0-2-37.eu-west-1.compute.internal",
         "ip-10-0-3-12.eu-west-1.compute.internal", "ip-10-0-1-58.eu-west-1.compute.internal"]
ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c", "eu-west-1a"]

# namespace -> [(app, replicas, ready, image, port, kind)]
APPS = {
    "payments": [("payments-api", 3, 2, "ghcr.io/acme/payments-api:2.14.1", 8080, "Deployment"),
                 ("payments-worker", 2, 2, "ghcr.io/acme/payments-worker:2.14.1", 9090, "Deployment"),
                 ("ledger", 2, 2, "ghcr.io/acme/ledger:1.8.0", 8080, "Deployment"),
                 ("fraud-scorer", 2, 2, "ghcr.io/acme/fraud-scorer:0.9.3", 8000, "Deployment")],
    "checkout": [("checkout-web", 3, 3, "ghcr.io/acme/checkout-web:5.2.0", 3000, "Deployment"),
                 ("checkout-api", 3, 3, "ghcr.io/acme/checkout-api:5.2.0", 8080, "Deployment"),
                 ("checkout-worker", 2, 0, "ghcr.io/acme/checkout-worker:5.3.0-rc1", 9090, "Deployment"),
                 ("cart", 2, 2, "ghcr.io/acme/cart:3.0.4", 8080, "Deployment")],
    "catalog": [("catalog-api", 4, 4, "ghcr.io/acme/catalog-api:4.1.2", 8080, "Deployment"),
                ("search", 2, 2, "ghcr.io/acme/search:7.0.1", 9200, "Deployment"),
                ("image-resizer", 2, 2, "ghcr.io/acme/image-resizer:1.3.0", 8080, "Deployment")],
    "identity": [("auth", 3, 3, "ghcr.io/acme/auth:6.0.0", 8080, "Deployment"),
                 ("sessions", 2, 2, "ghcr.io/acme/sessions:2.2.2", 6379, "Deployment"),
                 ("legacy-sso", 0, 0, "ghcr.io/acme/legacy-sso:0.4.7", 8080, "Deployment")],
    "monitoring": [("prometheus", 1, 1, "quay.io/prometheus/prometheus:v2.55.0", 9090, "Deployment"),
                   ("grafana", 1, 1, "grafana/grafana:11.3.0", 3000, "Deployment")],
    "kube-system": [("coredns", 2, 2, "registry.k8s.io/coredns/coredns:v1.11.3", 53, "Deployment"),
                    ("metrics-server", 1, 1, "registry.k8s.io/metrics-server/metrics-server:v0.7.2", 10250, "Deployment"),
                    ("aws-load-balancer-controller", 2, 2, "public.ecr.aws/eks/aws-load-balancer-controller:v2.9.2", 9443, "Deployment")],
    "shipping": [("shipping-api", 3, 3, "ghcr.io/acme/shipping-api:2.0.8", 8080, "Deployment"),
                 ("label-printer", 2, 2, "ghcr.io/acme/label-printer:1.1.0", 8080, "Deployment"),
                 ("carrier-sync", 2, 2, "ghcr.io/acme/carrier-sync:0.7.5", 8080, "Deployment"),
                 ("tracking", 3, 3, "ghcr.io/acme/tracking:3.4.1", 8080, "Deployment")],
    "notifications": [("notifier", 3, 3, "ghcr.io/acme/notifier:4.4.0", 8080, "Deployment"),
                      ("email-renderer", 2, 2, "ghcr.io/acme/email-renderer:2.9.1", 8080, "Deployment"),
                      ("sms-gateway", 2, 2, "ghcr.io/acme/sms-gateway:1.0.3", 8080, "Deployment")],
    "analytics": [("event-collector", 4, 4, "ghcr.io/acme/event-collector:6.1.0", 8080, "Deployment"),
                  ("sessionizer", 2, 2, "ghcr.io/acme/sessionizer:1.5.2", 8080, "Deployment"),
                  ("dashboards", 2, 2, "ghcr.io/acme/dashboards:3.3.3", 3000, "Deployment")],
}
TEAMS = {"payments": "payments", "checkout": "checkout", "catalog": "catalog", "identity": "identity",
         "monitoring": "platform", "kube-system": "platform", "data": "data", "shipping": "logistics",
         "notifications": "engagement", "analytics": "data"}


def pod_status(ready, waiting=None, restarts=0, last_terminated=None):
    cs = {"name": "app", "ready": ready, "restartCount": restarts, "image": "", "started": ready}
    if waiting:
        cs["state"] = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    else:
        cs["state"] = {"running": {"startedAt": STARTED}}
    if last_terminated:
        cs["lastState"] = {"terminated": last_terminated}
    return {
        "phase": "Running" if not waiting or waiting[0] == "CrashLoopBackOff" else "Pending",
        "startTime": STARTED,
        "podIP": None,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": STARTED},
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": STARTED},
            {"type": "ContainersReady", "status": "True" if ready else "False", "lastTransitionTime": STARTED},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": STARTED},
        ],
        "containerStatuses": [cs],
    }


def build_namespace(ns, previous=False):
    items = []
    node_i = 0
    for (app, replicas, ready, image, port, _kind) in APPS.get(ns, []):
        labels = {"app": app, "app.kubernetes.io/part-of": ns, "team": TEAMS[ns]}
        dep_replicas = replicas
        dep_image = image
        if previous and app == "payments-api":
            dep_image = "ghcr.io/acme/payments-api:2.13.4"
        if previous and app == "checkout-api":
            dep_replicas = 2
        dep_meta = meta("Deployment", app, ns, labels, rv=4100,
                        extra={"annotations": {"deployment.kubernetes.io/revision": "7",
                                               "kubectl.kubernetes.io/last-applied-configuration": "{}"}},)
        dep_meta["generation"] = 7
        container = {"name": "app", "image": dep_image, "ports": [{"containerPort": port, "protocol": "TCP"}],
                     "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                     "readinessProbe": {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 10,
                                        "failureThreshold": 3, "timeoutSeconds": 1}}
        avail = min(ready, dep_replicas)
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dep_meta,
               "spec": {"replicas": dep_replicas, "selector": {"matchLabels": {"app": app}},
                        "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
               "status": {"observedGeneration": 7, "replicas": dep_replicas, "updatedReplicas": dep_replicas,
                          "readyReplicas": avail, "availableReplicas": avail,
                          "conditions": [
                              {"type": "Available", "status": "True" if avail > 0 or dep_replicas == 0 else "False",
                               "reason": "MinimumReplicasAvailable", "lastUpdateTime": STARTED},
                              {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                               "lastUpdateTime": STARTED}]}}
        items.append(dep)
        # an older, scaled-down replica set for some apps
        hashes = [uid("rs", ns, app)[:10].replace("-", "")]
        if app in ("payments-api", "checkout-web", "auth", "catalog-api"):
            hashes.insert(0, uid("rs-old", ns, app)[:10].replace("-", ""))
        for hi, h in enumerate(hashes):
            current = hi == len(hashes) - 1
            rs_name = f"{app}-{h[:9]}"
            rs_replicas = dep_replicas if current else 0
            rs_ready = avail if current else 0
            rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                  "metadata": meta("ReplicaSet", rs_name, ns, dict(labels, **{"pod-template-hash": h[:9]}),
                                   owner=("apps/v1", "Deployment", app, dep_meta["uid"]), rv=5200),
                  "spec": {"replicas": rs_replicas, "selector": {"matchLabels": {"app": app}}},
                  "status": {"replicas": rs_replicas, "readyReplicas": rs_ready, "availableReplicas": rs_ready,
                             "fullyLabeledReplicas": rs_replicas}}
            items.append(rs)
            if not current:
                continue
            for p in range(rs_replicas):
                pod_name = f"{rs_name}-{uid('pod', ns, app, str(p))[:5]}"
                node_i = int(uid("node-for", ns, app, str(p))[:8], 16)
                node = NODES[node_i % len(NODES)]
                is_ready = p < rs_ready
                waiting = None
                restarts = 0
                last = None
                if app == "payments-api" and not is_ready:
                    waiting = ("CrashLoopBackOff", "back-off 5m0s restarting failed container=app pod=" + pod_name)
                    restarts = 14
                    last = {"exitCode": 1, "reason": "Error", "startedAt": "2026-11-23T23:50:00Z",
                            "finishedAt": "2026-11-23T23:50:04Z"}
                elif app == "checkout-worker":
                    waiting = ("ImagePullBackOff", "Back-off pulling image \"ghcr.io/acme/checkout-worker:5.3.0-rc1\"")
                elif app == "search" and p == 0:
                    last = {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-11-12T10:00:00Z",
                            "finishedAt": "2026-11-12T14:02:11Z"}
                    restarts = 1
                status = pod_status(is_ready, waiting, restarts, last)
                status["podIP"] = f"10.42.{node_i % 250}.{(p * 7 + node_i) % 250}"
                status["hostIP"] = f"10.0.{(node_i % 3) + 1}.{20 + node_i % 40}"
                status["containerStatuses"][0]["image"] = image
                status["qosClass"] = "Burstable"
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": meta("Pod", pod_name, ns, dict(labels, **{"pod-template-hash": h[:9]}),
                                        owner=("apps/v1", "ReplicaSet", rs_name, rs["metadata"]["uid"]),
                                        rv=6300),
                       "spec": {"nodeName": node, "containers": [dict(container, image=image)],
                                "restartPolicy": "Always", "serviceAccountName": "default"},
                       "status": status}
                items.append(pod)
        svc_type = "LoadBalancer" if app in ("checkout-web", "grafana") else "ClusterIP"
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": meta("Service", app, ns, {"app": app, "team": TEAMS[ns]}, rv=3000),
               "spec": {"type": svc_type, "selector": {"app": app},
                        "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}],
                        "clusterIP": f"172.20.{int(uid('ip', ns, app)[:4], 16) % 250}.{int(uid('ip', ns, app)[4:8], 16) % 250}"},
               "status": {"loadBalancer": {"ingress": [{"hostname": f"a{uid('lb', app)[:8]}.elb.eu-west-1.amazonaws.com"}]}
                          if svc_type == "LoadBalancer" else {}}}
        items.append(svc)
    # config maps
    cm_data = {"LOG_LEVEL": "info", "REGION": "eu-west-1", "FEATURE_FLAGS": "new-checkout,fast-search"}
    if previous and ns == "payments":
        cm_data = dict(cm_data, LOG_LEVEL="debug")
    items.append({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": meta("ConfigMap", f"{ns}-config", ns, {"team": TEAMS.get(ns, "platform")}, rv=2000),
                  "data": cm_data})
    items.append({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": meta("ConfigMap", "kube-root-ca.crt", ns, None, rv=2001),
                  "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIC5zCCAc+gAwIBAgIBADANBgkqhkiG9w0BAQsFADAVMRMwEQYDVQQDEwprdWJl\n-----END CERTIFICATE-----\n"}})
    if ns in ("payments", "checkout"):
        backend = "payments-api" if ns == "payments" else "checkout-web"
        items.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                      "metadata": meta("Ingress", f"{ns}-public", ns, {"team": TEAMS[ns]}, rv=3500),
                      "spec": {"ingressClassName": "alb", "rules": [{"host": f"{ns}.acme.example",
                               "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                   "backend": {"service": {"name": backend, "port": {"number": 80}}}}]}}]},
                      "status": {"loadBalancer": {"ingress": [{"hostname": f"k8s-{ns}-{uid('ing', ns)[:6]}.eu-west-1.elb.amazonaws.com"}]}}})
    if ns == "catalog":
        items.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                      "metadata": meta("PersistentVolumeClaim", "search-snapshots", ns, {"app": "search"}, rv=3600),
                      "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3-encrypted",
                               "resources": {"requests": {"storage": "200Gi"}}},
                      "status": {"phase": "Pending"}})
    return items


def build_data_namespace(previous=False):
    ns = "data"
    items = []
    labels = {"app": "postgres", "team": "data"}
    sts_meta = meta("StatefulSet", "postgres", ns, labels, rv=7100)
    items.append({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": sts_meta,
                  "spec": {"replicas": 2, "serviceName": "postgres", "selector": {"matchLabels": {"app": "postgres"}},
                           "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                               {"name": "postgres", "image": "postgres:16.4", "ports": [{"containerPort": 5432}]}]}}},
                  "status": {"replicas": 2, "readyReplicas": 2, "currentReplicas": 2, "updatedReplicas": 2}})
    for i in range(2):
        claim = f"data-postgres-{i}"
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": meta("Pod", f"postgres-{i}", ns, labels,
                                owner=("apps/v1", "StatefulSet", "postgres", sts_meta["uid"]), rv=7200 + i),
               "spec": {"nodeName": NODES[i + 1], "containers": [{"name": "postgres", "image": "postgres:16.4"}],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]},
               "status": pod_status(True)}
        pod["status"]["containerStatuses"][0]["image"] = "postgres:16.4"
        items.append(pod)
        items.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                      "metadata": meta("PersistentVolumeClaim", claim, ns, labels, rv=7300 + i),
                      "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3-encrypted",
                               "volumeName": f"pvc-{uid('pv', claim)}", "resources": {"requests": {"storage": "100Gi"}}},
                      "status": {"phase": "Bound", "capacity": {"storage": "100Gi"}}})
    items.append({"apiVersion": "v1", "kind": "Service",
                  "metadata": meta("Service", "postgres", ns, labels, rv=7400),
                  "spec": {"type": "ClusterIP", "clusterIP": "None", "selector": {"app": "postgres"},
                           "ports": [{"port": 5432, "targetPort": 5432}]}, "status": {}})
    cron_meta = meta("CronJob", "nightly-backup", ns, {"app": "backup", "team": "data"}, rv=7500)
    items.append({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": cron_meta,
                  "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                      "containers": [{"name": "backup", "image": "ghcr.io/acme/pg-backup:1.2.0"}]}}}}},
                  "status": {"lastScheduleTime": "2026-11-23T02:00:00Z", "lastSuccessfulTime": "2026-11-23T02:14:09Z"}})
    items.append({"apiVersion": "batch/v1", "kind": "Job",
                  "metadata": meta("Job", "nightly-backup-29400120", ns, {"app": "backup"},
                                   owner=("batch/v1", "CronJob", "nightly-backup", cron_meta["uid"]), rv=7600),
                  "spec": {"completions": 1, "backoffLimit": 3},
                  "status": {"succeeded": 1, "startTime": "2026-11-23T02:00:03Z", "completionTime": "2026-11-23T02:14:09Z",
                             "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-23T02:14:09Z"}]}})
    items.append({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": meta("ConfigMap", "postgres-config", ns, labels, rv=7700),
                  "data": {"max_connections": "200", "shared_buffers": "2GB"}})
    return items


def build_cluster(previous=False):
    items = [{"apiVersion": "stratum.dev/v1", "kind": "Cluster",
              "metadata": {"name": CLUSTER, "uid": uid("Cluster", CLUSTER), "creationTimestamp": "2026-01-15T10:00:00Z"},
              "spec": {"version": "v1.30.4", "provider": "eks", "region": "eu-west-1"}}]
    for ns in list(APPS) + ["data"]:
        items.append({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": meta("Namespace", ns, None, {"kubernetes.io/metadata.name": ns, "team": TEAMS[ns]}, rv=100),
                      "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    for i, node in enumerate(NODES):
        pressure = i == 2
        conditions = [
            {"type": "MemoryPressure", "status": "True" if pressure else "False",
             "reason": "KubeletHasInsufficientMemory" if pressure else "KubeletHasSufficientMemory",
             "message": "kubelet has insufficient memory available" if pressure else "kubelet has sufficient memory available",
             "lastHeartbeatTime": "2026-11-24T01:00:00Z" if not previous else "2026-11-20T01:00:00Z"},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"},
        ]
        items.append({"apiVersion": "v1", "kind": "Node",
                      "metadata": meta("Node", node, None, {"kubernetes.io/hostname": node,
                                                            "node.kubernetes.io/instance-type": "m6i.xlarge",
                                                            "topology.kubernetes.io/zone": ZONES[i]},
                                       rv=900 + (0 if previous else 50)),
                      "spec": {"providerID": f"aws:///{ZONES[i]}/i-0{uid('ec2', node)[:16].replace('-', '')}"},
                      "status": {"capacity": {"cpu": "4", "memory": "16069056Ki", "pods": "58"},
                                 "allocatable": {"cpu": "3920m", "memory": "15052480Ki", "pods": "58"},
                                 "conditions": conditions,
                                 "nodeInfo": {"kubeletVersion": "v1.30.4-eks-a737599", "osImage": "Amazon Linux 2023",
                                              "containerRuntimeVersion": "containerd://1.7.22"}}})
    for i in range(2):
        claim = f"data-postgres-{i}"
        items.append({"apiVersion": "v1", "kind": "PersistentVolume",
                      "metadata": meta("PersistentVolume", f"pvc-{uid('pv', claim)}", None, {"topology.kubernetes.io/zone": ZONES[i]}, rv=800),
                      "spec": {"capacity": {"storage": "100Gi"}, "storageClassName": "gp3-encrypted",
                               "persistentVolumeReclaimPolicy": "Retain",
                               "claimRef": {"namespace": "data", "name": claim}},
                      "status": {"phase": "Bound"}})
    items.append({"apiVersion": "v1", "kind": "PersistentVolume",
                  "metadata": meta("PersistentVolume", "pvc-legacy-reports", None, {}, rv=801),
                  "spec": {"capacity": {"storage": "50Gi"}, "storageClassName": "gp2", "persistentVolumeReclaimPolicy": "Retain"},
                  "status": {"phase": "Released"}})
    return items


def build_aws(previous=False):
    res = []
    for i, node in enumerate(NODES):
        res.append({"arn": f"arn:aws:ec2:eu-west-1:123456789012:instance/i-0{uid('ec2', node)[:16].replace('-', '')}",
                    "service": "EC2", "resourceType": "Instance", "name": node.split(".")[0],
                    "tags": {"team": "platform", "env": "prod", "eks:cluster-name": CLUSTER},
                    "state": "running",
                    "configuration": {"instanceType": "m6i.xlarge", "privateDnsName": node, "availabilityZone": ZONES[i],
                                      "imageId": "ami-0a1b2c3d4e5f60718", "monitoring": "enabled"}})
    res.append({"arn": "arn:aws:ec2:eu-west-1:123456789012:instance/i-0bastion00000001",
                "service": "EC2", "resourceType": "Instance", "name": "bastion",
                "tags": {"team": "platform", "env": "prod"}, "state": "stopped",
                "configuration": {"instanceType": "t3.micro", "availabilityZone": "eu-west-1a"}})
    dbs = [("payments-db", "postgres", "16.4", "db.r6g.large" if previous else "db.r6g.xlarge", "payments", "available"),
           ("orders-db", "postgres", "16.4", "db.r6g.large", "checkout", "available"),
           ("catalog-db", "postgres", "15.8", "db.t4g.medium", "catalog", "available"),
           ("analytics-db", "postgres", "15.8", "db.r6g.2xlarge", "data", "failed")]
    for name, engine, version, klass, team, state in dbs:
        res.append({"arn": f"arn:aws:rds:eu-west-1:123456789012:db:{name}", "service": "RDS", "resourceType": "DBInstance",
                    "name": name, "tags": {"team": team, "env": "prod"}, "state": state,
                    "configuration": {"engine": engine, "engineVersion": version, "dbInstanceClass": klass,
                                      "multiAZ": name != "catalog-db", "allocatedStorage": 500, "storageEncrypted": True,
                                      "endpoint": f"{name}.c9x8y7z6.eu-west-1.rds.amazonaws.com"}})
    for b, team in [("acme-assets", "catalog"), ("acme-backups", "data"), ("acme-logs", "platform"),
                    ("acme-invoices", "payments"), ("acme-exports", "data"), ("acme-static-web", "checkout")]:
        res.append({"arn": f"arn:aws:s3:::{b}", "service": "S3", "resourceType": "Bucket", "name": b,
                    "tags": {"team": team, "env": "prod"}, "state": "available",
                    "configuration": {"versioning": "Enabled", "encryption": "aws:kms", "publicAccessBlock": b != "acme-static-web"}})
    for r, team in [("eks-node-role", "platform"), ("payments-irsa", "payments"), ("checkout-irsa", "checkout"),
                    ("backup-writer", "data"), ("ci-deployer", "platform"), ("readonly-auditor", "security")]:
        res.append({"arn": f"arn:aws:iam::123456789012:role/{r}", "service": "IAM", "resourceType": "Role", "name": r,
                    "tags": {"team": team}, "state": "available",
                    "configuration": {"maxSessionDuration": 3600, "path": "/"}})
    for q, team in [("payments-events", "payments"), ("payments-events-dlq", "payments"), ("order-created", "checkout"),
                    ("image-jobs", "catalog"), ("audit-log", "security")]:
        res.append({"arn": f"arn:aws:sqs:eu-west-1:123456789012:{q}", "service": "SQS", "resourceType": "Queue", "name": q,
                    "tags": {"team": team, "env": "prod"}, "state": "available",
                    "configuration": {"visibilityTimeout": 30, "messageRetentionPeriod": 345600, "fifo": False}})
    for lb in ["checkout-public", "grafana-internal"]:
        res.append({"arn": f"arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/{lb}/{uid('alb', lb)[:16]}",
                    "service": "ElasticLoadBalancingV2", "resourceType": "LoadBalancer", "name": lb,
                    "tags": {"team": "platform", "env": "prod"}, "state": "active",
                    "configuration": {"scheme": "internet-facing" if lb.startswith("checkout") else "internal", "type": "application"}})
    return {"account": "123456789012", "region": "eu-west-1", "resources": res}


def build_postgres(previous=False):
    dbs = []
    for name, owner, size, limit, exts, status in [
        ("payments", "payments_app", 48_318_382_080, 150 if previous else 200, ["pgcrypto", "pg_stat_statements"], "online"),
        ("ledger", "ledger_app", 91_268_055_040, 100, ["pgcrypto"], "online"),
        ("fraud", "fraud_app", 12_884_901_888, 50, ["pg_trgm"], "online"),
        ("refunds", "payments_app", 2_147_483_648, 50, [], "online"),
        ("payouts", "payments_app", 6_442_450_944, 50, ["pgcrypto"], "online"),
        ("audit", "auditor", 31_138_512_896, 20, ["pgaudit"], "online"),
        ("reporting", "analyst", 103_079_215_104, 30, ["postgres_fdw"], "online"),
        ("legacy_billing", "billing_app", 5_368_709_120, 10, [], "offline"),
    ]:
        dbs.append({"name": name, "owner": owner, "encoding": "UTF8", "sizeBytes": size, "connectionLimit": limit,
                    "extensions": exts, "status": status})
    roles = [{"name": n, "superuser": su, "canLogin": login, "memberOf": member} for n, su, login, member in [
        ("postgres", True, True, []), ("payments_app", False, True, ["app_rw"]), ("ledger_app", False, True, ["app_rw"]),
        ("fraud_app", False, True, ["app_ro"]), ("auditor", False, True, ["app_ro"]), ("analyst", False, True, ["app_ro"])]]
    return {"server": "payments-db.c9x8y7z6.eu-west-1.rds.amazonaws.com", "databases": dbs, "roles": roles}


def lst(items):
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main():
    counts = {}

    def count(items):
        for o in items:
            counts[o["kind"]] = counts.get(o["kind"], 0) + 1

    for prev, base in [(False, "catalog"), (True, "previous")]:
        files = {}
        cluster = build_cluster(prev)
        files["kubernetes/cluster.yaml"] = lst(cluster)
        for ns in APPS:
            files[f"kubernetes/{ns}.yaml"] = lst(build_namespace(ns, prev))
        files["kubernetes/data.yaml"] = lst(build_data_namespace(prev))
        aws = build_aws(prev)
        pg = build_postgres(prev)
        if not prev:
            for doc in files.values():
                count(doc["items"])
            counts["AWS resources"] = len(aws["resources"])
            counts["Postgres databases+roles"] = len(pg["databases"]) + len(pg["roles"])
        # previous/ only holds the files that differ
        changed = {"kubernetes/payments.yaml", "kubernetes/checkout.yaml", "kubernetes/cluster.yaml"} if prev else None
        for rel, doc in files.items():
            if changed is None or rel in changed:
                write_yaml(f"{base}/{rel}", doc)
        write_json(f"{base}/aws/resources.json", aws)
        write_yaml(f"{base}/postgres/databases.yaml", pg)
    total = sum(counts.values())
    for k in sorted(counts):
        print(f"{k:28} {counts[k]}")
    print(f"{'total':28} {total}")


if __name__ == "__main__":
    main()
