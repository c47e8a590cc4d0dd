//! Which API resources a `kubernetes` entry lists: the built-in core kinds
//! by name, anything else (CRDs) through discovery.

use kube::Client;
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};

use super::spec::{KindRef, KubernetesSource};

/// A resource to list and watch.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Group, version, kind and plural.
    pub api: ApiResource,
    /// Namespaced (else cluster-scoped).
    pub namespaced: bool,
    /// Stored as items (false for kinds listed only to derive edges).
    pub stored: bool,
}

/// `(group, version, kind, plural, namespaced, scraped by default)`.
const BUILT_IN: &[(&str, &str, &str, &str, bool, bool)] = &[
    ("", "v1", "Namespace", "namespaces", false, true),
    ("", "v1", "Node", "nodes", false, true),
    ("", "v1", "Pod", "pods", true, true),
    ("", "v1", "Service", "services", true, true),
    ("", "v1", "ConfigMap", "configmaps", true, true),
    ("", "v1", "Secret", "secrets", true, false),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, true),
    (
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        false,
        true,
    ),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        true,
    ),
    ("apps", "v1", "Deployment", "deployments", true, true),
    ("apps", "v1", "ReplicaSet", "replicasets", true, true),
    ("apps", "v1", "StatefulSet", "statefulsets", true, true),
    ("apps", "v1", "DaemonSet", "daemonsets", true, true),
    ("batch", "v1", "Job", "jobs", true, true),
    ("batch", "v1", "CronJob", "cronjobs", true, true),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        true,
    ),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        false,
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        true,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        true,
    ),
    (
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        true,
    ),
];

/// Core `v1` Events, the source of event changes.
pub fn events() -> Resource {
    built_in(("", "v1", "Event", "events", true, false), false)
}

fn built_in(row: (&str, &str, &str, &str, bool, bool), stored: bool) -> Resource {
    let (group, version, kind, plural, namespaced, _) = row;
    Resource {
        api: ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, kind),
            plural,
        ),
        namespaced,
        stored,
    }
}

fn excluded(source: &KubernetesSource, group: &str, kind: &str) -> bool {
    source.exclude.iter().any(|k| k.matches(group, kind))
}

async fn discover(client: &Client, kind: &KindRef) -> Result<Resource, String> {
    let Some(group) = kind.group.as_deref() else {
        return Err(format!(
            "kind {:?} is not built in: name its group, e.g. example.com/{}",
            kind.kind, kind.kind
        ));
    };
    let found = match &kind.version {
        Some(version) => {
            kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, &kind.kind))
                .await
                .map(Some)
        }
        None => kube::discovery::group(client, group)
            .await
            .map(|g| g.recommended_kind(&kind.kind)),
    };
    match found {
        Ok(Some((api, caps))) => Ok(Resource {
            api,
            namespaced: caps.scope == Scope::Namespaced,
            stored: true,
        }),
        Ok(None) => Err(format!(
            "kind {group}/{} is not served by the cluster",
            kind.kind
        )),
        Err(e) => Err(format!("discovering {group}/{}: {e}", kind.kind)),
    }
}

/// The resources `source` lists, and the kinds that could not be resolved.
/// EndpointSlices are listed (not stored) whenever Services are, for their
/// Service → Pod edges.
pub async fn resolve(client: &Client, source: &KubernetesSource) -> (Vec<Resource>, Vec<String>) {
    let mut resources: Vec<Resource> = Vec::new();
    let mut errors = Vec::new();
    if source.include.is_empty() {
        for row in BUILT_IN {
            if row.5 && !excluded(source, row.0, row.2) {
                resources.push(built_in(*row, true));
            }
        }
    } else {
        for kind in &source.include {
            let table = BUILT_IN.iter().find(|row| {
                kind.matches(row.0, row.2) && kind.version.as_deref().is_none_or(|v| v == row.1)
            });
            let resolved = match table {
                Some(row) => Ok(built_in(*row, true)),
                None => discover(client, kind).await,
            };
            match resolved {
                Ok(r) if excluded(source, &r.api.group, &r.api.kind) => {}
                Ok(r) => {
                    if !resources
                        .iter()
                        .any(|e| e.api.group == r.api.group && e.api.kind == r.api.kind)
                    {
                        resources.push(r)
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    let has = |resources: &[Resource], kind: &str| {
        resources
            .iter()
            .any(|r| r.api.group.is_empty() && r.api.kind == kind)
    };
    if has(&resources, "Service")
        && !resources.iter().any(|r| r.api.kind == "EndpointSlice")
        && let Some(row) = BUILT_IN.iter().find(|r| r.2 == "EndpointSlice")
    {
        resources.push(built_in(*row, false));
    }
    (resources, errors)
}
