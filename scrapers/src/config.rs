//! ScrapeConfig documents (SPEC §10): `stratum.dev/v1` and Mission Control's
//! `configs.flanksource.com/v1`, loaded from YAML with every problem reported
//! as a `file:line:col` diagnostic. CEL and JSONPath are compiled at load.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use stratum_domain::celx::Expression;

use crate::error::ScraperError;
use crate::extract::{Field, FieldError, FieldSource};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The document is rejected.
    Error,
    /// The document loads; something was ignored.
    Warning,
}

/// A problem found in a ScrapeConfig file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// `metadata` of a document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    /// Name, unique per namespace.
    pub name: String,
    /// Namespace; `default` when absent.
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    "default".to_string()
}

/// The raw document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
}

/// `spec` of a ScrapeConfig.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// `@every 15m`, `@hourly`, `@daily`.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Documents may carry reserved keys.
    #[serde(default)]
    pub full: bool,
    /// Longest a run may take (`30m` by default); a run over it fails.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Retention settings.
    #[serde(default)]
    pub retention: Retention,
    /// Mission Control's `staleItemAge` at the top of the spec.
    #[serde(default)]
    pub stale_item_age: Option<String>,
    /// File sources.
    #[serde(default)]
    pub file: Vec<FileSpec>,
    /// Kubernetes clusters.
    #[serde(default)]
    pub kubernetes: Vec<crate::kubernetes::spec::KubernetesSpec>,
    /// HTTP APIs.
    #[serde(default)]
    pub http: Vec<crate::remote::HttpSpec>,
    /// SQL queries.
    #[serde(default)]
    pub sql: Vec<crate::remote::SqlSpec>,
    /// Cost sources (SPEC §8).
    #[serde(default)]
    pub cost: Vec<crate::cost::CostSpec>,
    /// Transformations.
    #[serde(default)]
    pub transform: Transform,
    /// Every other key, reported as unsupported.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// `spec.retention`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// `24h` by default; `keep` disables stale deletion.
    #[serde(default)]
    pub stale_item_age: Option<String>,
    /// 20 by default.
    #[serde(default)]
    pub max_delete_percent: Option<f64>,
    /// How long an open insight may go unobserved before a succeeded run
    /// resolves it; `48h` by default.
    #[serde(default)]
    pub resolve_insights_after: Option<String>,
    /// Change history rules, first match wins; changes no rule matches are
    /// kept for 60 days.
    #[serde(default)]
    pub changes: Vec<ChangeRetentionSpec>,
    /// Soft-deleted items are hard-deleted after this (`7d` by default;
    /// `keep` never).
    #[serde(default)]
    pub purge_deleted_after: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// One `spec.retention.changes[]` rule (Mission Control's `{name, age,
/// count}` are accepted too).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRetentionSpec {
    /// Glob over change types (`*`, `?`).
    #[serde(default, rename = "type", alias = "name")]
    pub change_type: Option<String>,
    /// Delete matched changes older than this (`60d` by default; `keep`
    /// never).
    #[serde(default, alias = "age")]
    pub max_age: Option<String>,
    /// Keep at most this many matched changes per item.
    #[serde(default, alias = "count")]
    pub max_count: Option<u64>,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// How documents (or rows) become items: the fields every source shares.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MappingSpec {
    /// Splits a document into items.
    #[serde(default)]
    pub items: Option<FieldSource>,
    /// Item id.
    #[serde(default)]
    pub id: Option<FieldSource>,
    /// Item type.
    #[serde(default, rename = "type")]
    pub item_type: Option<FieldSource>,
    /// Item class.
    #[serde(default)]
    pub class: Option<FieldSource>,
    /// Item name.
    #[serde(default)]
    pub name: Option<FieldSource>,
    /// Item namespace.
    #[serde(default)]
    pub namespace: Option<FieldSource>,
    /// Item status (health falls back to it).
    #[serde(default)]
    pub status: Option<FieldSource>,
    /// Tags: key → field.
    #[serde(default)]
    pub tags: BTreeMap<String, FieldSource>,
}

/// One `spec.file[]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSpec {
    /// Paths or globs, relative to the ScrapeConfig's directory.
    #[serde(default)]
    pub paths: Vec<String>,
    /// `json` or `yaml`; by extension when absent.
    #[serde(default)]
    pub format: Option<String>,
    /// Fields.
    #[serde(flatten)]
    pub mapping: MappingSpec,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// `spec.transform`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transform {
    /// JSONPaths removed from matching items.
    #[serde(default)]
    pub exclude: Vec<ExcludeSpec>,
    /// Health overrides (SPEC §6): the first rule whose filter holds
    /// replaces the built-in verdict.
    #[serde(default)]
    pub health: Vec<HealthRuleSpec>,
    /// Values hidden before a document is stored.
    #[serde(default)]
    pub mask: Vec<MaskSpec>,
    /// Edges to other items, by selector (SPEC §4).
    #[serde(default)]
    pub relationship: Vec<crate::relationships::RelationshipRuleSpec>,
    /// Change mapping and exclusion (SPEC §5).
    #[serde(default)]
    pub changes: crate::change_mapping::ChangesSpec,
    /// Analysis rules producing insights (SPEC §7).
    #[serde(default)]
    pub analysis: Vec<crate::analysis::AnalysisRuleSpec>,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// One `transform.exclude[]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExcludeSpec {
    /// Type globs; all types when empty.
    #[serde(default)]
    pub types: Vec<String>,
    /// The JSONPath to remove.
    pub jsonpath: String,
}

/// One `transform.mask[]` entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MaskSpec {
    /// CEL: which items (every item when absent).
    #[serde(default)]
    pub filter: Option<String>,
    /// The values to hide.
    pub jsonpath: String,
    /// `sha256` (the value's SHA-256, so equal secrets still compare
    /// equal), or a literal that replaces the value.
    pub value: String,
}

/// How a masked value is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskValue {
    /// The hex SHA-256 of the value (of its JSON text when not a string).
    Sha256,
    /// This text.
    Literal(String),
}

/// A compiled `transform.mask[]` entry; the filter sees the same variables
/// as a health rule's.
#[derive(Debug)]
pub struct Mask {
    /// Which items.
    pub filter: Option<Expression>,
    /// The values to hide.
    pub path: serde_json_path::JsonPath,
    /// What replaces them.
    pub value: MaskValue,
}

/// One `transform.health[]` entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthRuleSpec {
    /// CEL: when the rule applies (every item when absent).
    #[serde(default)]
    pub filter: Option<String>,
    /// CEL: a health string, or `{health, status, message, ready}`.
    pub expr: String,
}

/// A compiled `transform.health[]` entry. Both expressions see `config`
/// (the document), `id`, `type`, `class`, `name`, `tags`, `labels` and the
/// built-in `health`, `status` and `ready`, and all of them but `config`
/// as `item` (`item.namespace`: `namespace` is a reserved word in CEL).
#[derive(Debug)]
pub struct HealthRule {
    /// When the rule applies.
    pub filter: Option<Expression>,
    /// The verdict.
    pub expr: Expression,
}

/// A compiled [`MappingSpec`].
#[derive(Debug, Default)]
pub struct Mapping {
    /// Item splitter.
    pub items: Option<Field>,
    /// Id field.
    pub id: Option<Field>,
    /// Type field.
    pub item_type: Option<Field>,
    /// Class field.
    pub class: Option<Field>,
    /// Name field.
    pub name: Option<Field>,
    /// Namespace field.
    pub namespace: Option<Field>,
    /// Status field.
    pub status: Option<Field>,
    /// Tag fields.
    pub tags: Vec<(String, Field)>,
}

/// A compiled `file` entry.
#[derive(Debug)]
pub struct FileSource {
    /// Paths or globs, already resolved against the config's directory.
    pub paths: Vec<PathBuf>,
    /// Forced format.
    pub format: Option<String>,
    /// Fields.
    pub mapping: Mapping,
}

/// A compiled exclusion.
#[derive(Debug)]
pub struct Exclusion {
    /// Type globs.
    pub types: Vec<String>,
    /// The path.
    pub path: serde_json_path::JsonPath,
}

/// A validated, compiled ScrapeConfig.
#[derive(Debug)]
pub struct LoadedScrapeConfig {
    /// The file it came from.
    pub file: PathBuf,
    /// Metadata.
    pub metadata: Metadata,
    /// The spec as written (for storage, secrets elided).
    pub spec: Spec,
    /// When to run.
    pub schedule: Schedule,
    /// Longest a run may take.
    pub run_timeout: Duration,
    /// `staleItemAge`; `None` for `keep`.
    pub stale_item_age: Option<Duration>,
    /// `maxDeletePercent`.
    pub max_delete_percent: f64,
    /// File sources.
    pub files: Vec<FileSource>,
    /// Kubernetes clusters.
    pub kubernetes: Vec<crate::kubernetes::spec::KubernetesSource>,
    /// HTTP APIs.
    pub http: Vec<crate::remote::HttpSource>,
    /// SQL queries.
    pub sql: Vec<crate::remote::SqlSource>,
    /// Cost sources.
    pub costs: Vec<crate::cost::CostSource>,
    /// Exclusions.
    pub exclusions: Vec<Exclusion>,
    /// Health overrides, in order.
    pub health_rules: Vec<HealthRule>,
    /// Masks, in order.
    pub masks: Vec<Mask>,
    /// Relationship rules, in order.
    pub relationship_rules: Vec<crate::relationships::RelationshipRule>,
    /// Change mapping and exclusion; `None` when there is none.
    pub change_rules: Option<std::sync::Arc<stratum_domain::change_rules::ChangeRules>>,
    /// Analysis rules, in order.
    pub analysis_rules: Vec<crate::analysis::AnalysisRule>,
    /// Open insights unobserved this long are resolved after a succeeded run.
    pub resolve_insights_after: chrono::Duration,
    /// Change history rules and the purge of deleted items.
    pub retention: stratum_domain::store::retention::RetentionPolicy,
    /// Warnings found while loading.
    pub warnings: Vec<Diagnostic>,
}

/// Default schedule.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Default run timeout.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default `staleItemAge`.
pub const DEFAULT_STALE_AGE: Duration = Duration::from_secs(24 * 3600);

/// When a ScrapeConfig runs: an interval or a cron pattern (UTC).
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every so often.
    Every(Duration),
    /// At a cron pattern's times (5 fields, or 6 with seconds).
    Cron(Box<croner::Cron>),
}

/// Longest jitter added to a run's start.
const MAX_JITTER: Duration = Duration::from_secs(60);

impl Schedule {
    /// Parses `@every 15m`, `@hourly`, `@daily`, a bare duration, or a cron
    /// pattern such as `*/5 * * * *`.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        match parse_schedule(s) {
            Ok(d) => Ok(Schedule::Every(d)),
            Err(interval_error) if s.split_whitespace().count() >= 5 => {
                use std::str::FromStr;
                croner::Cron::from_str(s.trim())
                    .map(|c| Schedule::Cron(Box::new(c)))
                    .map_err(|e| format!("invalid cron schedule {s:?}: {e}"))
                    .map_err(|cron_error| {
                        if s.trim_start().starts_with('@') {
                            interval_error
                        } else {
                            cron_error
                        }
                    })
            }
            Err(e) => Err(format!("{e}, or a cron pattern such as \"*/5 * * * *\"")),
        }
    }

    /// How long after `now` the next run starts: the interval, or the time
    /// to the pattern's next match, plus a jitter fixed by `key` (the
    /// scraper) of up to a tenth of the period and at most a minute, so
    /// scrapers on one schedule do not all start at once.
    pub fn next_delay(&self, now: chrono::DateTime<chrono::Utc>, key: &str) -> Duration {
        let (wait, period) = match self {
            Schedule::Every(d) => (*d, *d),
            Schedule::Cron(cron) => {
                let next = cron.find_next_occurrence(&now, false).ok();
                let after = next.and_then(|n| cron.find_next_occurrence(&n, false).ok());
                let wait =
                    next.map_or(DEFAULT_INTERVAL, |n| (n - now).to_std().unwrap_or_default());
                let period = match (next, after) {
                    (Some(n), Some(a)) => (a - n).to_std().unwrap_or(wait),
                    _ => wait,
                };
                (wait, period)
            }
        };
        wait + jitter(key, period)
    }
}

/// A fixed share of `min(period / 10, 1 min)` chosen by hashing `key`.
fn jitter(key: &str, period: Duration) -> Duration {
    use sha2::{Digest, Sha256};
    let span = (period / 10).min(MAX_JITTER).as_millis() as u64;
    if span == 0 {
        return Duration::ZERO;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    Duration::from_millis(u64::from_le_bytes(bytes) % span)
}

/// Parses `@every 15m`, `@hourly`, `@daily` or a bare duration.
pub fn parse_schedule(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    match s {
        "@hourly" => return Ok(Duration::from_secs(3600)),
        "@daily" | "@midnight" => return Ok(Duration::from_secs(86_400)),
        _ => {}
    }
    let d = s.strip_prefix("@every").unwrap_or(s).trim();
    let parsed = humantime::parse_duration(d).map_err(|e| {
        format!("invalid schedule {s:?}: {e} (use \"@every 15m\", \"@hourly\" or \"@daily\")")
    })?;
    if parsed < Duration::from_secs(1) {
        return Err(format!("invalid schedule {s:?}: must be at least 1s"));
    }
    Ok(parsed)
}

/// Finds the 1-based line and column of `needle` in `text`, at or after
/// line `from_line`.
fn locate(text: &str, needle: &str, from_line: usize) -> Option<(usize, usize)> {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i + 1 >= from_line {
            if let Some(pos) = text[offset..].find(needle) {
                let abs = offset + pos;
                let line_no = text[..abs].matches('\n').count() + 1;
                let col = abs - text[..abs].rfind('\n').map(|p| p + 1).unwrap_or(0) + 1;
                return Some((line_no, col));
            }
            return None;
        }
        offset += line.len();
    }
    None
}

pub(crate) struct Ctx<'a> {
    file: String,
    text: &'a str,
    doc_line: usize,
    diags: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    /// A context for one document of `file` starting at `doc_line`.
    pub(crate) fn new(file: String, text: &'a str, doc_line: usize) -> Ctx<'a> {
        Ctx {
            file,
            text,
            doc_line,
            diags: Vec::new(),
        }
    }

    /// The diagnostics collected.
    pub(crate) fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diags
    }
}

impl Ctx<'_> {
    pub(crate) fn at(&mut self, needle: &str, severity: Severity, message: String) {
        let (line, column) = locate(self.text, needle, self.doc_line).unwrap_or((self.doc_line, 1));
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            severity,
            message,
        });
    }

    pub(crate) fn field(&mut self, name: &str, source: &Option<FieldSource>) -> Option<Field> {
        let source = source.as_ref()?;
        match Field::compile(source) {
            Ok(f) => Some(f),
            Err(FieldError {
                text,
                line,
                column,
                message,
            }) => {
                let (l, c) = locate(self.text, &text, self.doc_line).unwrap_or((self.doc_line, 1));
                let (line, column) = if line > 1 {
                    (l + line - 1, column)
                } else {
                    (l, c + column - 1)
                };
                self.diags.push(Diagnostic {
                    file: self.file.clone(),
                    line,
                    column,
                    severity: Severity::Error,
                    message: format!("{name}: {message}"),
                });
                None
            }
        }
    }

    /// Compiles the fields of a source.
    pub(crate) fn mapping(&mut self, spec: &MappingSpec) -> Mapping {
        let tags = spec
            .tags
            .iter()
            .filter_map(|(k, v)| {
                self.field(&format!("tags.{k}"), &Some(v.clone()))
                    .map(|f| (k.clone(), f))
            })
            .collect();
        Mapping {
            items: self.field("items", &spec.items),
            id: self.field("id", &spec.id),
            item_type: self.field("type", &spec.item_type),
            class: self.field("class", &spec.class),
            name: self.field("name", &spec.name),
            namespace: self.field("namespace", &spec.namespace),
            status: self.field("status", &spec.status),
            tags,
        }
    }

    /// Compiles a CEL expression of the config, reporting an error at its
    /// position in the file.
    pub(crate) fn cel(&mut self, name: &str, source: &str) -> Option<Expression> {
        match Expression::compile(source) {
            Ok(e) => Some(e),
            Err(e) => {
                let (l, c) = locate(self.text, source, self.doc_line).unwrap_or((self.doc_line, 1));
                let (line, column) = if e.line > 1 {
                    (l + e.line - 1, e.column)
                } else {
                    (l, c + e.column - 1)
                };
                self.diags.push(Diagnostic {
                    file: self.file.clone(),
                    line,
                    column,
                    severity: Severity::Error,
                    message: format!("{name}: invalid CEL: {}", e.message),
                });
                None
            }
        }
    }

    pub(crate) fn unsupported(&mut self, section: &str, other: &BTreeMap<String, Value>) {
        for key in other.keys() {
            let message = format!("{section}{key}: unknown or unsupported field, ignored");
            self.at(&format!("{key}:"), Severity::Warning, message);
        }
    }
}

/// Loads every ScrapeConfig document of a file.
pub fn load_path(path: &Path) -> Result<Vec<LoadedScrapeConfig>, ScraperError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScraperError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_str(path, &text)
}

/// The 1-based line on which each YAML document of `text` starts.
pub(crate) fn document_lines(text: &str) -> Vec<usize> {
    std::iter::once(1)
        .chain(
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.trim_end() == "---")
                .map(|(i, _)| i + 2),
        )
        .collect()
}

/// The files `paths` name: files as given, directories as their `*.yaml`
/// and `*.yml` files in name order.
pub fn config_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScraperError> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| ScraperError::Io {
                    path: path.display().to_string(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// Loads every ScrapeConfig document of `text`, read from `path`.
/// Any error diagnostic rejects the whole file.
pub fn load_str(path: &Path, text: &str) -> Result<Vec<LoadedScrapeConfig>, ScraperError> {
    let file = path.display().to_string();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut configs = Vec::new();
    let mut errors = Vec::new();
    let doc_starts = document_lines(text);
    for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let doc_line = doc_starts.get(index).copied().unwrap_or(1);
        let value: Value = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((doc_line, 1));
                errors.push(Diagnostic {
                    file: file.clone(),
                    line,
                    column,
                    severity: Severity::Error,
                    message: format!("invalid YAML: {e}"),
                });
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        let mut ctx = Ctx {
            file: file.clone(),
            text,
            doc_line,
            diags: Vec::new(),
        };
        match compile_document(&mut ctx, value, &base) {
            Some(config) if !ctx.diags.iter().any(|d| d.severity == Severity::Error) => {
                configs.push(config)
            }
            _ => {}
        }
        for d in ctx.diags {
            match d.severity {
                Severity::Error => errors.push(d),
                Severity::Warning => {
                    if let Some(last) = configs.last_mut() {
                        last.warnings.push(d);
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(configs)
    } else {
        Err(ScraperError::Invalid(errors))
    }
}

fn compile_document(ctx: &mut Ctx<'_>, value: Value, base: &Path) -> Option<LoadedScrapeConfig> {
    // Topologies share files with ScrapeConfigs; `crate::topology` loads them.
    if value.get("kind").and_then(Value::as_str) == Some("Topology") {
        return None;
    }
    let raw: RawDocument = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => {
            ctx.at(
                "spec:",
                Severity::Error,
                format!("not a valid ScrapeConfig: {e}"),
            );
            return None;
        }
    };
    match raw.api_version.as_str() {
        "stratum.dev/v1" | "configs.flanksource.com/v1" => {}
        other => {
            ctx.at(
                "apiVersion:",
                Severity::Error,
                format!("unsupported apiVersion {other:?} (expected stratum.dev/v1 or configs.flanksource.com/v1)"),
            );
            return None;
        }
    }
    if raw.kind != "ScrapeConfig" {
        ctx.at(
            "kind:",
            Severity::Error,
            format!(
                "unsupported kind {:?} (expected ScrapeConfig or Topology)",
                raw.kind
            ),
        );
        return None;
    }
    let spec = raw.spec;
    let schedule = match spec.schedule.as_deref() {
        None => Schedule::Every(DEFAULT_INTERVAL),
        Some(s) => match Schedule::parse(s) {
            Ok(schedule) => schedule,
            Err(message) => {
                ctx.at("schedule:", Severity::Error, message);
                Schedule::Every(DEFAULT_INTERVAL)
            }
        },
    };
    let run_timeout = match spec.timeout.as_deref().map(humantime::parse_duration) {
        None => DEFAULT_RUN_TIMEOUT,
        Some(Ok(d)) if d > Duration::ZERO => d,
        Some(_) => {
            ctx.at(
                "timeout:",
                Severity::Error,
                format!(
                    "invalid timeout {:?}",
                    spec.timeout.clone().unwrap_or_default()
                ),
            );
            DEFAULT_RUN_TIMEOUT
        }
    };
    let stale_raw = spec
        .retention
        .stale_item_age
        .clone()
        .or_else(|| spec.stale_item_age.clone());
    let stale_item_age = match stale_raw.as_deref() {
        None => Some(DEFAULT_STALE_AGE),
        Some("keep") => None,
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                ctx.at(
                    "staleItemAge:",
                    Severity::Error,
                    format!("invalid staleItemAge {s:?}: {e}"),
                );
                None
            }
        },
    };
    let resolve_insights_after = match spec.retention.resolve_insights_after.as_deref() {
        None => stratum_domain::store::insights::DEFAULT_RESOLVE_AFTER,
        Some(s) => match humantime::parse_duration(s)
            .ok()
            .and_then(|d| chrono::Duration::from_std(d).ok())
        {
            Some(d) => d,
            None => {
                ctx.at(
                    "resolveInsightsAfter:",
                    Severity::Error,
                    format!("invalid resolveInsightsAfter {s:?}: expected a duration like 48h"),
                );
                stratum_domain::store::insights::DEFAULT_RESOLVE_AFTER
            }
        },
    };
    let max_delete_percent = spec.retention.max_delete_percent.unwrap_or(20.0);
    if !(0.0..=100.0).contains(&max_delete_percent) {
        ctx.at(
            "maxDeletePercent:",
            Severity::Error,
            "maxDeletePercent must be between 0 and 100".into(),
        );
    }
    ctx.unsupported("spec.", &spec.other);
    ctx.unsupported("spec.retention.", &spec.retention.other);
    let retention = compile_retention(ctx, &spec.retention);
    ctx.unsupported("spec.transform.", &spec.transform.other);

    let mut files = Vec::new();
    for entry in &spec.file {
        ctx.unsupported("spec.file[].", &entry.other);
        if entry.paths.is_empty() {
            ctx.at("file:", Severity::Error, "file entry has no paths".into());
        }
        if let Some(f) = &entry.format
            && !matches!(f.as_str(), "json" | "yaml")
        {
            ctx.at(
                "format:",
                Severity::Error,
                format!("unsupported format {f:?} (json or yaml)"),
            );
        }
        files.push(FileSource {
            paths: entry.paths.iter().map(|p| base.join(p)).collect(),
            format: entry.format.clone(),
            mapping: ctx.mapping(&entry.mapping),
        });
    }
    let kubernetes =
        crate::kubernetes::spec::compile(ctx, &spec.kubernetes, base, &raw.metadata.namespace);
    let http = crate::remote::compile_http(ctx, &spec.http, base);
    let sql = crate::remote::compile_sql(ctx, &spec.sql, base);
    let costs = crate::cost::compile(ctx, &spec.cost, base);
    if files.is_empty()
        && kubernetes.is_empty()
        && http.is_empty()
        && sql.is_empty()
        && costs.is_empty()
    {
        ctx.at(
            "spec:",
            Severity::Warning,
            "no sources (file, kubernetes, http, sql, cost): every run finds nothing".into(),
        );
    }
    let mut exclusions = Vec::new();
    for ex in &spec.transform.exclude {
        match serde_json_path::JsonPath::parse(&ex.jsonpath) {
            Ok(path) => exclusions.push(Exclusion {
                types: ex.types.clone(),
                path,
            }),
            Err(e) => ctx.at(
                &ex.jsonpath,
                Severity::Error,
                format!("transform.exclude: invalid JSONPath: {}", e.message()),
            ),
        }
    }
    let mut health_rules = Vec::new();
    for (i, rule) in spec.transform.health.iter().enumerate() {
        let filter = match &rule.filter {
            Some(f) => match ctx.cel(&format!("transform.health[{i}].filter"), f) {
                Some(e) => Some(e),
                None => continue,
            },
            None => None,
        };
        if let Some(expr) = ctx.cel(&format!("transform.health[{i}].expr"), &rule.expr) {
            health_rules.push(HealthRule { filter, expr });
        }
    }
    let mut masks = Vec::new();
    for (i, mask) in spec.transform.mask.iter().enumerate() {
        let filter = match &mask.filter {
            Some(f) => match ctx.cel(&format!("transform.mask[{i}].filter"), f) {
                Some(e) => Some(e),
                None => continue,
            },
            None => None,
        };
        let value = match mask.value.as_str() {
            "sha256" => MaskValue::Sha256,
            "md5sum" | "md5" => {
                ctx.at(
                    &mask.value,
                    Severity::Warning,
                    format!(
                        "transform.mask[{i}].value: {} is hashed with SHA-256 (MD5 is not offered)",
                        mask.value
                    ),
                );
                MaskValue::Sha256
            }
            literal => MaskValue::Literal(literal.to_string()),
        };
        match serde_json_path::JsonPath::parse(&mask.jsonpath) {
            Ok(path) => masks.push(Mask {
                filter,
                path,
                value,
            }),
            Err(e) => ctx.at(
                &mask.jsonpath,
                Severity::Error,
                format!("transform.mask[{i}]: invalid JSONPath: {}", e.message()),
            ),
        }
    }
    let mut relationship_rules = crate::relationships::compile(ctx, &spec.transform.relationship);
    relationship_rules.extend(crate::relationships::compile_kubernetes(
        ctx,
        &spec.kubernetes,
    ));
    let change_rules =
        crate::change_mapping::compile(ctx, &spec.transform.changes).map(std::sync::Arc::new);
    let analysis_rules = crate::analysis::compile(ctx, &spec.transform.analysis);
    Some(LoadedScrapeConfig {
        file: PathBuf::from(&ctx.file),
        metadata: raw.metadata,
        spec,
        schedule,
        run_timeout,
        stale_item_age,
        max_delete_percent,
        files,
        kubernetes,
        http,
        sql,
        costs,
        exclusions,
        health_rules,
        masks,
        relationship_rules,
        change_rules,
        analysis_rules,
        resolve_insights_after,
        retention,
        warnings: Vec::new(),
    })
}

/// A retention age: `keep` is `None`; anything else must be a positive
/// duration such as `7d`.
fn retention_age(
    ctx: &mut Ctx<'_>,
    key: &str,
    text: Option<&str>,
    default: chrono::Duration,
) -> Option<chrono::Duration> {
    match text {
        None => Some(default),
        Some("keep") => None,
        Some(s) => match humantime::parse_duration(s)
            .ok()
            .filter(|d| !d.is_zero())
            .and_then(|d| chrono::Duration::from_std(d).ok())
        {
            Some(d) => Some(d),
            None => {
                ctx.at(
                    &format!("{key}:"),
                    Severity::Error,
                    format!("invalid {key} {s:?}: expected a duration like 7d, or keep"),
                );
                Some(default)
            }
        },
    }
}

/// `spec.retention.changes` and `purgeDeletedAfter`.
fn compile_retention(
    ctx: &mut Ctx<'_>,
    spec: &Retention,
) -> stratum_domain::store::retention::RetentionPolicy {
    use stratum_domain::store::retention::{
        ChangeRetentionRule, DEFAULT_CHANGE_MAX_AGE, DEFAULT_PURGE_DELETED_AFTER, RetentionPolicy,
    };
    let mut changes = Vec::new();
    for (i, rule) in spec.changes.iter().enumerate() {
        ctx.unsupported(&format!("spec.retention.changes[{i}]."), &rule.other);
        let Some(types) = rule.change_type.clone().filter(|t| !t.is_empty()) else {
            ctx.at(
                "changes:",
                Severity::Error,
                format!("retention.changes[{i}]: type is required (a change type or glob)"),
            );
            continue;
        };
        let max_age = retention_age(
            ctx,
            "maxAge",
            rule.max_age.as_deref(),
            DEFAULT_CHANGE_MAX_AGE,
        );
        changes.push(ChangeRetentionRule {
            types,
            max_age,
            max_count: rule.max_count,
        });
    }
    let purge_deleted_after = retention_age(
        ctx,
        "purgeDeletedAfter",
        spec.purge_deleted_after.as_deref(),
        DEFAULT_PURGE_DELETED_AFTER,
    );
    RetentionPolicy {
        changes,
        purge_deleted_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: stratum.dev/v1\nkind: ScrapeConfig\nmetadata: {name: inv}\nspec:\n  schedule: \"@every 5m\"\n  file:\n    - paths: [data/*.yaml]\n      id: $.id\n      type: {expr: '\"Inventory::\" + config.kind'}\n      name: $.name\n";

    #[test]
    fn loads_a_valid_config() {
        let configs = load_str(Path::new("/etc/x/inv.yaml"), GOOD).expect("valid");
        assert_eq!(configs.len(), 1);
        assert!(matches!(configs[0].schedule, Schedule::Every(d) if d == Duration::from_secs(300)));
        assert_eq!(
            configs[0].files[0].paths[0],
            PathBuf::from("/etc/x/data/*.yaml")
        );
    }

    #[test]
    fn health_rules_compile_and_bad_ones_name_their_line() {
        let with_rules = format!(
            "{GOOD}  transform:\n    health:\n      - filter: config.kind == 'Box'\n        expr: \"'warning'\"\n      - expr: \"'healthy'\"\n"
        );
        let configs = load_str(Path::new("inv.yaml"), &with_rules).expect("valid");
        assert_eq!(configs[0].health_rules.len(), 2);
        assert!(configs[0].health_rules[1].filter.is_none());
        let broken = with_rules.replace("config.kind == 'Box'", "config.kind == ");
        let err = load_str(Path::new("inv.yaml"), &broken).expect_err("invalid");
        let ScraperError::Invalid(diags) = err else {
            panic!("expected diagnostics")
        };
        assert_eq!(diags[0].line, 13, "{}", diags[0]);
        assert!(
            diags[0]
                .message
                .starts_with("transform.health[0].filter: invalid CEL"),
            "{}",
            diags[0]
        );
    }

    #[test]
    fn masks_compile_warn_on_md5_and_reject_bad_paths() {
        let with_masks = format!(
            "{GOOD}  transform:\n    mask:\n      - jsonpath: $.password\n        value: md5sum\n      - filter: type == 'X'\n        jsonpath: $.token\n        value: '***'\n"
        );
        let configs = load_str(Path::new("inv.yaml"), &with_masks).expect("valid");
        let masks = &configs[0].masks;
        assert_eq!(masks.len(), 2);
        assert_eq!(masks[0].value, MaskValue::Sha256);
        assert_eq!(masks[1].value, MaskValue::Literal("***".into()));
        assert!(
            configs[0]
                .warnings
                .iter()
                .any(|w| w.line == 14 && w.message.contains("SHA-256")),
            "{:?}",
            configs[0].warnings
        );
        let broken = with_masks.replace("$.password", "$.[password");
        let Err(ScraperError::Invalid(diags)) = load_str(Path::new("inv.yaml"), &broken) else {
            panic!("expected diagnostics")
        };
        assert!(
            diags[0]
                .message
                .contains("transform.mask[0]: invalid JSONPath"),
            "{}",
            diags[0]
        );
        assert_eq!(diags[0].line, 13, "{}", diags[0]);
    }

    #[test]
    fn bad_cel_names_file_line_and_column() {
        let text = GOOD.replace("config.kind'", "config.kind +'");
        let err = load_str(Path::new("inv.yaml"), &text).expect_err("invalid");
        let ScraperError::Invalid(diags) = err else {
            panic!("expected diagnostics")
        };
        assert_eq!(diags[0].line, 9, "{}", diags[0]);
        assert!(
            diags[0].to_string().starts_with("inv.yaml:9:"),
            "{}",
            diags[0]
        );
        assert!(diags[0].message.contains("CEL"), "{}", diags[0]);
    }

    #[test]
    fn retention_rules_in_both_dialects() {
        use stratum_domain::store::retention::{
            DEFAULT_CHANGE_MAX_AGE, DEFAULT_PURGE_DELETED_AFTER,
        };
        let configs = load_str(Path::new("inv.yaml"), GOOD).expect("valid");
        assert!(configs[0].retention.changes.is_empty());
        assert_eq!(
            configs[0].retention.purge_deleted_after,
            Some(DEFAULT_PURGE_DELETED_AFTER)
        );
        let ours = GOOD.replace(
            "  file:\n",
            "  retention:\n    purgeDeletedAfter: keep\n    changes: [{type: Pulled, maxAge: 7d}, {type: \"*\", maxCount: 500}, {type: diff, maxAge: keep}]\n  file:\n",
        );
        let policy = &load_str(Path::new("inv.yaml"), &ours).expect("valid")[0].retention;
        assert_eq!(policy.purge_deleted_after, None);
        let rules: Vec<_> = policy
            .changes
            .iter()
            .map(|r| (r.types.as_str(), r.max_age, r.max_count))
            .collect();
        assert_eq!(
            rules,
            vec![
                ("Pulled", Some(chrono::Duration::days(7)), None),
                ("*", Some(DEFAULT_CHANGE_MAX_AGE), Some(500)),
                ("diff", None, None),
            ]
        );
        let mission_control = ours
            .replace("stratum.dev/v1", "configs.flanksource.com/v1")
            .replace(
                "{type: Pulled, maxAge: 7d}",
                "{name: Pulled, age: 7d, count: 3}",
            );
        let policy =
            &load_str(Path::new("inv.yaml"), &mission_control).expect("valid")[0].retention;
        assert_eq!(
            (
                policy.changes[0].types.as_str(),
                policy.changes[0].max_count
            ),
            ("Pulled", Some(3))
        );
        assert_eq!(policy.changes[0].max_age, Some(chrono::Duration::days(7)));
    }

    #[test]
    fn bad_retention_rules_name_their_line() {
        let bad_age = GOOD.replace(
            "  file:\n",
            "  retention:\n    changes:\n      - type: Pulled\n        maxAge: soon\n  file:\n",
        );
        let Err(ScraperError::Invalid(diags)) = load_str(Path::new("inv.yaml"), &bad_age) else {
            panic!("expected diagnostics")
        };
        assert_eq!(diags[0].line, 9, "{}", diags[0]);
        assert!(
            diags[0].message.contains("invalid maxAge \"soon\""),
            "{}",
            diags[0]
        );
        let no_type = GOOD.replace(
            "  file:\n",
            "  retention:\n    changes:\n      - maxCount: 3\n        bogus: 1\n  file:\n",
        );
        let Err(ScraperError::Invalid(diags)) = load_str(Path::new("inv.yaml"), &no_type) else {
            panic!("expected diagnostics")
        };
        assert!(
            diags.iter().any(|d| d.message.contains("type is required")),
            "{diags:?}"
        );
        let bad_purge = GOOD.replace(
            "  file:\n",
            "  retention: {purgeDeletedAfter: 0s}\n  file:\n",
        );
        assert!(load_str(Path::new("inv.yaml"), &bad_purge).is_err());
    }

    #[test]
    fn malformed_yaml_and_unknown_fields() {
        let err = load_str(Path::new("x.yaml"), "apiVersion: [").expect_err("invalid");
        assert!(err.to_string().starts_with("x.yaml:"), "{err}");
        let text = format!("{GOOD}  bogus: []\n");
        let configs = load_str(Path::new("x.yaml"), &text).expect("loads with warning");
        assert_eq!(configs[0].warnings.len(), 1);
        assert_eq!(configs[0].warnings[0].line, 11);
    }

    #[test]
    fn schedules() {
        assert_eq!(
            parse_schedule("@every 1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_schedule("@hourly").ok(),
            Some(Duration::from_secs(3600))
        );
        assert!(parse_schedule("*/5 * * * *").is_err());
    }

    #[test]
    fn cron_schedules_and_jitter() {
        let at = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .expect("time")
                .with_timezone(&chrono::Utc)
        };
        let now = at("2026-12-01T10:02:30Z");
        let every_5m = Schedule::parse("*/5 * * * *").expect("cron");
        let delay = every_5m.next_delay(now, "inventory");
        // 10:05:00 is 150 s away; the jitter adds under 30 s (a tenth of 5 min).
        assert!(
            delay >= Duration::from_secs(150) && delay < Duration::from_secs(180),
            "{delay:?}"
        );
        assert_eq!(
            delay,
            every_5m.next_delay(now, "inventory"),
            "jitter is fixed per scraper"
        );
        let hourly = Schedule::parse("@every 1h").expect("interval");
        let d = hourly.next_delay(now, "a");
        assert!(
            d >= Duration::from_secs(3600) && d < Duration::from_secs(3660),
            "{d:?}"
        );
        assert_ne!(hourly.next_delay(now, "a"), hourly.next_delay(now, "b"));
        let tiny = Schedule::parse("@every 5s").expect("interval");
        assert!(tiny.next_delay(now, "a") < Duration::from_millis(5500));
        for bad in ["61 * * * *", "every day", "@weekly-ish", "* * * *"] {
            let err = Schedule::parse(bad).expect_err(bad);
            assert!(err.contains("schedule"), "{bad}: {err}");
        }
    }
}
