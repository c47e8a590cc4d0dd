//! Field extraction: a ScrapeConfig field is a JSONPath (`$.metadata.name`),
//! a CEL expression (`{expr: ...}`), a label of the item (`{label: key}`) or
//! a literal (`text`, or `{value: text}` as Mission Control writes it).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json_path::JsonPath;
use stratum_domain::celx::{CompileError, Expression};

/// A field as written in a ScrapeConfig.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum FieldSource {
    /// `$.path`, or a literal.
    Text(String),
    /// `{expr: CEL}`.
    Expr {
        /// The CEL expression.
        expr: String,
    },
    /// `{value: text}`: a literal, even one starting with `$`.
    Value {
        /// The text.
        value: String,
    },
    /// `{label: key}`: the item's label of that key.
    Label {
        /// The label key.
        label: String,
    },
}

/// A compiled field.
#[derive(Debug)]
pub enum Field {
    /// A JSONPath query; the first match is used.
    Path(JsonPath),
    /// A CEL expression over `config`.
    Cel(Expression),
    /// A constant.
    Literal(String),
    /// A label of the item (the `labels` variable, else
    /// `config.metadata.labels`).
    Label(String),
}

/// Why a field failed to compile; `offset` is a column inside the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The offending text.
    pub text: String,
    /// 1-based line inside the text.
    pub line: usize,
    /// 1-based column inside the text.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl Field {
    /// Compiles a field.
    pub fn compile(source: &FieldSource) -> Result<Field, FieldError> {
        match source {
            FieldSource::Text(t) if t.starts_with('$') => {
                JsonPath::parse(t).map(Field::Path).map_err(|e| FieldError {
                    text: t.clone(),
                    line: 1,
                    column: e.position() + 1,
                    message: format!("invalid JSONPath: {}", e.message()),
                })
            }
            FieldSource::Text(t) | FieldSource::Value { value: t } => Ok(Field::Literal(t.clone())),
            FieldSource::Label { label } => Ok(Field::Label(label.clone())),
            FieldSource::Expr { expr } => Expression::compile(expr).map(Field::Cel).map_err(
                |CompileError {
                     line,
                     column,
                     message,
                 }| FieldError {
                    text: expr.clone(),
                    line,
                    column,
                    message: format!("invalid CEL expression: {message}"),
                },
            ),
        }
    }

    /// Evaluates the field on a document. `Ok(None)` when a path matches nothing.
    pub fn value(&self, config: &Value, extra: &[(&str, &Value)]) -> Result<Option<Value>, String> {
        match self {
            Field::Path(p) => Ok(p.query(config).first().cloned()),
            Field::Literal(s) => Ok(Some(Value::String(s.clone()))),
            Field::Label(key) => {
                let labels = extra
                    .iter()
                    .find(|(k, _)| *k == "labels")
                    .map(|(_, v)| *v)
                    .or_else(|| config.pointer("/metadata/labels"));
                Ok(labels.and_then(|l| l.get(key)).cloned())
            }
            Field::Cel(e) => {
                let mut vars: Vec<(&str, &Value)> = vec![("config", config)];
                vars.extend_from_slice(extra);
                e.evaluate(&vars).map(Some).map_err(|err| err.to_string())
            }
        }
    }

    /// Evaluates the field as a string (numbers and booleans are rendered).
    pub fn string(
        &self,
        config: &Value,
        extra: &[(&str, &Value)],
    ) -> Result<Option<String>, String> {
        Ok(self.value(config, extra)?.and_then(|v| match v {
            Value::String(s) => Some(s),
            Value::Null => None,
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => Some(other.to_string()),
        }))
    }

    /// Splits a document into item documents (for `items`), moving the
    /// matches out of `config` rather than copying them.
    pub fn items(&self, mut config: Value) -> Result<Vec<Value>, String> {
        match self {
            Field::Path(p) => {
                let mut pointers: Vec<String> = p
                    .query_located(&config)
                    .locations()
                    .map(|l| l.to_json_pointer())
                    .collect();
                // `$.items` selects one array; `$.items[*]` selects its members.
                if let [only] = pointers.as_slice()
                    && config.pointer(only).is_some_and(Value::is_array)
                {
                    return Ok(match config.pointer_mut(only).map(Value::take) {
                        Some(Value::Array(items)) => items,
                        _ => Vec::new(),
                    });
                }
                // Matches nested in one another (`$..x`) share data: copy those.
                let mut sorted = pointers.clone();
                sorted.sort();
                let nested = sorted
                    .windows(2)
                    .any(|w| w[1].starts_with(&format!("{}/", w[0])) || w[0].is_empty());
                if nested {
                    return Ok(pointers
                        .iter()
                        .filter_map(|ptr| config.pointer(ptr).cloned())
                        .collect());
                }
                Ok(pointers
                    .drain(..)
                    .filter_map(|ptr| config.pointer_mut(&ptr).map(Value::take))
                    .collect())
            }
            Field::Cel(_) | Field::Literal(_) | Field::Label(_) => {
                match self.value(&config, &[])? {
                    Some(Value::Array(items)) => Ok(items),
                    Some(Value::Null) | None => Ok(Vec::new()),
                    Some(other) => Ok(vec![other]),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jsonpath_cel_and_literal() {
        let doc = json!({"metadata": {"name": "a"}, "kind": "Pod", "items": [1, 2]});
        let p = Field::compile(&FieldSource::Text("$.metadata.name".into())).expect("path");
        assert_eq!(p.string(&doc, &[]).ok().flatten().as_deref(), Some("a"));
        let c = Field::compile(&FieldSource::Expr {
            expr: r#""K::" + config.kind"#.into(),
        })
        .expect("cel");
        assert_eq!(
            c.string(&doc, &[]).ok().flatten().as_deref(),
            Some("K::Pod")
        );
        let l = Field::compile(&FieldSource::Text("Service".into())).expect("literal");
        assert_eq!(
            l.string(&doc, &[]).ok().flatten().as_deref(),
            Some("Service")
        );
        let i = Field::compile(&FieldSource::Text("$.items".into())).expect("items");
        assert_eq!(i.items(doc.clone()).ok(), Some(vec![json!(1), json!(2)]));
        let i = Field::compile(&FieldSource::Text("$.items[*]".into())).expect("items");
        assert_eq!(i.items(doc.clone()).ok(), Some(vec![json!(1), json!(2)]));
        let nested = json!({"a": {"x": {"x": 1}}});
        let i = Field::compile(&FieldSource::Text("$..x".into())).expect("items");
        assert_eq!(i.items(nested).ok(), Some(vec![json!({"x": 1}), json!(1)]));
        let i = Field::compile(&FieldSource::Text("$.missing[*]".into())).expect("items");
        assert_eq!(i.items(doc).ok(), Some(vec![]));
    }

    #[test]
    fn values_and_labels() {
        let doc = json!({"metadata": {"labels": {"app": "web"}}});
        let source: FieldSource =
            serde_json::from_value(json!({"value": "$not-a-path"})).expect("value");
        let v = Field::compile(&source).expect("literal");
        assert_eq!(
            v.string(&doc, &[]).ok().flatten().as_deref(),
            Some("$not-a-path")
        );
        let source: FieldSource = serde_json::from_value(json!({"label": "app"})).expect("label");
        let l = Field::compile(&source).expect("label");
        assert_eq!(l.string(&doc, &[]).ok().flatten().as_deref(), Some("web"));
        let labels = json!({"app": "api"});
        assert_eq!(
            l.string(&doc, &[("labels", &labels)])
                .ok()
                .flatten()
                .as_deref(),
            Some("api"),
            "the item's labels win over the document's"
        );
        let missing: FieldSource = serde_json::from_value(json!({"label": "tier"})).expect("label");
        let m = Field::compile(&missing).expect("label");
        assert_eq!(m.string(&doc, &[]).ok().flatten(), None);
    }

    #[test]
    fn bad_fields_are_reported() {
        assert!(Field::compile(&FieldSource::Text("$.[".into())).is_err());
        let err = Field::compile(&FieldSource::Expr {
            expr: "config.kind ==".into(),
        })
        .expect_err("bad cel");
        assert!(err.message.starts_with("invalid CEL expression"));
    }
}
