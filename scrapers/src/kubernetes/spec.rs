//! `spec.kubernetes[]` of a ScrapeConfig (SPEC §10), as written and as
//! compiled: which cluster, which kinds and namespaces, watch and events.
//! Mission Control's spellings (`namespace`, `exclusions.kind`, `watch[]`,
//! `event.exclusions`, `event.severityKeywords`) are accepted as well.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stratum_domain::Severity;

use crate::config::{Ctx, Severity as Level};

/// One `spec.kubernetes[]` entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesSpec {
    /// The cluster's name in the catalog (its `Kubernetes::Cluster` item
    /// and every object's `cluster` tag).
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// Where the kubeconfig comes from; in-cluster (or `KUBECONFIG`,
    /// `~/.kube/config`) when absent.
    #[serde(default)]
    pub kubeconfig: Option<Value>,
    /// The kubeconfig context; its current context when absent.
    #[serde(default)]
    pub context: Option<String>,
    /// Namespaces to scrape; all when empty.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Mission Control's single `namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Kinds to include and exclude.
    #[serde(default)]
    pub kinds: KindsSpec,
    /// Objects to skip.
    #[serde(default)]
    pub exclusions: ExclusionsSpec,
    /// A label selector applied to every list and watch.
    #[serde(default, alias = "selector")]
    pub label_selector: Option<String>,
    /// A field selector applied to every list and watch.
    #[serde(default)]
    pub field_selector: Option<String>,
    /// Watch for changes between full scrapes: `true`, or Mission
    /// Control's list of kinds.
    #[serde(default)]
    pub watch: Option<Value>,
    /// Objects per list page (500 by default): smaller pages hold less in
    /// memory, larger ones make fewer requests.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Events as changes.
    #[serde(default)]
    pub events: EventsSpec,
    /// Mission Control's `event`.
    #[serde(default)]
    pub event: Option<McEventSpec>,
    /// Lookups that link each object to another one by kind, name and
    /// namespace (SPEC §4).
    #[serde(default)]
    pub relationships: Vec<crate::relationships::KubernetesLookupSpec>,
    /// Other keys, reported as unsupported.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// `kinds`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KindsSpec {
    /// `Pod`, `apps/Deployment`, `cert-manager.io/v1/Certificate`; the
    /// core kinds when empty.
    #[serde(default)]
    pub include: Vec<String>,
    /// Kinds never scraped.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// `exclusions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExclusionsSpec {
    /// Object name globs.
    #[serde(default, alias = "name")]
    pub names: Vec<String>,
    /// Labels: an object carrying all of them is skipped.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Mission Control's excluded kinds.
    #[serde(default)]
    pub kind: Vec<String>,
    /// Mission Control's excluded namespace globs.
    #[serde(default)]
    pub namespace: Vec<String>,
}

/// `events`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventsSpec {
    /// Events become changes (true by default).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Events to drop.
    #[serde(default)]
    pub exclude: EventExcludeSpec,
    /// Reason glob → severity, before the built-in table.
    #[serde(default)]
    pub severity: BTreeMap<String, String>,
}

/// `events.exclude`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventExcludeSpec {
    /// Reason globs.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// Mission Control's `event`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McEventSpec {
    /// Reasons to drop: a list, or `{reason: [...]}`.
    #[serde(default)]
    pub exclusions: Option<Value>,
    /// `{error: [...], warn: [...]}` reason keywords.
    #[serde(default)]
    pub severity_keywords: BTreeMap<String, Vec<String>>,
}

/// Where a kubeconfig comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// In-cluster, else `KUBECONFIG` or `~/.kube/config`.
    Infer,
    /// A file (relative paths against the ScrapeConfig's directory).
    Path(PathBuf),
    /// An environment variable holding the kubeconfig YAML.
    Env(String),
    /// A key of a Secret, read with the in-cluster client.
    Secret {
        /// The Secret's namespace (the ScrapeConfig's).
        namespace: String,
        /// The Secret.
        name: String,
        /// The key.
        key: String,
    },
}

/// A kind to scrape: `Pod`, `apps/Deployment`, or
/// `cert-manager.io/v1/Certificate` (the version is discovered when absent).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KindRef {
    /// API group; empty for the core group or when unspecified.
    pub group: Option<String>,
    /// Version, when pinned.
    pub version: Option<String>,
    /// Kind, e.g. `Certificate`.
    pub kind: String,
}

impl KindRef {
    /// Parses `Kind`, `group/Kind` or `group/version/Kind`.
    pub fn parse(text: &str) -> Result<KindRef, String> {
        let parts: Vec<&str> = text.split('/').map(str::trim).collect();
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        };
        let (group, version, kind) = match parts.as_slice() {
            [kind] => (None, None, *kind),
            [group, kind] if group.contains('.') || !group.starts_with('v') => {
                (Some(*group), None, *kind)
            }
            [version, kind] => (Some(""), Some(*version), *kind),
            [group, version, kind] => (Some(*group), Some(*version), *kind),
            _ => {
                return Err(format!(
                    "invalid kind {text:?} (use Kind, group/Kind or group/version/Kind)"
                ));
            }
        };
        if !valid(kind)
            || !kind.starts_with(|c: char| c.is_ascii_uppercase())
            || group.is_some_and(|g| !g.is_empty() && !valid(g))
            || version.is_some_and(|v| !valid(v))
        {
            return Err(format!(
                "invalid kind {text:?} (use Kind, group/Kind or group/version/Kind)"
            ));
        }
        Ok(KindRef {
            group: group.map(|g| {
                if g == "core" {
                    String::new()
                } else {
                    g.to_string()
                }
            }),
            version: version.map(str::to_string),
            kind: kind.to_string(),
        })
    }

    /// Whether `self` (as written in a list) names the kind `kind` of `group`.
    pub fn matches(&self, group: &str, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.group.as_deref().is_none_or(|g| g == group)
    }
}

/// Objects per list page unless `pageSize` says otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// How events become changes.
#[derive(Debug, Clone)]
pub struct EventOptions {
    /// Events are scraped.
    pub enabled: bool,
    /// Reason globs dropped.
    pub exclude_reasons: Vec<glob::Pattern>,
    /// Reason glob → severity, checked before the built-in table.
    pub severity: Vec<(glob::Pattern, Severity)>,
}

/// A compiled `spec.kubernetes[]` entry.
#[derive(Debug, Clone)]
pub struct KubernetesSource {
    /// The cluster's name.
    pub cluster: String,
    /// The kubeconfig.
    pub kubeconfig: KubeconfigSource,
    /// Its context.
    pub context: Option<String>,
    /// Namespaces; all when empty.
    pub namespaces: Vec<String>,
    /// Kinds to include; the core kinds when empty.
    pub include: Vec<KindRef>,
    /// Kinds to skip.
    pub exclude: Vec<KindRef>,
    /// Object names skipped (globs).
    pub exclude_names: Vec<glob::Pattern>,
    /// Namespaces skipped (globs).
    pub exclude_namespaces: Vec<glob::Pattern>,
    /// Objects carrying all these labels are skipped.
    pub exclude_labels: BTreeMap<String, String>,
    /// Label selector.
    pub label_selector: Option<String>,
    /// Field selector.
    pub field_selector: Option<String>,
    /// Watch between full scrapes.
    pub watch: bool,
    /// Objects per list page.
    pub page_size: u32,
    /// Events.
    pub events: EventOptions,
}

fn severity_of(text: &str) -> Option<Severity> {
    match text.to_ascii_lowercase().as_str() {
        "error" => Some(Severity::High),
        "warn" | "warning" => Some(Severity::Low),
        other => other.parse().ok(),
    }
}

fn patterns(ctx: &mut Ctx<'_>, what: &str, globs: &[String]) -> Vec<glob::Pattern> {
    globs
        .iter()
        .filter_map(|g| match glob::Pattern::new(g) {
            Ok(p) => Some(p),
            Err(e) => {
                ctx.at(g, Level::Error, format!("{what}: invalid glob {g:?}: {e}"));
                None
            }
        })
        .collect()
}

fn kinds(ctx: &mut Ctx<'_>, what: &str, kinds: &[String]) -> Vec<KindRef> {
    kinds
        .iter()
        .filter_map(|k| match KindRef::parse(k) {
            Ok(k) => Some(k),
            Err(e) => {
                ctx.at(k, Level::Error, format!("{what}: {e}"));
                None
            }
        })
        .collect()
}

/// Compiles the `spec.kubernetes[]` entries, reporting problems on `ctx`.
pub(crate) fn compile(
    ctx: &mut Ctx<'_>,
    entries: &[KubernetesSpec],
    base: &Path,
    config_namespace: &str,
) -> Vec<KubernetesSource> {
    let mut sources = Vec::new();
    let mut clusters: Vec<String> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("kubernetes[{i}]");
        ctx.unsupported(&format!("spec.{at}."), &entry.other);
        let Some(cluster) = entry.cluster_name.clone().filter(|c| !c.trim().is_empty()) else {
            ctx.at(
                "kubernetes:",
                Level::Error,
                format!("{at}: clusterName is required"),
            );
            continue;
        };
        if clusters.contains(&cluster) {
            ctx.at(
                &cluster,
                Level::Error,
                format!("{at}: cluster {cluster:?} is listed twice"),
            );
        }
        clusters.push(cluster.clone());
        let kubeconfig = match &entry.kubeconfig {
            None => KubeconfigSource::Infer,
            Some(Value::String(path)) => KubeconfigSource::Path(base.join(path)),
            Some(Value::Object(o)) => {
                let o = o.get("valueFrom").and_then(Value::as_object).unwrap_or(o);
                if let Some(path) = o.get("path").and_then(Value::as_str) {
                    KubeconfigSource::Path(base.join(path))
                } else if let Some(var) = o.get("fromEnv").and_then(Value::as_str) {
                    KubeconfigSource::Env(var.to_string())
                } else if let Some(secret) = o.get("secretKeyRef").and_then(Value::as_object)
                    && let (Some(name), Some(key)) = (
                        secret.get("name").and_then(Value::as_str),
                        secret.get("key").and_then(Value::as_str),
                    )
                {
                    KubeconfigSource::Secret {
                        namespace: config_namespace.to_string(),
                        name: name.to_string(),
                        key: key.to_string(),
                    }
                } else {
                    ctx.at("kubeconfig:", Level::Error, format!("{at}.kubeconfig: expected a path, {{path}}, {{fromEnv}} or {{secretKeyRef: {{name, key}}}}"));
                    continue;
                }
            }
            Some(_) => {
                ctx.at("kubeconfig:", Level::Error, format!("{at}.kubeconfig: expected a path, {{path}}, {{fromEnv}} or {{secretKeyRef: {{name, key}}}}"));
                continue;
            }
        };
        let mut namespaces = entry.namespaces.clone();
        namespaces.extend(entry.namespace.iter().filter(|n| !n.is_empty()).cloned());
        namespaces.sort();
        namespaces.dedup();
        let include = kinds(ctx, &format!("{at}.kinds.include"), &entry.kinds.include);
        let mut exclude = kinds(ctx, &format!("{at}.kinds.exclude"), &entry.kinds.exclude);
        exclude.extend(kinds(
            ctx,
            &format!("{at}.exclusions.kind"),
            &entry.exclusions.kind,
        ));
        let watch = match &entry.watch {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Array(list)) => !list.is_empty(),
            Some(_) => {
                ctx.at(
                    "watch:",
                    Level::Error,
                    format!("{at}.watch: expected true or false"),
                );
                false
            }
        };
        let mut exclude_reasons = entry.events.exclude.reasons.clone();
        let mut severity: Vec<(String, String)> = entry
            .events
            .severity
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(mc) = &entry.event {
            match &mc.exclusions {
                Some(Value::Array(list)) => exclude_reasons
                    .extend(list.iter().filter_map(Value::as_str).map(str::to_string)),
                Some(Value::Object(o)) => exclude_reasons.extend(
                    o.get("reason")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string),
                ),
                _ => {}
            }
            for (level, keywords) in &mc.severity_keywords {
                severity.extend(keywords.iter().map(|k| (k.clone(), level.clone())));
            }
        }
        let mut event_severity = Vec::new();
        for (reason, level) in severity {
            match (glob::Pattern::new(&reason), severity_of(&level)) {
                (Ok(p), Some(s)) => event_severity.push((p, s)),
                (Err(e), _) => ctx.at(&reason, Level::Error, format!("{at}.events.severity: invalid glob {reason:?}: {e}")),
                (_, None) => ctx.at(&level, Level::Error, format!("{at}.events.severity: unknown severity {level:?} (info, low, medium, high, critical)")),
            }
        }
        let page_size = match entry.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(n @ 1..=10_000) => n,
            Some(n) => {
                ctx.at(
                    "pageSize:",
                    Level::Error,
                    format!("{at}.pageSize: {n} is not between 1 and 10000"),
                );
                DEFAULT_PAGE_SIZE
            }
        };
        let exclude_reasons = patterns(
            ctx,
            &format!("{at}.events.exclude.reasons"),
            &exclude_reasons,
        );
        sources.push(KubernetesSource {
            cluster,
            kubeconfig,
            context: entry.context.clone(),
            namespaces,
            include,
            exclude,
            exclude_names: patterns(
                ctx,
                &format!("{at}.exclusions.names"),
                &entry.exclusions.names,
            ),
            exclude_namespaces: patterns(
                ctx,
                &format!("{at}.exclusions.namespace"),
                &entry.exclusions.namespace,
            ),
            exclude_labels: entry.exclusions.labels.clone(),
            label_selector: entry.label_selector.clone().filter(|s| !s.is_empty()),
            field_selector: entry.field_selector.clone().filter(|s| !s.is_empty()),
            watch,
            page_size,
            events: EventOptions {
                enabled: entry.events.enabled.unwrap_or(true),
                exclude_reasons,
                severity: event_severity,
            },
        });
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_refs() {
        let k = |s| KindRef::parse(s).expect(s);
        assert_eq!(
            k("Pod"),
            KindRef {
                group: None,
                version: None,
                kind: "Pod".into()
            }
        );
        assert_eq!(k("apps/Deployment").group.as_deref(), Some("apps"));
        assert_eq!(k("v1/Pod").group.as_deref(), Some(""));
        let c = k("cert-manager.io/v1/Certificate");
        assert_eq!(
            (c.group.as_deref(), c.version.as_deref()),
            (Some("cert-manager.io"), Some("v1"))
        );
        assert!(c.matches("cert-manager.io", "certificate"));
        assert!(!c.matches("", "Certificate"));
        assert!(k("Secret").matches("", "Secret"));
        for bad in ["", "pod", "a/b/c/D", "apps/", "x y/Pod"] {
            assert!(KindRef::parse(bad).is_err(), "{bad}");
        }
    }
}
