//! The CEL environment: expressions are compiled once and evaluated against
//! JSON variables (SPEC §10 "CEL"). Every evaluation also sees `now` (a
//! timestamp) and `glob(text, pattern)`.

use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program};
use serde_json::Value;

use crate::error::{DomainError, Result};

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled CEL expression.
pub struct Expression {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

/// A compile error with its 1-based position inside the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// 1-based line inside the expression.
    pub line: usize,
    /// 1-based column inside the expression.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl Expression {
    /// Compiles `source`.
    pub fn compile(source: &str) -> std::result::Result<Self, CompileError> {
        match ENV.compile(source) {
            Ok(program) => Ok(Expression {
                source: source.to_string(),
                program,
            }),
            Err(errors) => {
                let first = errors.errors.first();
                Err(CompileError {
                    line: first.map(|e| e.pos.0.max(1) as usize).unwrap_or(1),
                    column: first.map(|e| e.pos.1.max(0) as usize + 1).unwrap_or(1),
                    message: first
                        .map(|e| e.msg.clone())
                        .unwrap_or_else(|| "invalid expression".to_string()),
                })
            }
        }
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with the given variables (plus `now` and `glob`) and
    /// converts the result to JSON.
    pub fn evaluate(&self, variables: &[(&str, &Value)]) -> Result<Value> {
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_from_value(
            "now",
            cel::Value::Timestamp(chrono::Utc::now().fixed_offset()),
        );
        context
            .add_function("glob", |text: Arc<String>, pattern: Arc<String>| {
                glob_match(&pattern, &text)
            })
            .map_err(|e| DomainError::Cel(format!("glob: {e:?}")))?;
        for (name, value) in variables {
            let v = cel::to_value(value).map_err(|e| DomainError::Cel(e.to_string()))?;
            context.add_variable_from_value(*name, v);
        }
        let out = self
            .program
            .execute(&context)
            .map_err(|e| DomainError::Cel(format!("{}: {e}", self.source)))?;
        out.json()
            .map_err(|e| DomainError::Cel(format!("{}: {e}", self.source)))
    }
}

/// Shell-style matching (`*`, `?`, `[…]`); an invalid pattern matches nothing.
fn glob_match(pattern: &str, text: &str) -> bool {
    glob::Pattern::new(pattern).is_ok_and(|p| p.matches(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_against_json() {
        let e = Expression::compile(r#""Inventory::" + config.kind"#).expect("compiles");
        let config = json!({"kind": "Service"});
        assert_eq!(
            e.evaluate(&[("config", &config)]).ok(),
            Some(json!("Inventory::Service"))
        );
    }

    #[test]
    fn now_and_glob_are_always_there() {
        let e = Expression::compile(
            r#"glob(config.name, "api-*") && !glob(config.name, "db?") && timestamp(config.at) < now"#,
        )
        .expect("compiles");
        let config = json!({"name": "api-7d9f", "at": "2026-01-01T00:00:00Z"});
        assert_eq!(e.evaluate(&[("config", &config)]).ok(), Some(json!(true)));
        for (pattern, text, want) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("Kubernetes::*", "Kubernetes::Pod", true),
            ("*Error", "ImageError", true),
            ("*Error", "ErrorX", false),
        ] {
            assert_eq!(glob_match(pattern, text), want, "{pattern} {text}");
        }
    }

    #[test]
    fn compile_errors_have_positions() {
        let err = Expression::compile("config.kind +").expect_err("invalid");
        assert!(err.column >= 1);
        assert!(!err.message.is_empty());
    }
}
