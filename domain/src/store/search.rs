//! Compiles a parsed search expression ([`crate::search`]) into a SQL
//! condition on `config_items`, for SQLite or PostgreSQL. `related=` walks
//! run first, through [`Store::traverse`]; the rest is one condition.
//!
//! Every term compiles to a null-safe boolean (`COALESCE(…, FALSE)`), so
//! `!tags.team=a` and `namespace!=x` also match items without that tag or
//! namespace, as a reader of the query expects.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Condition;
use sea_orm::{DbBackend, Value};
use uuid::Uuid;

use super::Store;
use super::graph::{Direction, MAX_NODES, RelationKind, TraversalQuery};
use crate::error::Result;
use crate::search::{
    RelatedDirection, RelatedRelation, RelatedSpec, SearchExpr, SearchField, SearchOp, SearchValue,
    Term,
};

/// The ids each `related=` walk of a query reached.
type Walks = HashMap<RelatedSpec, Vec<Uuid>>;

impl Store {
    /// Compiles `expr` into a condition on `config_items`, running its
    /// relationship walks first.
    pub(crate) async fn search_condition(&self, expr: &SearchExpr) -> Result<Condition> {
        let mut walks: Walks = HashMap::new();
        for spec in expr.related_walks() {
            if walks.contains_key(&spec) {
                continue;
            }
            let query = TraversalQuery {
                roots: vec![spec.root],
                direction: match spec.direction {
                    RelatedDirection::Incoming => Direction::Incoming,
                    RelatedDirection::Outgoing => Direction::Outgoing,
                    RelatedDirection::Both => Direction::Both,
                },
                relation: match spec.relation {
                    RelatedRelation::Hard => RelationKind::Hard,
                    RelatedRelation::Soft => RelationKind::Soft,
                    RelatedRelation::Both => RelationKind::Both,
                },
                depth: spec.depth,
                node_limit: MAX_NODES,
                include_deleted: false,
            };
            let reached = self.traverse(&query).await?;
            walks.insert(spec, reached.nodes.into_iter().map(|n| n.id).collect());
        }
        let compiler = Compiler {
            backend: self.backend(),
            now: super::now(),
            walks: &walks,
        };
        Ok(compiler.expr(expr))
    }
}

struct Compiler<'a> {
    backend: DbBackend,
    now: DateTime<Utc>,
    walks: &'a Walks,
}

/// SQL text with `?` placeholders and its values.
struct Sql {
    text: String,
    values: Vec<Value>,
}

/// Escapes `%`, `_` and `\` for `LIKE … ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `LIKE` pattern when the value has a leading or trailing `*`.
fn wildcard_pattern(value: &str) -> Option<String> {
    if !value.is_empty() && value.chars().all(|c| c == '*') {
        return Some("%".to_string());
    }
    let leading = value.starts_with('*');
    let trailing = value.ends_with('*');
    if !leading && !trailing {
        return None;
    }
    let core = value.trim_start_matches('*').trim_end_matches('*');
    Some(format!(
        "{}{}{}",
        if leading { "%" } else { "" },
        escape_like(core),
        if trailing { "%" } else { "" }
    ))
}

/// A JSON path literal for SQLite's `json_extract`: `$."a"."b"`.
fn sqlite_json_path(segments: &[String]) -> String {
    let mut out = String::from("$");
    for s in segments {
        out.push_str(".\"");
        out.push_str(&s.replace('\\', "\\\\").replace('"', "\\\""));
        out.push('"');
    }
    out
}

/// A Postgres text-array literal for `#>>`: `{"a","b"}`.
fn pg_text_array(segments: &[String]) -> String {
    let quoted: Vec<String> = segments
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

impl Compiler<'_> {
    fn expr(&self, expr: &SearchExpr) -> Condition {
        match expr {
            SearchExpr::And(parts) => parts
                .iter()
                .fold(Condition::all(), |c, p| c.add(self.expr(p))),
            SearchExpr::Or(parts) => parts
                .iter()
                .fold(Condition::any(), |c, p| c.add(self.expr(p))),
            SearchExpr::Not(inner) => self.expr(inner).not(),
            SearchExpr::Term(term) => {
                let sql = self.term(term);
                let text = format!("COALESCE(({}), FALSE)", sql.text);
                Condition::all().add(super::cust(self.backend, &text, sql.values))
            }
        }
    }

    fn term(&self, term: &Term) -> Sql {
        let pg = self.backend == DbBackend::Postgres;
        match (&term.field, &term.value) {
            (SearchField::Health, SearchValue::Health(values)) => {
                let marks = vec!["?"; values.len()].join(", ");
                let positive = Sql {
                    text: format!("health IN ({marks})"),
                    values: values.iter().map(|h| Value::from(h.as_str())).collect(),
                };
                negate_if(term.op, positive)
            }
            (SearchField::Id, SearchValue::Ids(ids)) => {
                let positive = in_uuids("id", ids);
                negate_if(term.op, positive)
            }
            (SearchField::Related, SearchValue::Related(spec)) => {
                let ids = self.walks.get(spec).map(Vec::as_slice).unwrap_or_default();
                in_uuids("id", ids)
            }
            (
                field @ (SearchField::Created | SearchField::Updated | SearchField::Deleted),
                SearchValue::Time(t),
            ) => {
                let column = match field {
                    SearchField::Created => "created_at",
                    SearchField::Updated => "updated_at",
                    _ => "deleted_at",
                };
                Sql {
                    text: format!("{column} {} ?", ordering(term.op)),
                    values: vec![Value::from(t.resolve(self.now))],
                }
            }
            (SearchField::Deleted, _) => Sql {
                text: "deleted_at IS NOT NULL".into(),
                values: vec![],
            },
            (SearchField::Tag(key) | SearchField::Label(key), value) => {
                let column = if matches!(term.field, SearchField::Tag(_)) {
                    "tags"
                } else {
                    "labels"
                };
                let (expr, path): (String, Value) = if pg {
                    (format!("{column} ->> ?"), Value::from(key.clone()))
                } else {
                    (
                        format!("json_extract({column}, ?)"),
                        Value::from(sqlite_json_path(std::slice::from_ref(key))),
                    )
                };
                match (term.op, value) {
                    (SearchOp::Exists, _) => Sql {
                        text: format!("{expr} IS NOT NULL"),
                        values: vec![path],
                    },
                    // Exact tag matches use the GIN index on Postgres.
                    (SearchOp::Eq | SearchOp::Ne, SearchValue::Text(values))
                        if pg && values.iter().all(|v| wildcard_pattern(v).is_none()) =>
                    {
                        let parts: Vec<String> =
                            vec![format!("{column} @> CAST(? AS jsonb)"); values.len()];
                        let positive = Sql {
                            text: parts.join(" OR "),
                            values: values
                                .iter()
                                .map(|v| {
                                    Value::from(serde_json::json!({ key.clone(): v }).to_string())
                                })
                                .collect(),
                        };
                        negate_if(term.op, positive)
                    }
                    (op, SearchValue::Text(values)) => {
                        text_match(&expr, vec![path], op, values, false)
                    }
                    _ => false_sql(),
                }
            }
            (SearchField::Config(path), SearchValue::Text(values)) => {
                self.config_match(path, term.op, values)
            }
            (SearchField::Property(name), SearchValue::Text(values)) => {
                let (from, name_expr, value_expr) = if pg {
                    (
                        "jsonb_array_elements(config_items.properties) p",
                        "p.value ->> 'name'",
                        "COALESCE(p.value ->> 'text', p.value ->> 'value')",
                    )
                } else {
                    (
                        "json_each(config_items.properties) p",
                        "json_extract(p.value, '$.name')",
                        "COALESCE(json_extract(p.value, '$.text'), CAST(json_extract(p.value, '$.value') AS TEXT))",
                    )
                };
                // `!=` negates the whole test: no property of that name equals it.
                let op = if term.op == SearchOp::Ne {
                    SearchOp::Eq
                } else {
                    term.op
                };
                let inner = text_match(value_expr, vec![], op, values, false);
                let positive = Sql {
                    text: format!(
                        "EXISTS (SELECT 1 FROM {from} WHERE {name_expr} = ? AND ({}))",
                        inner.text
                    ),
                    values: std::iter::once(Value::from(name.clone()))
                        .chain(inner.values)
                        .collect(),
                };
                negate_if(term.op, positive)
            }
            (field, SearchValue::Text(values)) => {
                let (column, case_insensitive) = match field {
                    SearchField::Name => ("name", true),
                    SearchField::Type => ("type", true),
                    SearchField::Class => ("config_class", true),
                    SearchField::Namespace => ("namespace", true),
                    SearchField::Status => ("status", true),
                    _ => ("source", false),
                };
                let expr = if case_insensitive {
                    format!("LOWER({column})")
                } else {
                    column.to_string()
                };
                text_match(&expr, vec![], term.op, values, case_insensitive)
            }
            _ => false_sql(),
        }
    }

    /// A value inside the config document: text comparison, or numeric
    /// when an ordering compares against a number.
    fn config_match(&self, path: &[String], op: SearchOp, values: &[String]) -> Sql {
        let pg = self.backend == DbBackend::Postgres;
        let (text_expr, path_values) = if pg {
            (
                "(config #>> CAST(? AS text[]))".to_string(),
                vec![Value::from(pg_text_array(path))],
            )
        } else {
            (
                "(CASE json_type(config, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                 ELSE CAST(json_extract(config, ?) AS TEXT) END)"
                    .to_string(),
                vec![
                    Value::from(sqlite_json_path(path)),
                    Value::from(sqlite_json_path(path)),
                ],
            )
        };
        if op.is_ordering()
            && let [value] = values
            && let Ok(number) = value.parse::<f64>()
        {
            let (numeric, mut numeric_values) = if pg {
                (
                    "(CASE WHEN jsonb_typeof(config #> CAST(? AS text[])) = 'number' \
                     THEN CAST(config #>> CAST(? AS text[]) AS double precision) END)"
                        .to_string(),
                    vec![
                        Value::from(pg_text_array(path)),
                        Value::from(pg_text_array(path)),
                    ],
                )
            } else {
                (
                    "(CASE WHEN json_type(config, ?) IN ('integer', 'real') THEN json_extract(config, ?) END)"
                        .to_string(),
                    vec![
                        Value::from(sqlite_json_path(path)),
                        Value::from(sqlite_json_path(path)),
                    ],
                )
            };
            numeric_values.push(Value::from(number));
            return Sql {
                text: format!("{numeric} {} ?", ordering(op)),
                values: numeric_values,
            };
        }
        text_match(&text_expr, path_values, op, values, false)
    }
}

fn ordering(op: SearchOp) -> &'static str {
    match op {
        SearchOp::Gt => ">",
        SearchOp::Ge => ">=",
        SearchOp::Lt => "<",
        SearchOp::Le => "<=",
        _ => "=",
    }
}

fn false_sql() -> Sql {
    Sql {
        text: "1 = 0".into(),
        values: vec![],
    }
}

fn in_uuids(column: &str, ids: &[Uuid]) -> Sql {
    if ids.is_empty() {
        return false_sql();
    }
    Sql {
        text: format!("{column} IN ({})", vec!["?"; ids.len()].join(", ")),
        values: ids.iter().map(|u| Value::from(*u)).collect(),
    }
}

/// `NOT COALESCE(positive, FALSE)` for `!=`, else the positive match.
fn negate_if(op: SearchOp, positive: Sql) -> Sql {
    if op == SearchOp::Ne {
        Sql {
            text: format!("NOT COALESCE(({}), FALSE)", positive.text),
            values: positive.values,
        }
    } else {
        positive
    }
}

/// Compares `expr` (whose own placeholders take `expr_values`, repeated
/// for each use) with the values: `=` (wildcards allowed), `!=`, `:`
/// (contains) or an ordering.
fn text_match(
    expr: &str,
    expr_values: Vec<Value>,
    op: SearchOp,
    values: &[String],
    case_insensitive: bool,
) -> Sql {
    let fold = |v: &str| {
        if case_insensitive {
            v.to_lowercase()
        } else {
            v.to_string()
        }
    };
    let mut parts = Vec::new();
    let mut bound = Vec::new();
    for value in values {
        bound.extend(expr_values.iter().cloned());
        match op {
            SearchOp::Contains => {
                parts.push(format!("{expr} LIKE ? ESCAPE '\\'"));
                bound.push(Value::from(format!("%{}%", escape_like(&fold(value)))));
            }
            op if op.is_ordering() => {
                parts.push(format!("{expr} {} ?", ordering(op)));
                bound.push(Value::from(fold(value)));
            }
            _ => match wildcard_pattern(value) {
                Some(pattern) => {
                    parts.push(format!("{expr} LIKE ? ESCAPE '\\'"));
                    bound.push(Value::from(fold(&pattern)));
                }
                None => {
                    parts.push(format!("{expr} = ?"));
                    bound.push(Value::from(fold(value)));
                }
            },
        }
    }
    let positive = Sql {
        text: parts.join(" OR "),
        values: bound,
    };
    negate_if(op, positive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_escaped_like_patterns() {
        assert_eq!(wildcard_pattern("api-*").as_deref(), Some("api-%"));
        assert_eq!(wildcard_pattern("*-db").as_deref(), Some("%-db"));
        assert_eq!(wildcard_pattern("*mid*").as_deref(), Some("%mid%"));
        assert_eq!(wildcard_pattern("*").as_deref(), Some("%"));
        assert_eq!(
            wildcard_pattern("50%_off*").as_deref(),
            Some("50\\%\\_off%")
        );
        assert_eq!(wildcard_pattern("plain"), None);
    }

    #[test]
    fn json_paths_are_quoted() {
        assert_eq!(
            sqlite_json_path(&["a".into(), "b.c\"d".into()]),
            r#"$."a"."b.c\"d""#
        );
        assert_eq!(pg_text_array(&["a".into(), "b".into()]), r#"{"a","b"}"#);
    }
}
