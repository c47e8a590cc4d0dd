//! `transform.changes` (SPEC §5 "Mapping and exclusion"): every mapping
//! rule whose CEL filter holds is applied in order (later rules win),
//! setting the type, severity or summary and an action (`ignore`,
//! `delete`, `move-up`, `copy-up`); then a change is dropped when any
//! `exclude` expression holds. A rule that fails at run time is skipped
//! for that change and reported.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::celx::Expression;
use crate::model::Severity;

/// A value a rule sets: written as is, or computed by CEL.
#[derive(Debug)]
pub enum RuleValue {
    /// As written.
    Literal(String),
    /// A CEL expression returning a string.
    Expr(Expression),
}

/// What a rule does besides renaming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeAction {
    /// Drop the change.
    Ignore,
    /// Soft-delete the item (`FROM_EVENT`).
    Delete,
    /// Move the change to the nearest ancestor of this type.
    MoveUp(String),
    /// Copy the change to the nearest ancestor of this type.
    CopyUp(String),
}

/// One `transform.changes.mapping[]` rule.
#[derive(Debug)]
pub struct MappingRule {
    /// When it applies.
    pub filter: Expression,
    /// The new type.
    pub change_type: Option<RuleValue>,
    /// The new severity.
    pub severity: Option<RuleValue>,
    /// The new summary.
    pub summary: Option<RuleValue>,
    /// The action.
    pub action: Option<ChangeAction>,
}

/// A scraper's change rules.
#[derive(Debug, Default)]
pub struct ChangeRules {
    /// Mapping rules, in order.
    pub mapping: Vec<MappingRule>,
    /// Exclusions: a change is dropped when any holds.
    pub exclude: Vec<Expression>,
}

/// A change as rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeFields {
    /// e.g. `diff`, `BackOff`.
    pub change_type: String,
    /// How bad it is.
    pub severity: Severity,
    /// One line.
    pub summary: String,
    /// e.g. `diff`, `kubelet`.
    pub source: String,
}

/// What the rules decided for a change.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Record it, with these fields.
    Keep(ChangeFields),
    /// Drop it.
    Drop,
    /// Record it and soft-delete its item.
    Delete(ChangeFields),
    /// Record it on the nearest ancestor of `ancestor_type` (and, with
    /// `copy`, on the item too).
    Up {
        /// The fields.
        fields: ChangeFields,
        /// The ancestor's type.
        ancestor_type: String,
        /// Keep it on the item as well.
        copy: bool,
    },
}

/// What every rule of one change sees besides the change's own fields.
struct Context<'a> {
    details: &'a Value,
    patches: &'a Value,
    created_at: Value,
    config: &'a Value,
    item: &'a Value,
}

/// A change's own fields as CEL variables.
fn current(f: &ChangeFields) -> Value {
    json!({
        "change_type": f.change_type,
        "severity": f.severity.as_str(),
        "summary": f.summary,
        "source": f.source,
    })
}

impl<'a> Context<'a> {
    /// The variables of SPEC §10 for change mapping and exclusion.
    fn variables(&'a self, current: &'a Value) -> Vec<(&'a str, &'a Value)> {
        vec![
            ("change_type", &current["change_type"]),
            ("severity", &current["severity"]),
            ("summary", &current["summary"]),
            ("source", &current["source"]),
            ("details", self.details),
            ("patches", self.patches),
            ("created_at", &self.created_at),
            ("config", self.config),
            ("config_item", self.item),
        ]
    }
}

impl ChangeRules {
    /// Whether there is anything to apply.
    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty() && self.exclude.is_empty()
    }

    /// Applies the rules to one change. `config` is the item's document and
    /// `item` its `{id, type, name, namespace, tags, labels}`.
    pub fn apply(
        &self,
        mut fields: ChangeFields,
        details: Option<&Value>,
        patches: Option<&Value>,
        created_at: DateTime<Utc>,
        config: &Value,
        item: &Value,
    ) -> (Verdict, Vec<String>) {
        let mut errors = Vec::new();
        let mut action: Option<ChangeAction> = None;
        let context = Context {
            details: details.unwrap_or(&Value::Null),
            patches: patches.unwrap_or(&Value::Null),
            created_at: Value::String(created_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
            config,
            item,
        };
        for (i, rule) in self.mapping.iter().enumerate() {
            let current = current(&fields);
            let vars = context.variables(&current);
            match rule.filter.evaluate(&vars) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => continue,
                Ok(other) => {
                    errors.push(format!(
                        "changes.mapping[{i}].filter gave {other}, not a boolean"
                    ));
                    continue;
                }
                Err(e) => {
                    errors.push(format!("changes.mapping[{i}].filter: {e}"));
                    continue;
                }
            }
            let value = |v: &RuleValue| -> Result<String, String> {
                match v {
                    RuleValue::Literal(s) => Ok(s.clone()),
                    RuleValue::Expr(e) => match e.evaluate(&vars) {
                        Ok(Value::String(s)) => Ok(s),
                        Ok(other) => Err(format!("{:?} gave {other}, not a string", e.source())),
                        Err(e) => Err(e.to_string()),
                    },
                }
            };
            let mut next = fields.clone();
            let mut failed = None;
            if let Some(v) = &rule.change_type {
                match value(v) {
                    Ok(t) => next.change_type = t,
                    Err(e) => failed = Some(format!("changes.mapping[{i}].type: {e}")),
                }
            }
            if let Some(v) = &rule.severity {
                match value(v).and_then(|s| {
                    s.to_ascii_lowercase()
                        .parse::<Severity>()
                        .map_err(|_| format!("unknown severity {s:?}"))
                }) {
                    Ok(s) => next.severity = s,
                    Err(e) => failed = Some(format!("changes.mapping[{i}].severity: {e}")),
                }
            }
            if let Some(v) = &rule.summary {
                match value(v) {
                    Ok(s) => next.summary = s,
                    Err(e) => failed = Some(format!("changes.mapping[{i}].summary: {e}")),
                }
            }
            match failed {
                Some(e) => errors.push(e),
                None => {
                    fields = next;
                    if rule.action.is_some() {
                        action = rule.action.clone();
                    }
                }
            }
        }
        let current = current(&fields);
        let vars = context.variables(&current);
        for (i, exclude) in self.exclude.iter().enumerate() {
            match exclude.evaluate(&vars) {
                Ok(Value::Bool(true)) => return (Verdict::Drop, errors),
                Ok(Value::Bool(false)) => {}
                Ok(other) => {
                    errors.push(format!("changes.exclude[{i}] gave {other}, not a boolean"))
                }
                Err(e) => errors.push(format!("changes.exclude[{i}]: {e}")),
            }
        }
        let verdict = match action {
            None => Verdict::Keep(fields),
            Some(ChangeAction::Ignore) => Verdict::Drop,
            Some(ChangeAction::Delete) => Verdict::Delete(fields),
            Some(ChangeAction::MoveUp(t)) => Verdict::Up {
                fields,
                ancestor_type: t,
                copy: false,
            },
            Some(ChangeAction::CopyUp(t)) => Verdict::Up {
                fields,
                ancestor_type: t,
                copy: true,
            },
        };
        (verdict, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cel(s: &str) -> Expression {
        Expression::compile(s).expect("cel")
    }

    fn fields(t: &str) -> ChangeFields {
        ChangeFields {
            change_type: t.into(),
            severity: Severity::Info,
            summary: "Back-off restarting failed container".into(),
            source: "kubelet".into(),
        }
    }

    #[test]
    fn later_rules_win_and_exclusions_drop() {
        let rules = ChangeRules {
            mapping: vec![
                MappingRule {
                    filter: cel("change_type == 'BackOff'"),
                    change_type: Some(RuleValue::Literal("PodCrashLooping".into())),
                    severity: Some(RuleValue::Literal("high".into())),
                    summary: None,
                    action: None,
                },
                MappingRule {
                    filter: cel(
                        "change_type == 'PodCrashLooping' && config_item.namespace == 'payments'",
                    ),
                    change_type: None,
                    severity: Some(RuleValue::Literal("critical".into())),
                    summary: Some(RuleValue::Expr(cel("'crash: ' + summary"))),
                    action: Some(ChangeAction::CopyUp("Kubernetes::Deployment".into())),
                },
                MappingRule {
                    filter: cel("config.nope.deeper"),
                    change_type: Some(RuleValue::Literal("never".into())),
                    severity: None,
                    summary: None,
                    action: Some(ChangeAction::Ignore),
                },
            ],
            exclude: vec![cel("change_type == 'diff' && summary == 'status.images'")],
        };
        let item = json!({"namespace": "payments", "type": "Kubernetes::Pod"});
        let (verdict, errors) =
            rules.apply(fields("BackOff"), None, None, Utc::now(), &json!({}), &item);
        let Verdict::Up {
            fields: f,
            ancestor_type,
            copy,
        } = verdict
        else {
            panic!("expected copy-up, got {verdict:?}");
        };
        assert_eq!(
            (f.change_type.as_str(), f.severity),
            ("PodCrashLooping", Severity::Critical)
        );
        assert_eq!(f.summary, "crash: Back-off restarting failed container");
        assert_eq!(
            (ancestor_type.as_str(), copy),
            ("Kubernetes::Deployment", true)
        );
        assert_eq!(
            errors.len(),
            1,
            "the failing filter is reported: {errors:?}"
        );

        let mut diff = fields("diff");
        diff.summary = "status.images".into();
        let (verdict, _) = rules.apply(diff, None, None, Utc::now(), &json!({}), &item);
        assert_eq!(verdict, Verdict::Drop);
        let (verdict, _) = rules.apply(fields("Pulled"), None, None, Utc::now(), &json!({}), &item);
        assert_eq!(verdict, Verdict::Keep(fields("Pulled")));
    }
}
