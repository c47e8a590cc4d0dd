//! The ingest pipeline (SPEC §2 data flow): read sources, extract items,
//! normalize, strip noise, exclude, compute health and links, order parents
//! first, write in batches through the domain store, then settle the run.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::Value;
use stratum_domain::normalize::{
    CanonicalConfig, MAX_CONFIG_BYTES, normalize, strip_kubernetes_noise,
};
use stratum_domain::store::{
    BatchStats, IngestSession, RunCompletion, RunOutcome, RunSummary, ScraperRecord,
};
use stratum_domain::{ItemRef, RunMode, RunStatus, ScrapedItem, ScraperSource, Store, health};
use uuid::Uuid;

use crate::config::{FileSource, LoadedScrapeConfig, Mapping};
use crate::error::ScraperError;
use crate::file::{expand_paths, read_file};
use crate::kubernetes_links::{self, ServiceSelector, object_key};

/// Items written per transaction.
pub const BATCH_SIZE: usize = 500;

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Override the deletion safety valve.
    pub allow_mass_delete: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The scraper.
    pub scraper_id: Uuid,
    /// The run record.
    pub run_id: Uuid,
    /// Final status.
    pub status: RunStatus,
    /// Counters.
    pub summary: RunSummary,
    /// What settling the run did.
    pub outcome: RunOutcome,
    /// Wall time per phase.
    pub timings: PhaseTimings,
}

/// Wall time spent in each phase of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseTimings {
    /// Reading, parsing, extracting, normalizing, health and links (of
    /// Kubernetes sources: none, their pages are extracted while written).
    pub extract: std::time::Duration,
    /// Writing batches (for Kubernetes sources, listing and extracting too).
    pub ingest: std::time::Duration,
    /// Settling edges and deletions.
    pub settle: std::time::Duration,
}

/// Annotation values that skip an object or drop change types.
pub(crate) const IGNORE: [&str; 2] = ["stratum.dev/ignore", "config-db.flanksource.com/ignore"];
const IGNORE_CHANGES: [&str; 2] = [
    "stratum.dev/ignore-changes",
    "config-db.flanksource.com/ignore-changes",
];

/// The change types an object's `ignore-changes` annotation drops.
pub(crate) fn ignored_change_types(object: &Value) -> Vec<String> {
    annotation(object, &IGNORE_CHANGES)
        .map(|s| {
            s.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn annotation<'a>(config: &'a Value, keys: &[&str]) -> Option<&'a str> {
    let annotations = config.pointer("/metadata/annotations")?.as_object()?;
    keys.iter()
        .find_map(|k| annotations.get(*k).and_then(Value::as_str))
}

fn glob_match(pattern: &str, text: &str) -> bool {
    glob::Pattern::new(pattern)
        .map(|p| p.matches(text))
        .unwrap_or(pattern == text)
}

pub(crate) fn str_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k.clone(), s.clone())),
                    Value::Number(n) => Some((k.clone(), n.to_string())),
                    Value::Bool(b) => Some((k.clone(), b.to_string())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An item extracted from a document, with what linking still needs.
pub(crate) struct Extracted {
    pub(crate) item: ScrapedItem,
    /// A Kubernetes Service's selector, matched against pods after the run.
    pub(crate) selector: Option<ServiceSelector>,
    /// The document was over the size limit and stored truncated.
    pub(crate) truncated: bool,
    /// Rules that failed for this item (health overrides keep the
    /// built-in verdict, masks skip).
    pub(crate) rule_errors: Vec<String>,
    /// Relationship rule selectors, resolved once the batch is known.
    pub(crate) links: Vec<crate::relationships::PendingLink>,
    /// Changes a full-mode document carried.
    pub(crate) changes: Vec<stratum_domain::store::ExternalChange>,
    /// Insights a full-mode document carried about other items.
    pub(crate) observations: Vec<stratum_domain::InsightObservation>,
}

/// Items of a run (or a watch batch) as they are extracted, with what
/// linking still needs.
#[derive(Default)]
pub(crate) struct Collected {
    pub(crate) items: Vec<ScrapedItem>,
    pub(crate) selectors: Vec<(usize, ServiceSelector)>,
    pub(crate) links: Vec<(usize, crate::relationships::PendingLink)>,
    pub(crate) changes: Vec<stratum_domain::store::ExternalChange>,
    pub(crate) observations: Vec<stratum_domain::InsightObservation>,
    pub(crate) warnings: Vec<String>,
}

impl Collected {
    /// Takes one extracted item.
    pub(crate) fn push(&mut self, extracted: Extracted) {
        if extracted.truncated {
            self.warnings.push(format!(
                "{}: {} {:?}: config over {} bytes stored as {{\"_truncated\":true}}",
                extracted.item.source.as_deref().unwrap_or_default(),
                extracted.item.item_type,
                extracted.item.name,
                MAX_CONFIG_BYTES
            ));
        }
        self.warnings.extend(extracted.rule_errors);
        let index = self.items.len();
        if let Some(selector) = extracted.selector {
            self.selectors.push((index, selector));
        }
        self.links
            .extend(extracted.links.into_iter().map(|l| (index, l)));
        self.changes.extend(extracted.changes);
        self.observations.extend(extracted.observations);
        self.items.push(extracted.item);
    }
}

/// What an item's health overrides see (SPEC §10 "CEL": rule filters and
/// health expressions).
pub struct HealthSubject<'a> {
    /// The item's id as extracted.
    pub id: &'a str,
    /// e.g. `Kubernetes::Pod`.
    pub item_type: &'a str,
    /// e.g. `Pod`.
    pub class: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Namespace, if any.
    pub namespace: Option<&'a str>,
    /// Tags.
    pub tags: &'a BTreeMap<String, String>,
    /// Labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The (normalized) document.
    pub config: &'a Value,
}

/// The variables rule filters and expressions see besides `config` (SPEC
/// §10): as one `item` map, and each by name.
fn rule_item(subject: &HealthSubject<'_>, health: &stratum_domain::HealthResult) -> Value {
    serde_json::json!({
        "id": subject.id,
        "type": subject.item_type,
        "class": subject.class,
        "name": subject.name,
        "namespace": subject.namespace,
        "tags": subject.tags,
        "labels": subject.labels,
        "health": health.health.as_str(),
        "status": health.status,
        "ready": health.ready,
    })
}

/// `config`, `item`, and each of `item`'s fields by name but `namespace`,
/// a reserved word in CEL (expressions read `item.namespace`).
fn rule_variables<'a>(subject: &HealthSubject<'a>, item: &'a Value) -> Vec<(&'a str, &'a Value)> {
    let mut variables: Vec<(&str, &Value)> = vec![("config", subject.config), ("item", item)];
    if let Value::Object(fields) = item {
        variables.extend(
            fields
                .iter()
                .filter(|(k, _)| k.as_str() != "namespace")
                .map(|(k, v)| (k.as_str(), v)),
        );
    }
    variables
}

/// The JSON pointers of the values `masks` hide in `subject.config`, each
/// with its replacement; a filter that fails skips its mask and says why.
fn mask_targets(
    masks: &[crate::config::Mask],
    subject: &HealthSubject<'_>,
    health: &stratum_domain::HealthResult,
) -> (Vec<(String, crate::config::MaskValue)>, Vec<String>) {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    if masks.is_empty() {
        return (targets, errors);
    }
    let item = rule_item(subject, health);
    let variables = rule_variables(subject, &item);
    for mask in masks {
        if let Some(filter) = &mask.filter {
            match filter.evaluate(&variables) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => continue,
                Ok(other) => {
                    errors.push(format!(
                        "mask filter {:?} gave {other}, not a boolean",
                        filter.source()
                    ));
                    continue;
                }
                Err(e) => {
                    errors.push(format!("mask filter: {e}"));
                    continue;
                }
            }
        }
        for location in mask.path.query_located(subject.config).locations() {
            targets.push((location.to_json_pointer(), mask.value.clone()));
        }
    }
    (targets, errors)
}

/// Replaces the value at each pointer: by its SHA-256 (of the string, or
/// of the JSON text of anything else) or by a literal.
fn apply_masks(doc: &mut Value, targets: &[(String, crate::config::MaskValue)]) {
    use sha2::{Digest, Sha256};
    for (pointer, value) in targets {
        if let Some(slot) = doc.pointer_mut(pointer) {
            *slot = match value {
                crate::config::MaskValue::Literal(text) => Value::String(text.clone()),
                crate::config::MaskValue::Sha256 => {
                    let text = match &*slot {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    Value::String(hex::encode(Sha256::digest(text.as_bytes())))
                }
            };
        }
    }
}

/// Applies the first `transform.health` rule whose filter holds (SPEC §6):
/// its result is a health string or `{health, status, message, ready}`. A
/// rule that fails keeps the built-in verdict and says why.
pub fn apply_health_rules(
    rules: &[crate::config::HealthRule],
    subject: &HealthSubject<'_>,
    builtin: stratum_domain::HealthResult,
) -> (stratum_domain::HealthResult, Option<String>) {
    if rules.is_empty() {
        return (builtin, None);
    }
    let item = rule_item(subject, &builtin);
    let variables = rule_variables(subject, &item);
    let fail = |e: String, builtin| (builtin, Some(e));
    for rule in rules {
        if let Some(filter) = &rule.filter {
            match filter.evaluate(&variables) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => continue,
                Ok(other) => {
                    return fail(
                        format!(
                            "health filter {:?} gave {other}, not a boolean",
                            filter.source()
                        ),
                        builtin,
                    );
                }
                Err(e) => return fail(format!("health filter: {e}"), builtin),
            }
        }
        let out = match rule.expr.evaluate(&variables) {
            Ok(v) => v,
            Err(e) => return fail(format!("health expr: {e}"), builtin),
        };
        let parse = |h: &str| {
            h.to_ascii_lowercase()
                .parse::<stratum_domain::Health>()
                .ok()
        };
        let verdict = match &out {
            Value::String(h) => parse(h).map(|health| stratum_domain::HealthResult {
                health,
                ..builtin.clone()
            }),
            Value::Object(o) => {
                o.get("health")
                    .and_then(Value::as_str)
                    .and_then(parse)
                    .map(|health| stratum_domain::HealthResult {
                        health,
                        status: o
                            .get("status")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or_else(|| builtin.status.clone()),
                        ready: o
                            .get("ready")
                            .and_then(Value::as_bool)
                            .unwrap_or(builtin.ready),
                        message: o
                            .get("message")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or_else(|| builtin.message.clone()),
                    })
            }
            _ => None,
        };
        return match verdict {
            Some(v) => (v, None),
            None => fail(
                format!(
                    "health expr {:?} gave {out}: expected healthy, warning, unhealthy or unknown, or an object with one as `health`",
                    rule.expr.source()
                ),
                builtin,
            ),
        };
    }
    (builtin, None)
}

/// Turns one document (or row) into an item through a source's fields,
/// or explains why it cannot; `origin` (a file, a URL, a database) names
/// where it came from.
pub(crate) fn extract(
    config: &LoadedScrapeConfig,
    source: &Mapping,
    origin: &str,
    value: Value,
    now: chrono::DateTime<Utc>,
) -> Result<Option<Extracted>, String> {
    let file = origin.to_string();
    // Full mode (SPEC §10): `changes` and `analysis` are reserved, and a
    // `config` key holds the item's document.
    let (value, full_changes, analysis) = match value {
        Value::Object(mut document) if config.spec.full => {
            let changes = document.remove("changes");
            let analysis = document.remove("analysis");
            let value = match document.remove("config") {
                Some(inner) => inner,
                None => Value::Object(document),
            };
            (value, changes, analysis)
        }
        other => (other, None, None),
    };
    let err = |field: &str, e: String| format!("{file}: {field}: {e}");
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string);
    let meta_name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let is_manifest = value.get("apiVersion").is_some() && kind.is_some() && meta_name.is_some();
    let source_val = Value::String(file.clone());
    let scraper_val = Value::String(config.metadata.name.clone());
    let extra: [(&str, &Value); 2] = [("source", &source_val), ("scraper", &scraper_val)];

    if annotation(&value, &IGNORE) == Some("true") {
        return Ok(None);
    }
    let get =
        |field: &Option<crate::extract::Field>, name: &str| -> Result<Option<String>, String> {
            match field {
                Some(f) => f.string(&value, &extra).map_err(|e| err(name, e)),
                None => Ok(None),
            }
        };
    let item_type = match get(&source.item_type, "type")? {
        Some(t) => t,
        None if is_manifest => format!("Kubernetes::{}", kind.clone().unwrap_or_default()),
        None => {
            return Err(format!(
                "{file}: type: no type (set `type` on the file entry)"
            ));
        }
    };
    let name = match get(&source.name, "name")? {
        Some(n) => n,
        None => meta_name
            .clone()
            .or_else(|| {
                value
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| format!("{file}: name: no name (set `name` on the file entry)"))?,
    };
    let id = match get(&source.id, "id")? {
        Some(i) => i,
        None => value
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| match value.get("id") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                format!("{file}: id: no id for {name:?} (set `id` on the file entry)")
            })?,
    };
    let class = match get(&source.class, "class")? {
        Some(c) => c,
        None => kind.clone().unwrap_or_else(|| {
            item_type
                .rsplit("::")
                .next()
                .unwrap_or(&item_type)
                .to_string()
        }),
    };
    let namespace = match get(&source.namespace, "namespace")? {
        Some(n) => Some(n),
        None => value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let status = get(&source.status, "status")?;
    let mut tags = BTreeMap::new();
    for (key, field) in &source.tags {
        if let Some(v) = field
            .string(&value, &extra)
            .map_err(|e| err(&format!("tags.{key}"), e))?
        {
            tags.insert(key.clone(), v);
        }
    }
    let labels = str_map(value.pointer("/metadata/labels"));
    let ignored_change_types = ignored_change_types(&value);

    let mut extracted = finish(
        config,
        Draft {
            id,
            item_type,
            class,
            name,
            namespace,
            status,
            tags,
            labels,
            ignored_change_types,
            source: file.clone(),
        },
        value,
        now,
    );
    if let Some(changes) = full_changes {
        let own = ItemRef::External {
            item_type: extracted.item.item_type.clone(),
            external_id: extracted.item.primary_external_id(),
        };
        let (changes, errors) = full_mode_changes(&changes, own, &config.metadata.name);
        extracted.changes = changes;
        extracted
            .rule_errors
            .extend(errors.into_iter().map(|e| format!("{file}: {e}")));
    }
    if let Some(analysis) = analysis {
        let (own, others, errors) = crate::analysis::full_mode_entries(&analysis);
        extracted.item.insights.extend(own);
        extracted.observations = others;
        extracted
            .rule_errors
            .extend(errors.into_iter().map(|e| format!("{file}: {e}")));
    }
    Ok(Some(extracted))
}

/// The `changes` of a full-mode document (SPEC §10): each needs
/// `change_type` and `external_change_id`, and attaches to `own` unless it
/// names another item by `external_id` and `type`.
fn full_mode_changes(
    changes: &Value,
    own: ItemRef,
    scraper: &str,
) -> (Vec<stratum_domain::store::ExternalChange>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let Some(entries) = changes.as_array() else {
        return (out, vec!["changes: not a list".into()]);
    };
    for (i, entry) in entries.iter().enumerate() {
        let text = |k: &str| {
            entry
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let (Some(change_type), Some(external_change_id)) =
            (text("change_type"), text("external_change_id"))
        else {
            errors.push(format!(
                "changes[{i}]: change_type and external_change_id are required; skipped"
            ));
            continue;
        };
        let severity = match text("severity").map(|s| s.to_ascii_lowercase().parse()) {
            None => stratum_domain::Severity::Info,
            Some(Ok(s)) => s,
            Some(Err(_)) => {
                errors.push(format!("changes[{i}]: unknown severity; skipped"));
                continue;
            }
        };
        let created_at = text("created_at")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let target = match (text("external_id"), text("type").or(text("config_type"))) {
            (Some(e), Some(t)) => ItemRef::External {
                item_type: t.to_string(),
                external_id: e.to_lowercase(),
            },
            _ => own.clone(),
        };
        out.push(stratum_domain::store::ExternalChange {
            target,
            external_change_id: external_change_id.to_string(),
            change_type: change_type.to_string(),
            severity,
            source: text("source").unwrap_or(scraper).to_string(),
            summary: text("summary").unwrap_or(change_type).to_string(),
            details: entry.get("details").cloned(),
            count: entry.get("count").and_then(Value::as_i64).unwrap_or(1),
            first_observed: created_at,
            created_at,
        });
    }
    (out, errors)
}

/// An item's identity and metadata as a source extracted them, before its
/// document is normalized and judged.
pub(crate) struct Draft {
    pub(crate) id: String,
    pub(crate) item_type: String,
    pub(crate) class: String,
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) ignored_change_types: Vec<String>,
    /// Where it came from: a file, or `kubernetes/<cluster>`.
    pub(crate) source: String,
}

/// The part of extraction every source shares: normalize, strip noise,
/// exclude, judge health (built-in rules, then overrides), mask, and link
/// Kubernetes objects.
pub(crate) fn finish(
    config: &LoadedScrapeConfig,
    draft: Draft,
    value: Value,
    now: chrono::DateTime<Utc>,
) -> Extracted {
    let Draft {
        id,
        item_type,
        class,
        name,
        namespace,
        status,
        tags,
        labels,
        ignored_change_types,
        source: file,
    } = draft;

    // Normalize, strip noise, apply exclusions.
    let mut config_doc = normalize(value);
    if item_type.starts_with("Kubernetes::") {
        strip_kubernetes_noise(&mut config_doc);
    }
    for ex in &config.exclusions {
        if !ex.types.is_empty() && !ex.types.iter().any(|t| glob_match(t, &item_type)) {
            continue;
        }
        let pointers: Vec<String> = ex
            .path
            .query_located(&config_doc)
            .locations()
            .map(|l| l.to_json_pointer())
            .collect();
        for pointer in pointers.iter().rev() {
            remove_pointer(&mut config_doc, pointer);
        }
    }

    let mut health_result = health::evaluate(&item_type, &config_doc, now);
    if let Some(s) = status
        && health_result.status.is_none()
    {
        let from_status = health::fallback(&serde_json::json!({ "status": s }));
        health_result = from_status;
    }
    // Overrides judge the document as scraped; masks then hide values in
    // what is stored.
    let mut links = Vec::new();
    let mut insights = Vec::new();
    let (health_result, health_error, mask_targets, mask_errors) = {
        let subject = HealthSubject {
            id: &id,
            item_type: &item_type,
            class: &class,
            name: &name,
            namespace: namespace.as_deref(),
            tags: &tags,
            labels: &labels,
            config: &config_doc,
        };
        let (health, health_error) =
            apply_health_rules(&config.health_rules, &subject, health_result);
        let (targets, mut mask_errors) = mask_targets(&config.masks, &subject, &health);
        // Relationship and analysis rules see the document before masking,
        // like the other rules.
        if !config.relationship_rules.is_empty() || !config.analysis_rules.is_empty() {
            let item = rule_item(&subject, &health);
            let variables = rule_variables(&subject, &item);
            let (found, errors) =
                crate::relationships::evaluate(&config.relationship_rules, &variables);
            links = found;
            mask_errors.extend(errors);
            let (found, errors) = crate::analysis::evaluate(&config.analysis_rules, &variables);
            insights = found;
            mask_errors.extend(errors);
        }
        (health, health_error, targets, mask_errors)
    };
    apply_masks(&mut config_doc, &mask_targets);
    let rule_errors: Vec<String> = health_error
        .into_iter()
        .chain(mask_errors)
        .map(|e| format!("{file}: {item_type} {name:?}: {e}"))
        .collect();
    let source_id = Uuid::parse_str(&id).ok();
    let mut external_ids = vec![id.to_lowercase()];
    let is_kubernetes = item_type.starts_with("Kubernetes::");
    if is_kubernetes {
        // A cluster is known by its bare name; everything else by its
        // (cluster-scoped) object key.
        let key = if item_type == "Kubernetes::Cluster" {
            name.to_lowercase()
        } else {
            object_key(
                tags.get("cluster").map(String::as_str),
                namespace.as_deref(),
                &name,
            )
        };
        if !external_ids.contains(&key) {
            external_ids.push(key);
        }
    }
    let canonical = CanonicalConfig::new(&config_doc);
    let mut item = ScrapedItem {
        source_id,
        external_ids,
        item_type,
        class,
        name,
        namespace,
        tags,
        labels,
        properties: Value::Array(Vec::new()),
        config: canonical,
        health: health_result,
        source: Some(file),
        parent: None,
        relationships: Vec::new(),
        ignored_change_types,
        insights,
    };
    let selector = if is_kubernetes {
        kubernetes_links::link_object(&mut item, &config_doc)
    } else {
        None
    };
    let truncated = item.config.truncated();
    Extracted {
        item,
        selector,
        truncated,
        rule_errors,
        links,
        changes: Vec::new(),
        observations: Vec::new(),
    }
}

/// What one file of a source produced.
#[derive(Default)]
struct FileOutcome {
    items: Vec<Extracted>,
    errors: Vec<String>,
}

/// Reads, parses, splits and extracts one file. Its documents are dropped
/// as soon as their items are extracted, so a run holds at most one parsed
/// file per thread plus the compact items.
fn process_file(
    config: &LoadedScrapeConfig,
    source: &FileSource,
    path: &Path,
    now: chrono::DateTime<Utc>,
) -> FileOutcome {
    let mut outcome = FileOutcome::default();
    let documents = match read_file(path, source.format.as_deref()) {
        Ok(documents) => documents,
        Err(e) => {
            outcome.errors.push(e);
            return outcome;
        }
    };
    let origin = path.display().to_string();
    for document in documents {
        let values = match &source.mapping.items {
            Some(splitter) => match splitter.items(document) {
                Ok(values) => values,
                Err(e) => {
                    outcome
                        .errors
                        .push(format!("{}: items: {e}", path.display()));
                    continue;
                }
            },
            None => vec![document],
        };
        for value in values {
            match extract(config, &source.mapping, &origin, value, now) {
                Ok(Some(extracted)) => outcome.items.push(extracted),
                Ok(None) => {}
                Err(e) => outcome.errors.push(e),
            }
        }
    }
    outcome
}

/// Processes the files of a source on every core, keeping file order.
/// CPU-bound, so on a multi-threaded runtime it runs under `block_in_place`.
fn process_files(
    config: &LoadedScrapeConfig,
    source: &FileSource,
    files: &[PathBuf],
    now: chrono::DateTime<Utc>,
) -> Vec<FileOutcome> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len());
    let run = move || {
        if threads < 2 {
            return files
                .iter()
                .map(|f| process_file(config, source, f, now))
                .collect::<Vec<_>>();
        }
        // Files differ in size, so threads take the next file as they go.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut slots: Vec<(usize, FileOutcome)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(file) = files.get(i) else { break };
                            done.push((i, process_file(config, source, file, now)));
                        }
                        done
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![(
                            usize::MAX,
                            FileOutcome {
                                items: Vec::new(),
                                errors: vec!["file reader thread panicked".to_string()],
                            },
                        )]
                    })
                })
                .collect()
        });
        slots.sort_by_key(|(i, _)| *i);
        slots.into_iter().map(|(_, outcome)| outcome).collect()
    };
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
        _ => run(),
    }
}

fn remove_pointer(doc: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&key);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = key.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// Orders items so that parents produced by this run come before children.
pub(crate) fn parents_first(items: Vec<ScrapedItem>, scraper_id: Uuid) -> Vec<ScrapedItem> {
    let mut key_to_index: HashMap<ItemRef, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let id = item.source_id.unwrap_or_else(|| {
            stratum_domain::ids::item_id(scraper_id, &item.item_type, &item.primary_external_id())
        });
        key_to_index.insert(ItemRef::Id(id), i);
        for e in &item.external_ids {
            key_to_index.insert(
                ItemRef::External {
                    item_type: item.item_type.clone(),
                    external_id: e.to_lowercase(),
                },
                i,
            );
        }
    }
    let parent_of: Vec<Option<usize>> = items
        .iter()
        .map(|item| {
            item.parent
                .as_ref()
                .and_then(|(r, _)| key_to_index.get(r).copied())
        })
        .collect();
    let depth_of = |mut i: usize| {
        let mut depth = 0usize;
        while let Some(p) = parent_of[i] {
            depth += 1;
            if depth > items.len() {
                break; // a cycle; the store refuses it
            }
            i = p;
        }
        depth
    };
    let depths: Vec<usize> = (0..items.len()).map(depth_of).collect();
    let mut indexed: Vec<(usize, ScrapedItem)> = items.into_iter().enumerate().collect();
    indexed.sort_by_key(|(i, _)| depths[*i]);
    indexed.into_iter().map(|(_, item)| item).collect()
}

/// How coarsely `last_scraped_at` is maintained: at most an hour, and at
/// most half of `staleItemAge` (zero when stale items are deleted at once).
pub fn touch_granularity(stale_item_age: Option<std::time::Duration>) -> chrono::Duration {
    let hour = chrono::Duration::hours(1);
    match stale_item_age {
        None => hour,
        Some(age) => chrono::Duration::from_std(age / 2)
            .unwrap_or(hour)
            .min(hour),
    }
}

type WriteResult = stratum_domain::error::Result<BatchStats>;

/// Adds a finished batch's counters to the session, or returns its error.
fn settle(
    joined: Result<WriteResult, tokio::task::JoinError>,
    session: &mut IngestSession,
) -> Result<(), ScraperError> {
    match joined {
        Ok(Ok(stats)) => {
            session.stats.add(&stats);
            Ok(())
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(stratum_domain::DomainError::Corrupt(format!("batch writer: {e}")).into()),
    }
}

/// Writes items in batches of [`BATCH_SIZE`] as they arrive, each in its
/// own transaction, with up to [`Store::write_concurrency`] batches
/// writing while the next one is prepared. After an error nothing more is
/// written; the batches already writing finish (each commits or rolls back
/// whole) and [`BatchWriter::finish`] returns the first error.
pub(crate) struct BatchWriter<'a> {
    store: &'a Store,
    limit: usize,
    writing: VecDeque<tokio::task::JoinHandle<WriteResult>>,
    pending: Vec<ScrapedItem>,
    first_error: Option<ScraperError>,
}

impl<'a> BatchWriter<'a> {
    /// A writer into `store`.
    pub(crate) fn new(store: &'a Store) -> BatchWriter<'a> {
        BatchWriter {
            store,
            limit: store.write_concurrency().max(1),
            writing: VecDeque::new(),
            pending: Vec::with_capacity(BATCH_SIZE),
            first_error: None,
        }
    }

    /// The store written to.
    pub(crate) fn store(&self) -> &'a Store {
        self.store
    }

    /// Queues one item.
    pub(crate) async fn push_one(
        &mut self,
        session: &mut IngestSession,
        item: ScrapedItem,
    ) -> Result<(), ScraperError> {
        self.push(session, vec![item]).await
    }

    /// Queues items, writing every full batch. Fails once a batch failed.
    pub(crate) async fn push(
        &mut self,
        session: &mut IngestSession,
        items: Vec<ScrapedItem>,
    ) -> Result<(), ScraperError> {
        for item in items {
            self.pending.push(item);
            if self.pending.len() >= BATCH_SIZE {
                self.write_pending(session).await;
            }
        }
        match &self.first_error {
            Some(e) => Err(ScraperError::Domain(stratum_domain::DomainError::Corrupt(
                format!("an earlier batch failed: {e}"),
            ))),
            None => Ok(()),
        }
    }

    async fn write_pending(&mut self, session: &mut IngestSession) {
        if self.pending.is_empty() || self.first_error.is_some() {
            self.pending.clear();
            return;
        }
        let batch = parents_first(std::mem::take(&mut self.pending), session.scraper_id);
        match self.store.prepare_batch(session, batch).await {
            Ok(prepared) => {
                let writer = self.store.clone();
                self.writing.push_back(tokio::spawn(
                    async move { writer.write_batch(prepared).await },
                ));
            }
            Err(e) => {
                self.first_error.get_or_insert(e.into());
            }
        }
        if self.writing.len() >= self.limit
            && let Some(oldest) = self.writing.pop_front()
            && let Err(e) = settle(oldest.await, session)
        {
            self.first_error.get_or_insert(e);
        }
    }

    /// Writes what is queued and waits for every batch.
    pub(crate) async fn finish(mut self, session: &mut IngestSession) -> Result<(), ScraperError> {
        self.write_pending(session).await;
        while let Some(task) = self.writing.pop_front() {
            if let Err(e) = settle(task.await, session) {
                self.first_error.get_or_insert(e);
            }
        }
        match self.first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Registers the scraper and records a failed run for a config that could
/// not be loaded, leaving the catalog untouched.
pub async fn record_rejected(
    store: &Store,
    namespace: &str,
    name: &str,
    errors: Vec<String>,
) -> Result<Uuid, ScraperError> {
    let scraper_id = store
        .upsert_scraper(
            &ScraperRecord {
                name: name.to_string(),
                namespace: namespace.to_string(),
                spec: Value::Object(Default::default()),
                source: ScraperSource::File,
            },
            false,
        )
        .await?;
    let (run_id, _) = store.start_run(scraper_id, RunMode::Full).await?;
    let summary = RunSummary {
        status: Some(RunStatus::Failed),
        deletions_blocked: true,
        errors,
        ..RunSummary::default()
    };
    store.finish_run(run_id, scraper_id, &summary).await?;
    Ok(run_id)
}

/// The spec as stored and shown: inline credentials (a password in a SQL
/// URL, literal header values) replaced by `***`; `fromEnv`/`fromFile`
/// references are kept, their values never read here.
fn stored_spec(config: &LoadedScrapeConfig) -> Value {
    let mut spec = serde_json::to_value(&config.spec).unwrap_or(Value::Null);
    if let Some(Value::Array(entries)) = spec.get_mut("sql") {
        for entry in entries {
            if let Some(Value::String(url)) = entry.get_mut("connection")
                && let Ok(mut parsed) = reqwest::Url::parse(url)
                && parsed.password().is_some()
                && parsed.set_password(Some("***")).is_ok()
            {
                *url = parsed.to_string();
            }
        }
    }
    if let Some(Value::Array(entries)) = spec.get_mut("http") {
        for entry in entries {
            if let Some(Value::Object(headers)) = entry.get_mut("headers") {
                for value in headers.values_mut() {
                    if value.is_string() {
                        *value = Value::String("***".into());
                    }
                }
            }
        }
    }
    spec
}

/// Registers `config`'s scraper (or updates its spec) and returns its id.
pub(crate) async fn register(
    store: &Store,
    config: &LoadedScrapeConfig,
) -> Result<Uuid, ScraperError> {
    let spec = stored_spec(config);
    Ok(store
        .upsert_scraper(
            &ScraperRecord {
                name: config.metadata.name.clone(),
                namespace: config.metadata.namespace.clone(),
                spec,
                source: ScraperSource::File,
            },
            true,
        )
        .await?)
}

/// Runs one full scrape of `config` and records it.
pub async fn run_scrape(
    store: &Store,
    config: &LoadedScrapeConfig,
    options: &RunOptions,
) -> Result<RunReport, ScraperError> {
    let scraper_id = register(store, config).await?;
    let (run_id, started_at) = store.start_run(scraper_id, RunMode::Full).await?;
    let run = async {
        let now = Utc::now();
        let mut timings = PhaseTimings::default();
        let mut errors: Vec<String> = Vec::new();
        let warnings: Vec<String> = config.warnings.iter().map(|d| d.to_string()).collect();
        let mut collected = Collected {
            warnings,
            ..Collected::default()
        };
        for source in &config.files {
            let clock = std::time::Instant::now();
            let (files, expand_errors) = expand_paths(source);
            errors.extend(expand_errors);
            for outcome in process_files(config, source, &files, now) {
                errors.extend(outcome.errors);
                outcome
                    .items
                    .into_iter()
                    .for_each(|extracted| collected.push(extracted));
            }
            timings.extract += clock.elapsed();
        }
        // Clusters stream into the catalog page by page; the other sources
        // are written once all of them are read (their links span files).
        let mut session = IngestSession::new(scraper_id, run_id, started_at);
        session.touch_granularity = touch_granularity(config.stale_item_age);
        session.change_rules = config.change_rules.clone();
        let clock = std::time::Instant::now();
        store.preload_existing(&mut session).await?;
        timings.ingest += clock.elapsed();
        let mut writer = BatchWriter::new(store);
        let mut events = Vec::new();
        let mut rules_unresolved = 0;
        if !config.kubernetes.is_empty() {
            let clock = std::time::Instant::now();
            for source in &config.kubernetes {
                let scraped = crate::kubernetes::scrape_cluster(
                    config,
                    source,
                    now,
                    &mut session,
                    &mut writer,
                )
                .await?;
                errors.extend(scraped.errors);
                collected.warnings.extend(scraped.warnings);
                events.extend(scraped.events);
                rules_unresolved += scraped.unresolved;
            }
            timings.ingest += clock.elapsed();
        }
        let (http, sql) = tokio::join!(
            futures_util::future::join_all(
                config
                    .http
                    .iter()
                    .map(|source| crate::remote::fetch_http(config, source))
            ),
            futures_util::future::join_all(
                config
                    .sql
                    .iter()
                    .map(|source| crate::remote::fetch_sql(config, source))
            ),
        );
        for fetched in http.into_iter().chain(sql) {
            errors.extend(fetched.errors);
            collected.warnings.extend(fetched.warnings);
            fetched
                .items
                .into_iter()
                .for_each(|extracted| collected.push(extracted));
        }
        let clock = std::time::Instant::now();
        let Collected {
            mut items,
            selectors,
            links,
            changes,
            observations,
            mut warnings,
        } = collected;
        events.extend(changes);
        kubernetes_links::link_services(&mut items, &selectors);
        rules_unresolved +=
            crate::relationships::resolve(store, scraper_id, &mut items, links).await?;
        let items = parents_first(items, scraper_id);
        timings.extract += clock.elapsed();
        let clock = std::time::Instant::now();
        writer.push(&mut session, items).await?;
        writer.finish(&mut session).await?;
        let completion = RunCompletion {
            full: true,
            errors: errors.clone(),
            warnings: warnings.clone(),
            stale_item_age: config
                .stale_item_age
                .and_then(|d| chrono::Duration::from_std(d).ok()),
            max_delete_percent: config.max_delete_percent,
            allow_mass_delete: options.allow_mass_delete,
        };
        timings.ingest += clock.elapsed();
        let clock = std::time::Instant::now();
        let outcome = store.complete_run(&mut session, &completion).await?;
        // Events attach to the items just written.
        let event_stats = store
            .upsert_external_changes(events, config.change_rules.as_deref())
            .await?;
        warnings.extend(session.stats.rule_errors.iter().cloned());
        warnings.extend(event_stats.rule_errors.iter().cloned());
        session.stats.changes += event_stats.inserted + event_stats.updated;
        if event_stats.unknown_target > 0 {
            warnings.push(format!(
                "{} event(s) about objects not in the catalog dropped",
                event_stats.unknown_target
            ));
        }
        let observed = store.observe_insights(scraper_id, observations).await?;
        if observed.unknown_target > 0 {
            warnings.push(format!(
                "{} insight(s) about items not in the catalog dropped",
                observed.unknown_target
            ));
        }
        session.stats.insights.add(&observed);
        for source in &config.costs {
            let costs = crate::cost::run_source(store, scraper_id, source).await?;
            errors.extend(costs.errors);
            let import = &costs.import;
            if import.unattributed_rows > 0 {
                let spend: Vec<String> = import
                    .unattributed
                    .iter()
                    .map(|m| format!("{} {}", crate::cost::format_money(m.amount), m.currency))
                    .collect();
                warnings.push(format!(
                    "{} cost row(s) match no item ({}); kept as unattributed",
                    import.unattributed_rows,
                    spend.join(", ")
                ));
            }
        }
        timings.settle = clock.elapsed();
        let status = if errors.is_empty() {
            RunStatus::Succeeded
        } else if session.seen_count() > 0 {
            RunStatus::Partial
        } else {
            RunStatus::Failed
        };
        if status == RunStatus::Succeeded {
            // SPEC §7: what a succeeded run has not re-observed for the
            // resolve age is resolved.
            let resolved = store
                .resolve_unobserved_insights(scraper_id, Utc::now() - config.resolve_insights_after)
                .await?;
            if resolved > 0 {
                tracing::info!(scraper = %config.metadata.name, resolved, "insights resolved (not re-observed)");
            }
        }
        if let Some(reason) = &outcome.deletions_blocked {
            warnings.push(format!("deletions blocked: {reason}"));
        }
        let stats = &session.stats;
        let summary = RunSummary {
            status: Some(status),
            scraped: stats.scraped,
            created: stats.created,
            updated: stats.updated,
            unchanged: stats.unchanged,
            deleted: outcome.deleted,
            changes: stats.changes,
            edges_unresolved: outcome.edges_unresolved + rules_unresolved,
            deletions_blocked: outcome.deletions_blocked.is_some(),
            errors,
            warnings,
        };
        Ok::<_, ScraperError>((status, summary, outcome, timings))
    };
    // A run that panics or overruns its timeout is recorded as such; the
    // scheduler and every other scraper carry on.
    let run = async {
        use futures_util::FutureExt;
        match tokio::time::timeout(
            config.run_timeout,
            std::panic::AssertUnwindSafe(run).catch_unwind(),
        )
        .await
        {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(ScraperError::Panicked(message))
            }
            Err(_) => Err(ScraperError::TimedOut(config.run_timeout)),
        }
    };
    let clock = std::time::Instant::now();
    let result = run.await;
    record_run(config, &result, clock.elapsed());
    match result {
        Ok((status, summary, outcome, timings)) => {
            store.finish_run(run_id, scraper_id, &summary).await?;
            Ok(RunReport {
                scraper_id,
                run_id,
                status,
                summary,
                outcome,
                timings,
            })
        }
        Err(e) => {
            let summary = RunSummary {
                status: Some(if matches!(e, ScraperError::Panicked(_)) {
                    RunStatus::Panicked
                } else {
                    RunStatus::Failed
                }),
                deletions_blocked: true,
                errors: vec![e.to_string()],
                ..RunSummary::default()
            };
            // Best effort: the store error is the one worth returning.
            let _ = store.finish_run(run_id, scraper_id, &summary).await;
            Err(e)
        }
    }
}

/// Metrics of a finished run: runs by status, duration, items scraped and
/// errors, labelled `namespace/name` (SPEC §14).
fn record_run(
    config: &LoadedScrapeConfig,
    result: &Result<(RunStatus, RunSummary, RunOutcome, PhaseTimings), ScraperError>,
    elapsed: std::time::Duration,
) {
    let scraper = format!("{}/{}", config.metadata.namespace, config.metadata.name);
    let (status, items, errors, blocked) = match result {
        Ok((status, summary, _, _)) => (
            *status,
            summary.scraped,
            summary.errors.len(),
            summary.deletions_blocked,
        ),
        Err(ScraperError::Panicked(_)) => (RunStatus::Panicked, 0, 1, false),
        Err(_) => (RunStatus::Failed, 0, 1, false),
    };
    if blocked {
        metrics::counter!("stratum_deletions_blocked_total", "scraper" => scraper.clone())
            .increment(1);
    }
    metrics::counter!("stratum_scrape_runs_total", "scraper" => scraper.clone(), "status" => status.as_str())
        .increment(1);
    metrics::histogram!("stratum_scrape_duration_seconds", "scraper" => scraper.clone())
        .record(elapsed.as_secs_f64());
    metrics::counter!("stratum_scrape_items_total", "scraper" => scraper.clone())
        .increment(u64::try_from(items).unwrap_or(0));
    metrics::counter!("stratum_scrape_errors_total", "scraper" => scraper).increment(errors as u64);
}

#[cfg(test)]
mod health_rule_tests {
    use stratum_domain::celx::Expression;
    use stratum_domain::{Health, HealthResult};

    use super::*;
    use crate::config::HealthRule;

    fn rule(filter: Option<&str>, expr: &str) -> HealthRule {
        HealthRule {
            filter: filter.map(|f| Expression::compile(f).expect("filter")),
            expr: Expression::compile(expr).expect("expr"),
        }
    }

    fn builtin() -> HealthResult {
        HealthResult {
            health: Health::Healthy,
            status: Some("Running".into()),
            ready: true,
            message: None,
        }
    }

    fn apply(rules: &[HealthRule], config: &Value) -> (HealthResult, Option<String>) {
        let labels = BTreeMap::from([("app".to_string(), "api".to_string())]);
        let subject = HealthSubject {
            id: "uid-1",
            item_type: "Kubernetes::Deployment",
            class: "Deployment",
            name: "api",
            namespace: Some("payments"),
            tags: &BTreeMap::new(),
            labels: &labels,
            config,
        };
        apply_health_rules(rules, &subject, builtin())
    }

    #[test]
    fn masks_hash_or_replace_and_failing_filters_skip() {
        use crate::config::{Mask, MaskValue};
        let mask = |filter: Option<&str>, path: &str, value: MaskValue| Mask {
            filter: filter.map(|f| Expression::compile(f).expect("filter")),
            path: serde_json_path::JsonPath::parse(path).expect("path"),
            value,
        };
        let mut doc = serde_json::json!({"data": {"password": "hunter2", "port": 5432}, "users": [{"token": "a"}, {"token": "b"}]});
        let masks = [
            mask(None, "$.data.password", MaskValue::Sha256),
            mask(None, "$.data.port", MaskValue::Sha256),
            mask(
                Some("class == 'Deployment'"),
                "$.users[*].token",
                MaskValue::Literal("***".into()),
            ),
            mask(
                Some("class == 'Other'"),
                "$.data",
                MaskValue::Literal("gone".into()),
            ),
            mask(
                Some("config.nope.deeper"),
                "$.data",
                MaskValue::Literal("gone".into()),
            ),
        ];
        let labels = BTreeMap::new();
        let subject = HealthSubject {
            id: "uid-1",
            item_type: "Kubernetes::Deployment",
            class: "Deployment",
            name: "api",
            namespace: None,
            tags: &labels,
            labels: &labels,
            config: &doc,
        };
        let (targets, errors) = mask_targets(&masks, &subject, &builtin());
        apply_masks(&mut doc, &targets);
        use sha2::Digest;
        assert_eq!(
            doc["data"]["password"],
            hex::encode(sha2::Sha256::digest(b"hunter2"))
        );
        assert_eq!(
            doc["data"]["port"],
            hex::encode(sha2::Sha256::digest(b"5432"))
        );
        assert_eq!(
            doc["users"],
            serde_json::json!([{"token": "***"}, {"token": "***"}])
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("mask filter"), "{errors:?}");
    }

    #[test]
    fn first_matching_rule_wins_and_failures_keep_the_builtin() {
        let config = serde_json::json!({"spec": {"replicas": 1}});
        let rules = [
            rule(Some("type == 'Kubernetes::Pod'"), "'unhealthy'"),
            rule(
                Some("config.spec.replicas < 2 && labels.app == name && class == 'Deployment'"),
                "{'health': 'warning', 'status': 'SingleReplica', 'message': 'one replica in ' + item.namespace}",
            ),
            rule(None, "'unhealthy'"),
        ];
        let (r, err) = apply(&rules, &config);
        assert_eq!(err, None);
        assert_eq!(
            (r.health, r.status.as_deref(), r.message.as_deref(), r.ready),
            (
                Health::Warning,
                Some("SingleReplica"),
                Some("one replica in payments"),
                true
            )
        );
        // A plain string keeps the built-in status; the built-in health is visible.
        let (r, _) = apply(
            &[rule(
                None,
                "item.health == 'healthy' ? 'UNKNOWN' : 'healthy'",
            )],
            &config,
        );
        assert_eq!(
            (r.health, r.status.as_deref()),
            (Health::Unknown, Some("Running"))
        );
        // No rule matches: the built-in verdict stands.
        let (r, err) = apply(&[rule(Some("false"), "'unhealthy'")], &config);
        assert_eq!((r.health, err), (Health::Healthy, None));
        // Errors and bad values keep the built-in verdict and say why.
        for (filter, expr, says) in [
            (Some("config.nope.deeper"), "'unhealthy'", "health filter"),
            (Some("'yes'"), "'unhealthy'", "not a boolean"),
            (None, "config.nope.deeper", "health expr"),
            (None, "'purple'", "expected healthy"),
            (None, "{'status': 'x'}", "expected healthy"),
        ] {
            let (r, err) = apply(&[rule(filter, expr)], &config);
            assert_eq!(r, builtin(), "{expr}");
            let err = err.unwrap_or_default();
            assert!(err.contains(says), "{expr}: {err}");
        }
    }
}
