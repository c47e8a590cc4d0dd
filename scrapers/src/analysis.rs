//! `transform.analysis[]` (SPEC §7): CEL rules that find insights in items,
//! compiled at load and evaluated on every item a scraper extracts; and
//! the `analysis[]` entries of full-mode documents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stratum_domain::celx::Expression;
use stratum_domain::{ANALYSIS_TYPES, InsightObservation, ItemRef, ScrapedInsight};

use crate::config::{Ctx, Severity};

/// One `transform.analysis[]` rule as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AnalysisRuleSpec {
    /// The analyzer name the insights carry.
    #[serde(default)]
    pub name: String,
    /// CEL: which items the rule looks at (all when absent).
    #[serde(default)]
    pub filter: Option<String>,
    /// CEL: true when the finding is present.
    #[serde(default)]
    pub expr: String,
    /// One of the analysis types (`security`, `reliability`, …).
    #[serde(default, rename = "type")]
    pub analysis_type: String,
    /// `info`, `low`, `medium`, `high` or `critical`.
    #[serde(default)]
    pub severity: String,
    /// CEL: the one-line summary (the rule name when absent).
    #[serde(default)]
    pub summary: Option<String>,
    /// CEL: the longer message.
    #[serde(default)]
    pub message: Option<String>,
    /// CEL: tells apart several findings of this rule on one item.
    #[serde(default)]
    pub key: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// A compiled analysis rule. Its expressions see the variables of a health
/// rule (SPEC §10 "CEL").
#[derive(Debug)]
pub struct AnalysisRule {
    /// The analyzer name.
    pub name: String,
    filter: Option<Expression>,
    expr: Expression,
    analysis_type: String,
    severity: stratum_domain::Severity,
    summary: Option<Expression>,
    message: Option<Expression>,
    key: Option<Expression>,
}

/// Compiles `transform.analysis`; bad rules are reported at their line and
/// left out.
pub(crate) fn compile(ctx: &mut Ctx<'_>, specs: &[AnalysisRuleSpec]) -> Vec<AnalysisRule> {
    let mut rules = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("transform.analysis[{i}]");
        ctx.unsupported(&format!("spec.{at}."), &spec.other);
        if spec.name.trim().is_empty() {
            ctx.at(
                "analysis:",
                Severity::Error,
                format!("{at}: name is required"),
            );
            continue;
        }
        if spec.expr.trim().is_empty() {
            ctx.at(
                &spec.name,
                Severity::Error,
                format!("{at}: expr is required"),
            );
            continue;
        }
        if !ANALYSIS_TYPES.contains(&spec.analysis_type.as_str()) {
            let needle = if spec.analysis_type.is_empty() {
                spec.name.clone()
            } else {
                spec.analysis_type.clone()
            };
            ctx.at(
                &needle,
                Severity::Error,
                format!(
                    "{at}.type: {:?} is not one of {}",
                    spec.analysis_type,
                    ANALYSIS_TYPES.join(", ")
                ),
            );
            continue;
        }
        let Ok(severity) = spec
            .severity
            .to_ascii_lowercase()
            .parse::<stratum_domain::Severity>()
        else {
            let needle = if spec.severity.is_empty() {
                spec.name.clone()
            } else {
                spec.severity.clone()
            };
            ctx.at(
                &needle,
                Severity::Error,
                format!(
                    "{at}.severity: {:?} is not one of info, low, medium, high, critical",
                    spec.severity
                ),
            );
            continue;
        };
        let mut optional =
            |field: &str, source: &Option<String>| -> Result<Option<Expression>, ()> {
                match source {
                    None => Ok(None),
                    Some(s) => ctx.cel(&format!("{at}.{field}"), s).map(Some).ok_or(()),
                }
            };
        let (Ok(filter), Ok(summary), Ok(message), Ok(key)) = (
            optional("filter", &spec.filter),
            optional("summary", &spec.summary),
            optional("message", &spec.message),
            optional("key", &spec.key),
        ) else {
            continue;
        };
        let Some(expr) = ctx.cel(&format!("{at}.expr"), &spec.expr) else {
            continue;
        };
        rules.push(AnalysisRule {
            name: spec.name.clone(),
            filter,
            expr,
            analysis_type: spec.analysis_type.clone(),
            severity,
            summary,
            message,
            key,
        });
    }
    rules
}

fn text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Runs every rule over one item's variables. A rule that fails is skipped
/// for this item and its error returned (SPEC §10: never fails the run).
pub(crate) fn evaluate(
    rules: &[AnalysisRule],
    variables: &[(&str, &Value)],
) -> (Vec<ScrapedInsight>, Vec<String>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for rule in rules {
        let holds = |e: &Expression, what: &str| match e.evaluate(variables) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "analysis {:?} {what} gave {other}, not a boolean",
                rule.name
            )),
            Err(e) => Err(format!("analysis {:?} {what}: {e}", rule.name)),
        };
        let applies = match &rule.filter {
            Some(f) => holds(f, "filter"),
            None => Ok(true),
        };
        match applies.and_then(|applies| {
            if applies {
                holds(&rule.expr, "expr")
            } else {
                Ok(false)
            }
        }) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                errors.push(e);
                continue;
            }
        }
        let render = |e: &Option<Expression>, what: &str| -> Result<Option<String>, String> {
            match e {
                None => Ok(None),
                Some(e) => e
                    .evaluate(variables)
                    .map(|v| Some(text(v)))
                    .map_err(|err| format!("analysis {:?} {what}: {err}", rule.name)),
            }
        };
        let rendered = (|| {
            Ok::<_, String>((
                render(&rule.summary, "summary")?,
                render(&rule.message, "message")?,
                render(&rule.key, "key")?,
            ))
        })();
        let (summary, message, key) = match rendered {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        found.push(ScrapedInsight {
            analyzer: rule.name.clone(),
            analysis_type: rule.analysis_type.clone(),
            severity: rule.severity,
            summary: summary.unwrap_or_else(|| rule.name.clone()),
            message: message.unwrap_or_default(),
            details: serde_json::json!({"rule": rule.name, "expr": rule.expr.source()}),
            key: key.unwrap_or_default(),
        });
    }
    (found, errors)
}

/// The `analysis[]` entries of a full-mode document (SPEC §10): each needs
/// `analyzer`; `analysis_type` defaults to `other` and `severity` to
/// `info`. Entries that name another item (`external_id` with `type` or
/// `config_type`) are returned apart from the document's own.
pub(crate) fn full_mode_entries(
    entries: &Value,
) -> (Vec<ScrapedInsight>, Vec<InsightObservation>, Vec<String>) {
    let mut own = Vec::new();
    let mut other = Vec::new();
    let mut errors = Vec::new();
    let Some(entries) = entries.as_array() else {
        return (own, other, vec!["analysis: not a list".into()]);
    };
    for (i, entry) in entries.iter().enumerate() {
        let field = |k: &str| {
            entry
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let Some(analyzer) = field("analyzer") else {
            errors.push(format!("analysis[{i}]: analyzer is required; skipped"));
            continue;
        };
        let severity = match field("severity").map(|s| s.to_ascii_lowercase().parse()) {
            None => stratum_domain::Severity::Info,
            Some(Ok(s)) => s,
            Some(Err(_)) => {
                errors.push(format!("analysis[{i}]: unknown severity; skipped"));
                continue;
            }
        };
        let insight = ScrapedInsight {
            analyzer: analyzer.to_string(),
            analysis_type: field("analysis_type").unwrap_or("other").to_string(),
            severity,
            summary: field("summary").unwrap_or(analyzer).to_string(),
            message: field("message").unwrap_or_default().to_string(),
            details: entry
                .get("analysis")
                .or_else(|| entry.get("details"))
                .cloned()
                .unwrap_or(Value::Null),
            key: field("key").unwrap_or_default().to_string(),
        };
        if let Err(e) = insight.validate() {
            errors.push(format!("analysis[{i}]: {e}; skipped"));
            continue;
        }
        match (field("external_id"), field("type").or(field("config_type"))) {
            (Some(e), Some(t)) => other.push(InsightObservation {
                target: ItemRef::External {
                    item_type: t.to_string(),
                    external_id: e.to_lowercase(),
                },
                insight,
            }),
            _ => own.push(insight),
        }
    }
    (own, other, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_mode_entries_split_own_and_others_and_reject_bad_ones() {
        let (own, other, errors) = full_mode_entries(&json!([
            {"analyzer": "trivy", "analysis_type": "security", "severity": "high", "summary": "CVE-1", "key": "CVE-1"},
            {"analyzer": "cost-tool", "analysis_type": "cost", "external_id": "DB-1", "type": "AWS::RDS"},
            {"analysis_type": "security"},
            {"analyzer": "x", "analysis_type": "bogus"},
            {"analyzer": "x", "severity": "apocalyptic"},
        ]));
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].severity, stratum_domain::Severity::High);
        assert_eq!(own[0].key, "CVE-1");
        assert_eq!(other.len(), 1);
        assert_eq!(
            other[0].target,
            ItemRef::External {
                item_type: "AWS::RDS".into(),
                external_id: "db-1".into()
            }
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("analyzer is required"));
        assert!(errors[1].contains("unknown analysis type"));
        assert!(errors[2].contains("unknown severity"));
    }
}
