//! The `http` and `sql` scrapers (SPEC §10): JSON from an HTTP API, page
//! by page through a `next` expression, and rows of a SQL query on
//! PostgreSQL, MySQL/MariaDB or SQLite (each column a JSON value: numbers,
//! strings, booleans, JSON columns as JSON, DECIMAL/NUMERIC as exact
//! strings, times as RFC 3339), each turned into items through the same
//! fields as the file scraper. Secrets (`fromEnv`, `fromFile`) are read at run
//! time and never stored.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Ctx, LoadedScrapeConfig, Mapping, MappingSpec, Severity};
use crate::extract::{Field, FieldSource};
use crate::pipeline::{Extracted, extract};

/// A value written inline or read at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// Written in the config.
    Literal(String),
    /// An environment variable, with an optional prefix (`Bearer `).
    Env {
        /// The variable.
        var: String,
        /// Put in front of its value.
        prefix: String,
    },
    /// A file's content (trimmed), with an optional prefix.
    File {
        /// The file, relative to the ScrapeConfig's directory.
        path: PathBuf,
        /// Put in front of its content.
        prefix: String,
    },
}

impl SecretRef {
    fn compile(value: &Value, base: &Path) -> Result<SecretRef, String> {
        match value {
            Value::String(s) => Ok(SecretRef::Literal(s.clone())),
            Value::Object(o) => {
                let o = o.get("valueFrom").and_then(Value::as_object).unwrap_or(o);
                let prefix = o
                    .get("prefix")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if let Some(var) = o.get("fromEnv").and_then(Value::as_str) {
                    Ok(SecretRef::Env {
                        var: var.to_string(),
                        prefix,
                    })
                } else if let Some(path) = o.get("fromFile").and_then(Value::as_str) {
                    Ok(SecretRef::File {
                        path: base.join(path),
                        prefix,
                    })
                } else if let Some(v) = o.get("value").and_then(Value::as_str) {
                    Ok(SecretRef::Literal(format!("{prefix}{v}")))
                } else {
                    Err("expected a string, {fromEnv: VAR} or {fromFile: path} (with an optional prefix)".into())
                }
            }
            _ => Err("expected a string, {fromEnv: VAR} or {fromFile: path}".into()),
        }
    }

    /// The value, read now.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            SecretRef::Literal(s) => Ok(s.clone()),
            SecretRef::Env { var, prefix } => std::env::var(var)
                .map(|v| format!("{prefix}{v}"))
                .map_err(|_| format!("${var} is not set")),
            SecretRef::File { path, prefix } => std::fs::read_to_string(path)
                .map(|v| format!("{prefix}{}", v.trim()))
                .map_err(|e| format!("{}: {e}", path.display())),
        }
    }
}

/// One `spec.http[]` entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSpec {
    /// The first page.
    #[serde(default)]
    pub url: Option<String>,
    /// `GET` (default) or `POST`.
    #[serde(default)]
    pub method: Option<String>,
    /// A JSON body (POST).
    #[serde(default)]
    pub body: Option<Value>,
    /// Headers: a string, `{fromEnv, prefix}` or `{fromFile, prefix}`.
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
    /// The next page's URL from the response (`config`) and `url`; none,
    /// null or `""` ends the scrape.
    #[serde(default)]
    pub next: Option<FieldSource>,
    /// Per request (`30s` by default).
    #[serde(default)]
    pub timeout: Option<String>,
    /// At most this many pages (100 by default).
    #[serde(default)]
    pub max_pages: Option<u32>,
    /// Fields.
    #[serde(flatten)]
    pub mapping: MappingSpec,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// One `spec.sql[]` entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqlSpec {
    /// A `postgres://`, `mysql://` (`mariadb://`) or `sqlite:` URL,
    /// `{fromEnv}` or `{fromFile}`.
    #[serde(default)]
    pub connection: Option<Value>,
    /// The query; each row is an item.
    #[serde(default)]
    pub query: Option<String>,
    /// For connecting and querying (`30s` by default).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Fields.
    #[serde(flatten)]
    pub mapping: MappingSpec,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// A compiled `http` entry.
#[derive(Debug)]
pub struct HttpSource {
    /// The first page.
    pub url: reqwest::Url,
    /// GET or POST.
    pub method: reqwest::Method,
    /// JSON body.
    pub body: Option<Value>,
    /// Headers.
    pub headers: Vec<(reqwest::header::HeaderName, SecretRef)>,
    /// Next page.
    pub next: Option<Field>,
    /// Per request.
    pub timeout: Duration,
    /// Page cap.
    pub max_pages: u32,
    /// Fields.
    pub mapping: Mapping,
}

/// A compiled `sql` entry.
#[derive(Debug)]
pub struct SqlSource {
    /// The database URL.
    pub connection: SecretRef,
    /// The query.
    pub query: String,
    /// For connecting and querying.
    pub timeout: Duration,
    /// Fields.
    pub mapping: Mapping,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

fn timeout(ctx: &mut Ctx<'_>, at: &str, text: &Option<String>) -> Duration {
    match text.as_deref().map(humantime::parse_duration) {
        None => DEFAULT_TIMEOUT,
        Some(Ok(d)) if d > Duration::ZERO => d,
        Some(_) => {
            let t = text.clone().unwrap_or_default();
            ctx.at(
                &t,
                Severity::Error,
                format!("{at}.timeout: invalid duration {t:?}"),
            );
            DEFAULT_TIMEOUT
        }
    }
}

/// Compiles `spec.http[]`.
pub(crate) fn compile_http(
    ctx: &mut Ctx<'_>,
    entries: &[HttpSpec],
    base: &Path,
) -> Vec<HttpSource> {
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("http[{i}]");
        ctx.unsupported(&format!("spec.{at}."), &entry.other);
        let Some(text) = entry.url.as_deref() else {
            ctx.at("http:", Severity::Error, format!("{at}: url is required"));
            continue;
        };
        let url = match reqwest::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            Ok(u) => {
                ctx.at(
                    text,
                    Severity::Error,
                    format!(
                        "{at}.url: unsupported scheme {:?} (http or https)",
                        u.scheme()
                    ),
                );
                continue;
            }
            Err(e) => {
                ctx.at(text, Severity::Error, format!("{at}.url: {e}"));
                continue;
            }
        };
        let method = match entry
            .method
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("GET") => reqwest::Method::GET,
            Some("POST") => reqwest::Method::POST,
            Some(other) => {
                ctx.at(
                    other,
                    Severity::Error,
                    format!("{at}.method: {other} is not supported (GET or POST)"),
                );
                continue;
            }
        };
        let mut headers = Vec::new();
        for (name, value) in &entry.headers {
            let header = match reqwest::header::HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) => h,
                Err(e) => {
                    ctx.at(name, Severity::Error, format!("{at}.headers.{name}: {e}"));
                    continue;
                }
            };
            match SecretRef::compile(value, base) {
                Ok(s) => headers.push((header, s)),
                Err(e) => ctx.at(name, Severity::Error, format!("{at}.headers.{name}: {e}")),
            }
        }
        out.push(HttpSource {
            url,
            method,
            body: entry.body.clone(),
            headers,
            next: ctx.field(&format!("{at}.next"), &entry.next),
            timeout: timeout(ctx, &at, &entry.timeout),
            max_pages: entry.max_pages.unwrap_or(100).max(1),
            mapping: ctx.mapping(&entry.mapping),
        });
    }
    out
}

/// Compiles `spec.sql[]`.
pub(crate) fn compile_sql(ctx: &mut Ctx<'_>, entries: &[SqlSpec], base: &Path) -> Vec<SqlSource> {
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("sql[{i}]");
        ctx.unsupported(&format!("spec.{at}."), &entry.other);
        let connection = match entry
            .connection
            .as_ref()
            .map(|c| SecretRef::compile(c, base))
        {
            Some(Ok(SecretRef::Literal(url))) => match url.split_once(':').map(|(s, _)| s) {
                Some("postgres" | "postgresql" | "mysql" | "mariadb" | "sqlite") => {
                    SecretRef::Literal(url)
                }
                _ => {
                    ctx.at(
                        "connection:",
                        Severity::Error,
                        format!(
                            "{at}.connection: a postgres://, mysql://, mariadb:// or sqlite: URL is needed"
                        ),
                    );
                    continue;
                }
            },
            Some(Ok(secret)) => secret,
            Some(Err(e)) => {
                ctx.at(
                    "connection:",
                    Severity::Error,
                    format!("{at}.connection: {e}"),
                );
                continue;
            }
            None => {
                ctx.at(
                    "sql:",
                    Severity::Error,
                    format!("{at}: connection is required"),
                );
                continue;
            }
        };
        let Some(query) = entry.query.clone().filter(|q| !q.trim().is_empty()) else {
            ctx.at("sql:", Severity::Error, format!("{at}: query is required"));
            continue;
        };
        out.push(SqlSource {
            connection,
            query,
            timeout: timeout(ctx, &at, &entry.timeout),
            mapping: ctx.mapping(&entry.mapping),
        });
    }
    out
}

/// A URL or database as shown in errors and `source`: no credentials.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.set_query(None);
            u.to_string()
        }
        Err(_) => url.split('?').next().unwrap_or(url).to_string(),
    }
}

/// What a source produced.
#[derive(Default)]
pub(crate) struct Fetched {
    pub(crate) items: Vec<Extracted>,
    pub(crate) errors: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

impl Fetched {
    fn documents(
        &mut self,
        config: &LoadedScrapeConfig,
        mapping: &Mapping,
        origin: &str,
        document: Value,
    ) {
        let now = Utc::now();
        let values = match &mapping.items {
            Some(splitter) => match splitter.items(document) {
                Ok(v) => v,
                Err(e) => {
                    self.errors.push(format!("{origin}: items: {e}"));
                    return;
                }
            },
            None => vec![document],
        };
        for value in values {
            match extract(config, mapping, origin, value, now) {
                Ok(Some(item)) => self.items.push(item),
                Ok(None) => {}
                Err(e) => self.errors.push(e),
            }
        }
    }
}

/// Fetches every page of an `http` source.
pub(crate) async fn fetch_http(config: &LoadedScrapeConfig, source: &HttpSource) -> Fetched {
    let mut out = Fetched::default();
    let client = match reqwest::Client::builder().timeout(source.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            out.errors.push(format!("http client: {e}"));
            return out;
        }
    };
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, secret) in &source.headers {
        match secret
            .resolve()
            .map(|v| reqwest::header::HeaderValue::from_str(&v))
        {
            Ok(Ok(mut v)) => {
                v.set_sensitive(true);
                headers.insert(name.clone(), v);
            }
            Ok(Err(_)) => out
                .errors
                .push(format!("header {name}: not a valid header value")),
            Err(e) => out.errors.push(format!("header {name}: {e}")),
        }
    }
    if !out.errors.is_empty() {
        return out;
    }
    let mut url = source.url.clone();
    let mut seen: HashSet<String> = HashSet::new();
    for page in 1..=source.max_pages {
        let origin = redacted(url.as_str());
        seen.insert(url.to_string());
        let mut request = client
            .request(source.method.clone(), url.clone())
            .headers(headers.clone());
        if let Some(body) = &source.body {
            request = request.json(body);
        }
        let what = format!("{} {origin}", source.method);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                out.errors.push(format!(
                    "{what}: timed out after {}",
                    humantime::format_duration(source.timeout)
                ));
                return out;
            }
            Err(e) => {
                out.errors.push(format!(
                    "{what}: {}",
                    std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| e.to_string())
                ));
                return out;
            }
        };
        let status = response.status();
        if !status.is_success() {
            out.errors.push(format!("{what}: HTTP {status}"));
            return out;
        }
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) if e.is_timeout() => {
                out.errors.push(format!(
                    "{what}: timed out reading the body after {}",
                    humantime::format_duration(source.timeout)
                ));
                return out;
            }
            Err(e) => {
                out.errors.push(format!("{what}: reading the body: {e}"));
                return out;
            }
        };
        let document: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(format!(
                    "{what}: invalid JSON at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ));
                return out;
            }
        };
        let next = match &source.next {
            Some(field) => {
                let current = Value::String(url.to_string());
                match field.string(&document, &[("url", &current)]) {
                    Ok(n) => n.filter(|n| !n.is_empty() && n != "null"),
                    Err(e) => {
                        out.errors.push(format!("{what}: next: {e}"));
                        None
                    }
                }
            }
            None => None,
        };
        out.documents(config, &source.mapping, &origin, document);
        let Some(next) = next else { return out };
        match url.join(&next) {
            Ok(n) if seen.contains(n.as_str()) => {
                out.warnings.push(format!(
                    "{what}: next page {} was already fetched; stopping",
                    redacted(n.as_str())
                ));
                return out;
            }
            Ok(n) => url = n,
            Err(e) => {
                out.errors.push(format!("{what}: next page {next:?}: {e}"));
                return out;
            }
        }
        if page == source.max_pages {
            out.errors.push(format!(
                "{what}: stopped after maxPages ({}) with more pages left",
                source.max_pages
            ));
        }
    }
    out
}

/// MySQL has no boolean type: `BOOLEAN` columns are `TINYINT(1)` and come
/// back as numbers; they become JSON booleans, as on the other databases.
fn mysql_booleans(row: &sea_orm::QueryResult, document: &mut Value) {
    use sea_orm::sqlx::{Column, Row, TypeInfo};
    let (Some(row), Value::Object(fields)) = (row.try_as_mysql_row(), document) else {
        return;
    };
    for column in row.columns() {
        if column.type_info().name() != "BOOLEAN" {
            continue;
        }
        if let Some(value) = fields.get_mut(column.name())
            && let Some(n) = value.as_i64().or_else(|| value.as_u64().map(|n| n as i64))
        {
            *value = Value::Bool(n != 0);
        }
    }
}

/// Runs the query of a `sql` source.
pub(crate) async fn fetch_sql(config: &LoadedScrapeConfig, source: &SqlSource) -> Fetched {
    use sea_orm::{
        ConnectOptions, ConnectionTrait, Database, FromQueryResult, JsonValue, Statement,
    };
    let mut out = Fetched::default();
    let url = match source.connection.resolve() {
        Ok(u) => u,
        Err(e) => {
            out.errors.push(format!("sql connection: {e}"));
            return out;
        }
    };
    let origin = redacted(&url);
    // MariaDB speaks the MySQL protocol.
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url,
    };
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .min_connections(0)
        .connect_timeout(source.timeout)
        .acquire_timeout(source.timeout)
        .sqlx_logging(false);
    let db = match tokio::time::timeout(source.timeout, Database::connect(options)).await {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => {
            out.errors.push(format!("{origin}: connect: {e}"));
            return out;
        }
        Err(_) => {
            out.errors.push(format!("{origin}: connect: timed out"));
            return out;
        }
    };
    let statement = Statement::from_string(db.get_database_backend(), source.query.clone());
    let rows = tokio::time::timeout(source.timeout, db.query_all_raw(statement)).await;
    let _ = db.close().await;
    match rows {
        Ok(Ok(rows)) => {
            for row in rows {
                match JsonValue::from_query_result(&row, "") {
                    Ok(mut document) => {
                        mysql_booleans(&row, &mut document);
                        out.documents(config, &source.mapping, &origin, document);
                    }
                    Err(e) => out.errors.push(format!("{origin}: row: {e}")),
                }
            }
        }
        Ok(Err(e)) => out.errors.push(format!("{origin}: query: {e}")),
        Err(_) => out.errors.push(format!(
            "{origin}: query: timed out after {}",
            humantime::format_duration(source.timeout)
        )),
    }
    out
}
