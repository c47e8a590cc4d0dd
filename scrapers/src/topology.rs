//! Topology documents (SPEC §9): `kind: Topology` in the same files as
//! ScrapeConfigs, checked at load (names, types, selectors, search queries,
//! CEL, adoption cycles) with file and line, and a loop per topology that
//! writes it through [`Store::apply_topology`] on its schedule.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use stratum_domain::Store;
use stratum_domain::store::topology::{
    AdoptionCandidate, ComponentSpec, TopologyPlan, adoption_edges, flatten,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Ctx, Diagnostic, Metadata, Schedule, Severity};
use crate::error::ScraperError;

/// Default re-evaluation interval.
pub const DEFAULT_TOPOLOGY_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawTopology {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: RawSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    components: Vec<Value>,
}

/// A checked topology.
#[derive(Debug, Clone)]
pub struct LoadedTopology {
    /// The file it came from.
    pub file: std::path::PathBuf,
    /// What to write.
    pub plan: TopologyPlan,
    /// When to re-evaluate it.
    pub schedule: Schedule,
}

/// Loads every Topology document of a file (other kinds are skipped).
pub fn load_path(path: &Path) -> Result<Vec<LoadedTopology>, ScraperError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScraperError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_str(path, &text)
}

/// Checks one component and its children, reporting at their lines.
fn check(ctx: &mut Ctx<'_>, at: &str, c: &ComponentSpec) {
    if c.name.trim().is_empty() {
        ctx.at(
            "name:",
            Severity::Error,
            format!("{at}.name: must not be empty"),
        );
    }
    if c.component_type.trim().is_empty() {
        ctx.at(
            &c.name,
            Severity::Error,
            format!("{at}.type: must not be empty"),
        );
    }
    for (i, selector) in c.configs.iter().enumerate() {
        if selector.is_empty() {
            ctx.at(
                "configs:",
                Severity::Error,
                format!("{at}.configs[{i}]: selects nothing (give search, types, namespaces, tags or labels)"),
            );
        }
        if let Some(query) = &selector.search
            && let Err(e) = stratum_domain::search::parse(query)
        {
            ctx.at(
                query,
                Severity::Error,
                format!("{at}.configs[{i}].search: {e}"),
            );
        }
    }
    for (i, selector) in c.selectors.iter().enumerate() {
        if selector.is_empty() {
            ctx.at(
                "selectors:",
                Severity::Error,
                format!("{at}.selectors[{i}]: selects nothing (give types, names or labels)"),
            );
        }
    }
    if let Some(e) = &c.health_expr {
        ctx.cel(&format!("{at}.healthExpr"), e);
    }
    if let Some(e) = &c.status_expr {
        ctx.cel(&format!("{at}.statusExpr"), e);
    }
    let mut seen = std::collections::HashSet::new();
    for (i, child) in c.components.iter().enumerate() {
        if !seen.insert((&child.component_type, &child.name)) {
            ctx.at(
                &child.name,
                Severity::Error,
                format!(
                    "{at}.components[{i}]: a sibling of type {:?} is already named {:?}",
                    child.component_type, child.name
                ),
            );
        }
        check(ctx, &format!("{at}.components[{i}]"), child);
    }
}

/// Loads every Topology document of `text`; any error rejects the file.
pub fn load_str(path: &Path, text: &str) -> Result<Vec<LoadedTopology>, ScraperError> {
    let file = path.display().to_string();
    let mut out = Vec::new();
    let mut errors: Vec<Diagnostic> = Vec::new();
    let doc_starts = crate::config::document_lines(text);
    for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let doc_line = doc_starts.get(index).copied().unwrap_or(1);
        let Ok(value) = Value::deserialize(de) else {
            // The ScrapeConfig loader reports malformed YAML.
            break;
        };
        if value.get("kind").and_then(Value::as_str) != Some("Topology") {
            continue;
        }
        let mut ctx = Ctx::new(file.clone(), text, doc_line);
        if let Some(topology) = compile(&mut ctx, value, path) {
            let diags = ctx.into_diagnostics();
            if diags.iter().any(|d| d.severity == Severity::Error) {
                errors.extend(diags.into_iter().filter(|d| d.severity == Severity::Error));
            } else {
                out.push(topology);
            }
        } else {
            errors.extend(
                ctx.into_diagnostics()
                    .into_iter()
                    .filter(|d| d.severity == Severity::Error),
            );
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ScraperError::Invalid(errors))
    }
}

/// Where a serde error points: the first `` `field` `` it names, as `field:`,
/// or `fallback`.
fn field_needle(error: &str, fallback: &str) -> String {
    error
        .split('`')
        .nth(1)
        .map(|f| format!("{f}:"))
        .unwrap_or_else(|| fallback.into())
}

fn compile(ctx: &mut Ctx<'_>, value: Value, path: &Path) -> Option<LoadedTopology> {
    let raw: RawTopology = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => {
            let text = e.to_string();
            let needle = field_needle(&text, "spec:");
            ctx.at(
                &needle,
                Severity::Error,
                format!("not a valid Topology: {text}"),
            );
            return None;
        }
    };
    if raw.api_version != "stratum.dev/v1" || raw.kind != "Topology" {
        ctx.at(
            "apiVersion:",
            Severity::Error,
            format!(
                "unsupported apiVersion {:?} (expected stratum.dev/v1)",
                raw.api_version
            ),
        );
        return None;
    }
    let schedule = match raw.spec.schedule.as_deref() {
        None => Schedule::Every(DEFAULT_TOPOLOGY_INTERVAL),
        Some(s) => match Schedule::parse(s) {
            Ok(s) => s,
            Err(message) => {
                ctx.at("schedule:", Severity::Error, message);
                return None;
            }
        },
    };
    let mut components = Vec::new();
    for (i, value) in raw.spec.components.into_iter().enumerate() {
        match serde_json::from_value::<ComponentSpec>(value) {
            Ok(c) => components.push(c),
            Err(e) => {
                let text = e.to_string();
                let needle = field_needle(&text, "components:");
                ctx.at(
                    &needle,
                    Severity::Error,
                    format!("spec.components[{i}]: {text}"),
                );
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in components.iter().enumerate() {
        if !seen.insert((&c.component_type, &c.name)) {
            ctx.at(
                &c.name,
                Severity::Error,
                format!(
                    "spec.components[{i}]: another top-level component of type {:?} is named {:?}",
                    c.component_type, c.name
                ),
            );
        }
        check(ctx, &format!("spec.components[{i}]"), c);
    }
    let plan = TopologyPlan {
        namespace: raw.metadata.namespace,
        name: raw.metadata.name,
        components,
    };
    // Adoption among this topology's own components must not loop.
    let candidates: Vec<AdoptionCandidate> = flatten(&plan)
        .into_iter()
        .map(|c| AdoptionCandidate {
            id: c.id,
            parent: c.parent,
            component_type: c.spec.component_type.clone(),
            name: c.spec.name.clone(),
            labels: c.spec.labels.clone(),
            selectors: c.spec.selectors.clone(),
        })
        .collect();
    if let (_, Some(cycle)) = adoption_edges(&candidates) {
        let first = cycle.first().cloned().unwrap_or_default();
        ctx.at(
            &first,
            Severity::Error,
            format!("component selectors form a cycle: {}", cycle.join(" → ")),
        );
        return None;
    }
    Some(LoadedTopology {
        file: path.to_path_buf(),
        plan,
        schedule,
    })
}

/// Loads the topologies of files and directories (`*.yaml`, `*.yml`).
pub fn load_paths(paths: &[std::path::PathBuf]) -> Result<Vec<LoadedTopology>, ScraperError> {
    let mut out = Vec::new();
    for f in crate::config::config_files(paths)? {
        out.extend(load_path(&f)?);
    }
    Ok(out)
}

/// Writes each topology at once and then on its schedule until `cancel`.
pub fn spawn_all(
    store: Store,
    topologies: Vec<Arc<LoadedTopology>>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) {
    for topology in topologies {
        spawn_one(store.clone(), topology, tracker, cancel.clone());
    }
}

/// Spawns the loop of one topology on `tracker` until `cancel` fires.
pub fn spawn_one(
    store: Store,
    topology: Arc<LoadedTopology>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) {
    {
        tracker.spawn(async move {
            let key = format!("{}/{}", topology.plan.namespace, topology.plan.name);
            loop {
                match store.apply_topology(&topology.plan).await {
                    Ok(outcome) => tracing::info!(
                        topology = %key,
                        components = outcome.components,
                        attached = outcome.attached,
                        adopted = outcome.adopted,
                        removed = outcome.removed,
                        health_changes = outcome.health_changes,
                        "topology applied"
                    ),
                    Err(e) => tracing::error!(topology = %key, error = %e, "topology failed"),
                }
                let delay = topology.schedule.next_delay(chrono::Utc::now(), &key);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        });
    }
}
