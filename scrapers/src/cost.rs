//! The `cost` source (SPEC §8): FOCUS-shaped rows from CSV or JSON files,
//! or from an HTTP URL, parsed and checked in full before any of a file is
//! imported through [`Store::import_costs`].
//!
//! Default columns are FOCUS's: `ResourceId`, `ChargePeriodStart`,
//! `ChargePeriodEnd`, `EffectiveCost`, `BilledCost` (optional, defaults to
//! the effective cost), `BillingCurrency` and `ServiceName` (optional);
//! `columns` renames any of them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stratum_domain::Store;
use stratum_domain::store::costs::{CostImport, CostRow};
use uuid::Uuid;

use crate::config::{Ctx, Severity};

/// One `cost[]` entry as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CostSpec {
    /// Files or globs, relative to the ScrapeConfig's directory.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Or one URL answering with the rows.
    #[serde(default)]
    pub url: Option<String>,
    /// `csv` or `json`; by extension when absent (`csv` for a URL).
    #[serde(default)]
    pub format: Option<String>,
    /// Column renames: `resourceId`, `chargePeriodStart`,
    /// `chargePeriodEnd`, `effectiveCost`, `billedCost`,
    /// `billingCurrency`, `serviceName` → the source's column names.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// How rows are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
pub enum CostFormat {
    /// Comma-separated with a header row.
    Csv,
    /// An array of objects.
    Json,
}

/// The column names a source uses.
#[derive(Debug, Clone, PartialEq, Eq, schemars::JsonSchema)]
pub struct Columns {
    resource_id: String,
    period_start: String,
    period_end: String,
    effective: String,
    billed: String,
    currency: String,
    service: String,
}

const COLUMN_KEYS: [&str; 7] = [
    "resourceId",
    "chargePeriodStart",
    "chargePeriodEnd",
    "effectiveCost",
    "billedCost",
    "billingCurrency",
    "serviceName",
];

impl Columns {
    fn with(renames: &BTreeMap<String, String>) -> Columns {
        let pick = |key: &str, default: &str| {
            renames
                .get(key)
                .cloned()
                .unwrap_or_else(|| default.to_string())
        };
        Columns {
            resource_id: pick("resourceId", "ResourceId"),
            period_start: pick("chargePeriodStart", "ChargePeriodStart"),
            period_end: pick("chargePeriodEnd", "ChargePeriodEnd"),
            effective: pick("effectiveCost", "EffectiveCost"),
            billed: pick("billedCost", "BilledCost"),
            currency: pick("billingCurrency", "BillingCurrency"),
            service: pick("serviceName", "ServiceName"),
        }
    }
}

/// A compiled `cost[]` entry.
#[derive(Debug, Clone)]
pub struct CostSource {
    /// Files or globs, resolved against the config's directory.
    pub paths: Vec<PathBuf>,
    /// Or a URL.
    pub url: Option<reqwest::Url>,
    /// Forced format; by extension when `None`.
    pub format: Option<CostFormat>,
    /// Column names.
    pub columns: Columns,
}

/// Compiles `cost[]`; bad entries are reported at their line.
pub(crate) fn compile(
    ctx: &mut Ctx<'_>,
    specs: &[CostSpec],
    base: &std::path::Path,
) -> Vec<CostSource> {
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("cost[{i}]");
        ctx.unsupported(&format!("spec.{at}."), &spec.other);
        for key in spec.columns.keys() {
            if !COLUMN_KEYS.contains(&key.as_str()) {
                ctx.at(
                    &format!("{key}:"),
                    Severity::Error,
                    format!(
                        "{at}.columns.{key}: unknown column (one of {})",
                        COLUMN_KEYS.join(", ")
                    ),
                );
            }
        }
        let format = match spec.format.as_deref() {
            None => None,
            Some("csv") => Some(CostFormat::Csv),
            Some("json") => Some(CostFormat::Json),
            Some(other) => {
                ctx.at(
                    other,
                    Severity::Error,
                    format!("{at}.format: {other:?} is not csv or json"),
                );
                continue;
            }
        };
        let url = match spec.url.as_deref() {
            None => None,
            Some(text) => match reqwest::Url::parse(text) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                _ => {
                    ctx.at(
                        text,
                        Severity::Error,
                        format!("{at}.url: {text:?} is not an http(s) URL"),
                    );
                    continue;
                }
            },
        };
        if url.is_none() == spec.paths.is_empty() {
            ctx.at(
                "cost:",
                Severity::Error,
                format!("{at}: give either paths or url"),
            );
            continue;
        }
        out.push(CostSource {
            paths: spec.paths.iter().map(|p| base.join(p)).collect(),
            url,
            format,
            columns: Columns::with(&spec.columns),
        });
    }
    out
}

/// Parses a money amount into micro-units: a decimal number, never
/// negative, at most 6 decimal places kept (rounded half away from zero).
pub fn parse_money(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let value = Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| format!("{text:?} is not a number"))?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(format!("{text} is negative"));
    }
    (value * Decimal::from(1_000_000))
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
        .ok_or_else(|| format!("{text} is too large"))
}

/// Micro-units as a decimal string (`12.5`).
pub fn format_money(micros: i64) -> String {
    Decimal::new(micros, 6).normalize().to_string()
}

/// Parses a timestamp: RFC 3339, or a date and time without an offset
/// (UTC), or a bare date (midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    Err(format!("{text:?} is not a timestamp"))
}

/// Builds one row from a field lookup; `n` is its 1-based number.
fn row(
    n: usize,
    columns: &Columns,
    get: impl Fn(&str) -> Option<String>,
) -> Result<CostRow, String> {
    let required = |column: &str| {
        get(column)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("row {n}: {column} is missing"))
    };
    fn field<T>(n: usize, column: &str, result: Result<T, String>) -> Result<T, String> {
        result.map_err(|e| format!("row {n}: {column}: {e}"))
    }
    let effective = field(
        n,
        &columns.effective,
        parse_money(&required(&columns.effective)?),
    )?;
    let billed = match get(&columns.billed).filter(|v| !v.trim().is_empty()) {
        Some(v) => field(n, &columns.billed, parse_money(&v))?,
        None => effective,
    };
    let row = CostRow {
        external_id: required(&columns.resource_id)?,
        service: get(&columns.service).filter(|v| !v.trim().is_empty()),
        period_start: field(
            n,
            &columns.period_start,
            parse_time(&required(&columns.period_start)?),
        )?,
        period_end: field(
            n,
            &columns.period_end,
            parse_time(&required(&columns.period_end)?),
        )?,
        billed,
        effective,
        currency: required(&columns.currency)?.trim().to_uppercase(),
    };
    row.validate().map_err(|e| match e {
        stratum_domain::DomainError::Invalid { message, .. } => format!("row {n}: {message}"),
        other => format!("row {n}: {other}"),
    })?;
    Ok(row)
}

/// Parses CSV with a header row. Rows are numbered from 1 after the
/// header; the first bad row fails the whole text.
pub fn parse_csv(text: &str, columns: &Columns) -> Result<Vec<CostRow>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| format!("header: {e}"))?
        .clone();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", i + 1))?;
        let get = |column: &str| {
            header
                .iter()
                .position(|h| h == column)
                .and_then(|p| record.get(p))
                .map(str::to_string)
        };
        rows.push(row(i + 1, columns, get)?);
    }
    Ok(rows)
}

/// Parses a JSON array of objects (numbers or strings for amounts).
pub fn parse_json(text: &str, columns: &Columns) -> Result<Vec<CostRow>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Array(entries) = value else {
        return Err("expected an array of rows".into());
    };
    let mut rows = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(object) = entry else {
            return Err(format!("row {}: not an object", i + 1));
        };
        let get = |column: &str| match object.get(column) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        rows.push(row(i + 1, columns, get)?);
    }
    Ok(rows)
}

/// What one cost source did in a run.
#[derive(Debug, Default)]
pub(crate) struct CostOutcome {
    /// Totals over its files.
    pub(crate) import: CostImport,
    /// Files (or the URL) rejected, each with why; nothing of them was
    /// imported.
    pub(crate) errors: Vec<String>,
}

fn format_of(source: &CostSource, name: &str) -> CostFormat {
    source.format.unwrap_or(if name.ends_with(".json") {
        CostFormat::Json
    } else {
        CostFormat::Csv
    })
}

fn parse(format: CostFormat, text: &str, columns: &Columns) -> Result<Vec<CostRow>, String> {
    match format {
        CostFormat::Csv => parse_csv(text, columns),
        CostFormat::Json => parse_json(text, columns),
    }
}

/// Reads, checks and imports every file (or the URL) of a source, one
/// transaction per file.
pub(crate) async fn run_source(
    store: &Store,
    scraper_id: Uuid,
    source: &CostSource,
) -> Result<CostOutcome, crate::ScraperError> {
    let mut outcome = CostOutcome::default();
    let mut texts: Vec<(String, Result<String, String>)> = Vec::new();
    if let Some(url) = &source.url {
        let fetched = async {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .map_err(|e| e.to_string())?;
            let response = client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            response.text().await.map_err(|e| e.to_string())
        }
        .await;
        texts.push((url.to_string(), fetched));
    } else {
        let (files, errors) = crate::file::expand(&source.paths);
        outcome.errors.extend(errors);
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| e.to_string());
            texts.push((file.display().to_string(), text));
        }
    }
    for (name, text) in texts {
        let rows = text.and_then(|t| parse(format_of(source, &name), &t, &source.columns));
        match rows {
            Ok(rows) => {
                let imported = store.import_costs(scraper_id, rows).await?;
                let total = &mut outcome.import;
                total.written += imported.written;
                total.unchanged += imported.unchanged;
                total.matched += imported.matched;
                total.unattributed_rows += imported.unattributed_rows;
                total.unattributed.extend(imported.unattributed);
            }
            Err(e) => outcome
                .errors
                .push(format!("{name}: {e} (the file was not imported)")),
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Columns {
        Columns::with(&BTreeMap::new())
    }

    #[test]
    fn money_is_exact_and_never_negative() {
        assert_eq!(parse_money("12.345678"), Ok(12_345_678));
        assert_eq!(parse_money("0.0000005"), Ok(1));
        assert_eq!(parse_money("3"), Ok(3_000_000));
        assert_eq!(parse_money("1e2"), Ok(100_000_000));
        assert!(parse_money("-0.01").is_err());
        assert!(parse_money("twelve").is_err());
        assert!(parse_money("").is_err());
    }

    #[test]
    fn csv_rows_parse_and_a_bad_row_names_its_number() {
        let text = "ResourceId,ServiceName,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,BillingCurrency\n\
                    i-1,EC2,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,10,8.5,usd\n\
                    i-2,,2026-11-01,2026-11-02,,1,EUR\n";
        let rows = parse_csv(text, &columns()).expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].billed, 10_000_000);
        assert_eq!(rows[0].effective, 8_500_000);
        assert_eq!(rows[0].currency, "USD");
        assert_eq!(rows[1].service, None);
        assert_eq!(rows[1].billed, 1_000_000, "billed defaults to effective");

        let bad = format!("{text}i-3,EC2,2026-11-01,2026-11-02,1,abc,USD\n");
        assert_eq!(
            parse_csv(&bad, &columns()).expect_err("rejected"),
            "row 3: EffectiveCost: \"abc\" is not a number"
        );
        let negative = format!("{text}i-3,EC2,2026-11-01,2026-11-02,1,-2,USD\n");
        assert!(
            parse_csv(&negative, &columns())
                .expect_err("rejected")
                .starts_with("row 3: EffectiveCost: -2 is negative")
        );
        let backwards = format!("{text}i-3,EC2,2026-11-02,2026-11-01,1,2,USD\n");
        assert!(
            parse_csv(&backwards, &columns())
                .expect_err("rejected")
                .contains("row 3: the charge period ends before it starts")
        );
        let missing = format!("{text}i-3,EC2,2026-11-01,2026-11-02,1,2\n");
        assert!(
            parse_csv(&missing, &columns())
                .expect_err("rejected")
                .starts_with("row 3:")
        );
    }

    #[test]
    fn json_rows_and_renamed_columns() {
        let mut renames = BTreeMap::new();
        renames.insert("resourceId".to_string(), "arn".to_string());
        let cols = Columns::with(&renames);
        let rows = parse_json(
            r#"[{"arn": "arn:aws:rds:db-1", "ChargePeriodStart": "2026-11-01T00:00:00Z",
                 "ChargePeriodEnd": "2026-11-01T01:00:00Z", "EffectiveCost": 0.25, "BillingCurrency": "USD"}]"#,
            &cols,
        )
        .expect("parses");
        assert_eq!(rows[0].external_id, "arn:aws:rds:db-1");
        assert_eq!(rows[0].effective, 250_000);
        assert_eq!(
            parse_json(r#"[{"arn": "x"}, 3]"#, &cols).expect_err("rejected"),
            "row 1: EffectiveCost is missing"
        );
        assert!(parse_json("{}", &cols).is_err());
    }
}
