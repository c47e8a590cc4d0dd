//! Parents and edges of Kubernetes objects (SPEC §4), derived from the
//! objects themselves so that any scraper producing `Kubernetes::<Kind>`
//! items (a live cluster, or files of manifests) builds the same graph.

use std::collections::BTreeMap;

use serde_json::Value;
use stratum_domain::{ItemRef, ScrapedItem, ScrapedRelationship};
use uuid::Uuid;

/// The external id a Kubernetes object is also known by:
/// `<namespace>/<name>` for namespaced objects, `<name>` otherwise, each
/// prefixed with `<cluster>/` when the object carries a `cluster` tag (so
/// two clusters' `default` namespaces stay apart).
pub fn object_key(cluster: Option<&str>, namespace: Option<&str>, name: &str) -> String {
    let local = match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    };
    match cluster {
        Some(c) if !c.is_empty() => format!("{c}/{local}").to_lowercase(),
        _ => local.to_lowercase(),
    }
}

/// A pod's id and labels, for Service selectors.
type PodLabels = (Uuid, BTreeMap<String, String>);

fn kind_of(item: &ScrapedItem) -> Option<&str> {
    item.item_type.strip_prefix("Kubernetes::")
}

fn uid(v: &Value) -> Option<Uuid> {
    v.get("uid")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

fn by_key(kind: &str, key: String) -> ItemRef {
    ItemRef::External {
        item_type: format!("Kubernetes::{kind}"),
        external_id: key,
    }
}

/// A Service's label selector, matched against pods once every item of the
/// run is known.
pub type ServiceSelector = BTreeMap<String, String>;

/// Sets a Kubernetes item's hard parent (controller owner, else its
/// Namespace, else its Cluster) and the soft edges its own document implies
/// (other owners, Namespace, Node → Pod, Pod → PVC, PVC → PV, Ingress →
/// Service). Runs while the document is still a tree; returns a Service's
/// selector for [`link_services`].
pub fn link_object(item: &mut ScrapedItem, config: &Value) -> Option<ServiceSelector> {
    let kind = kind_of(item)?.to_string();
    let namespace = item.namespace.clone().filter(|n| !n.is_empty());
    let cluster = item.tags.get("cluster").cloned();
    let key = |namespace: Option<&str>, name: &str| object_key(cluster.as_deref(), namespace, name);
    let owners: &[Value] = config
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();

    let controller = owners
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .or_else(|| owners.first());
    if item.parent.is_none() {
        if let Some(owner) = controller.and_then(|o| uid(o).map(|u| (o, u))) {
            let owner_kind = owner
                .0
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("Owner");
            item.parent = Some((ItemRef::Id(owner.1), format!("{owner_kind}{kind}")));
        } else if let Some(ns) = &namespace {
            item.parent = Some((
                by_key("Namespace", key(None, ns)),
                format!("Namespace{kind}"),
            ));
        } else if let Some(c) = &cluster
            && kind != "Cluster"
        {
            item.parent = Some((
                by_key("Cluster", c.to_lowercase()),
                format!("Cluster{kind}"),
            ));
        }
    }
    let parent_is_namespace = matches!(&item.parent, Some((ItemRef::External { item_type, .. }, _)) if item_type == "Kubernetes::Namespace");
    for owner in owners {
        if Some(owner) == controller {
            continue;
        }
        if let Some(u) = uid(owner) {
            let owner_kind = owner.get("kind").and_then(Value::as_str).unwrap_or("Owner");
            item.relationships.push(ScrapedRelationship {
                other: ItemRef::Id(u),
                other_is_upstream: true,
                relation: format!("{owner_kind}{kind}"),
            });
        }
    }
    if let Some(ns) = &namespace
        && !parent_is_namespace
    {
        item.relationships.push(ScrapedRelationship {
            other: by_key("Namespace", key(None, ns)),
            other_is_upstream: true,
            relation: format!("Namespace{kind}"),
        });
    }
    match kind.as_str() {
        "Pod" => {
            if let Some(node) = config.pointer("/spec/nodeName").and_then(Value::as_str) {
                item.relationships.push(ScrapedRelationship {
                    other: by_key("Node", key(None, node)),
                    other_is_upstream: true,
                    relation: "NodePod".into(),
                });
            }
            let volumes: &[Value] = config
                .pointer("/spec/volumes")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for v in volumes {
                if let (Some(claim), Some(ns)) = (
                    v.pointer("/persistentVolumeClaim/claimName")
                        .and_then(Value::as_str),
                    &namespace,
                ) {
                    item.relationships.push(ScrapedRelationship {
                        other: by_key("PersistentVolumeClaim", key(Some(ns), claim)),
                        other_is_upstream: false,
                        relation: "PodPersistentVolumeClaim".into(),
                    });
                }
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(pv) = config.pointer("/spec/volumeName").and_then(Value::as_str) {
                item.relationships.push(ScrapedRelationship {
                    other: by_key("PersistentVolume", key(None, pv)),
                    other_is_upstream: false,
                    relation: "PersistentVolumeClaimPersistentVolume".into(),
                });
            }
        }
        "Service" => {
            let selector: ServiceSelector = config
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            return (!selector.is_empty() && namespace.is_some()).then_some(selector);
        }
        "Ingress" => {
            let mut services: Vec<String> = Vec::new();
            collect_backend_services(config, &mut services);
            services.sort();
            services.dedup();
            if let Some(ns) = &namespace {
                for svc in services {
                    item.relationships.push(ScrapedRelationship {
                        other: by_key("Service", key(Some(ns), &svc)),
                        other_is_upstream: false,
                        relation: "IngressService".into(),
                    });
                }
            }
        }
        _ => {}
    }
    None
}

/// Adds `ServicePod` edges onto a pod item from the Services' side: from
/// `sliced` (Services whose EndpointSlices target it) and from each
/// `(namespace, selector, service)` of a Service without slices whose
/// selector matches the pod in its namespace.
pub fn link_pod_services<'a>(
    pod: &mut ScrapedItem,
    mut sliced: Vec<Uuid>,
    selectors: impl IntoIterator<Item = (&'a str, &'a ServiceSelector, Uuid)>,
) {
    if let Some(ns) = &pod.namespace {
        for (service_ns, selector, service) in selectors {
            if service_ns == ns && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
                sliced.push(service);
            }
        }
    }
    sliced.sort();
    sliced.dedup();
    for service in sliced {
        pod.relationships.push(ScrapedRelationship {
            other: ItemRef::Id(service),
            other_is_upstream: true,
            relation: "ServicePod".into(),
        });
    }
}

/// Adds Service → Pod edges: each `(index, selector)` names a Service in
/// `items` whose selector is matched against the pods of its namespace.
pub fn link_services(items: &mut [ScrapedItem], selectors: &[(usize, ServiceSelector)]) {
    if selectors.is_empty() {
        return;
    }
    let mut pods: BTreeMap<String, Vec<PodLabels>> = BTreeMap::new();
    for item in items.iter() {
        if kind_of(item) == Some("Pod")
            && let (Some(ns), Some(id)) = (&item.namespace, item.source_id)
        {
            pods.entry(ns.clone())
                .or_default()
                .push((id, item.labels.clone()));
        }
    }
    for (index, selector) in selectors {
        let Some(service) = items.get_mut(*index) else {
            continue;
        };
        let Some(ns) = service.namespace.clone() else {
            continue;
        };
        for (pod, labels) in pods.get(&ns).map(Vec::as_slice).unwrap_or_default() {
            if selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                service.relationships.push(ScrapedRelationship {
                    other: ItemRef::Id(*pod),
                    other_is_upstream: false,
                    relation: "ServicePod".into(),
                });
            }
        }
    }
}

fn collect_backend_services(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(name) = map
                .get("service")
                .and_then(|s| s.get("name"))
                .and_then(Value::as_str)
            {
                out.push(name.to_string());
            }
            for child in map.values() {
                collect_backend_services(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|c| collect_backend_services(c, out)),
        _ => {}
    }
}

/// The uid of an EndpointSlice's owning Service.
pub fn endpoint_slice_service(slice: &Value) -> Option<Uuid> {
    slice
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|o| o.get("kind").and_then(Value::as_str) == Some("Service"))
        .and_then(|o| o.get("uid"))
        .and_then(Value::as_str)
        .and_then(|u| Uuid::parse_str(u).ok())
}

/// An EndpointSlice's Service (as an [`object_key`]) and the pods its
/// endpoints target.
pub fn endpoint_slice_targets(slice: &Value, cluster: Option<&str>) -> Option<(String, Vec<Uuid>)> {
    let namespace = slice
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)?;
    let service = slice
        .pointer("/metadata/labels")
        .and_then(|l| l.get("kubernetes.io/service-name"))
        .and_then(Value::as_str)?;
    let pods = slice
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("targetRef"))
        .filter(|t| t.get("kind").and_then(Value::as_str) == Some("Pod"))
        .filter_map(uid)
        .collect();
    Some((object_key(cluster, Some(namespace), service), pods))
}
