//! `transform.changes` as written (SPEC §5 "Mapping and exclusion") and its
//! compilation into the domain's [`ChangeRules`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stratum_domain::Severity as ChangeSeverity;
use stratum_domain::change_rules::{ChangeAction, ChangeRules, MappingRule, RuleValue};

use crate::config::{Ctx, Severity};

/// `transform.changes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangesSpec {
    /// Mapping rules, applied in order.
    #[serde(default)]
    pub mapping: Vec<MappingSpec>,
    /// CEL: a change is dropped when any holds.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// One `transform.changes.mapping[]` rule as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingSpec {
    /// CEL: when it applies.
    #[serde(default)]
    pub filter: Option<String>,
    /// The new type: a string or `{expr: CEL}`.
    #[serde(default, rename = "type")]
    pub change_type: Option<Value>,
    /// The new severity: a string or `{expr: CEL}`.
    #[serde(default)]
    pub severity: Option<Value>,
    /// The new summary: a string or `{expr: CEL}`.
    #[serde(default)]
    pub summary: Option<Value>,
    /// `ignore`, `delete`, `move-up` or `copy-up`.
    #[serde(default)]
    pub action: Option<String>,
    /// For `move-up`/`copy-up`: the ancestor's type.
    #[serde(default)]
    pub ancestor_type: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

fn rule_value(ctx: &mut Ctx<'_>, at: &str, value: &Option<Value>) -> Result<Option<RuleValue>, ()> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(RuleValue::Literal(s.clone()))),
        Some(Value::Object(o)) if o.len() == 1 && o.get("expr").is_some_and(Value::is_string) => {
            let source = o.get("expr").and_then(Value::as_str).unwrap_or_default();
            ctx.cel(at, source)
                .map(|e| Some(RuleValue::Expr(e)))
                .ok_or(())
        }
        Some(_) => {
            ctx.at(
                at,
                Severity::Error,
                format!("{at}: expected a string or {{expr: CEL}}"),
            );
            Err(())
        }
    }
}

/// Compiles `transform.changes`; `None` when it is empty.
pub(crate) fn compile(ctx: &mut Ctx<'_>, spec: &ChangesSpec) -> Option<ChangeRules> {
    ctx.unsupported("spec.transform.changes.", &spec.other);
    let mut rules = ChangeRules::default();
    for (i, m) in spec.mapping.iter().enumerate() {
        let at = format!("transform.changes.mapping[{i}]");
        ctx.unsupported(&format!("spec.{at}."), &m.other);
        let Some(filter) = m.filter.as_deref() else {
            ctx.at(
                "mapping:",
                Severity::Error,
                format!("{at}: filter is required"),
            );
            continue;
        };
        let Some(filter) = ctx.cel(&format!("{at}.filter"), filter) else {
            continue;
        };
        let (Ok(change_type), Ok(severity), Ok(summary)) = (
            rule_value(ctx, &format!("{at}.type"), &m.change_type),
            rule_value(ctx, &format!("{at}.severity"), &m.severity),
            rule_value(ctx, &format!("{at}.summary"), &m.summary),
        ) else {
            continue;
        };
        if let Some(RuleValue::Literal(s)) = &severity
            && s.to_ascii_lowercase().parse::<ChangeSeverity>().is_err()
        {
            ctx.at(
                s,
                Severity::Error,
                format!(
                    "{at}.severity: unknown severity {s:?} (info, low, medium, high, critical)"
                ),
            );
            continue;
        }
        let ancestor = || m.ancestor_type.clone().filter(|t| !t.is_empty());
        let action = match m.action.as_deref() {
            None => None,
            Some("ignore") => Some(ChangeAction::Ignore),
            Some("delete") => Some(ChangeAction::Delete),
            Some(a @ ("move-up" | "copy-up")) => match ancestor() {
                Some(t) if a == "move-up" => Some(ChangeAction::MoveUp(t)),
                Some(t) => Some(ChangeAction::CopyUp(t)),
                None => {
                    ctx.at(
                        a,
                        Severity::Error,
                        format!("{at}.action: {a} needs ancestorType"),
                    );
                    continue;
                }
            },
            Some(other) => {
                ctx.at(
                    other,
                    Severity::Error,
                    format!("{at}.action: {other:?} is not ignore, delete, move-up or copy-up"),
                );
                continue;
            }
        };
        rules.mapping.push(MappingRule {
            filter,
            change_type,
            severity,
            summary,
            action,
        });
    }
    for (i, e) in spec.exclude.iter().enumerate() {
        if let Some(e) = ctx.cel(&format!("transform.changes.exclude[{i}]"), e) {
            rules.exclude.push(e);
        }
    }
    (!rules.is_empty()).then_some(rules)
}
