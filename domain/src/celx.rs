//! The CEL environment: expressions are compiled once and evaluated against
//! JSON variables (SPEC §10 "CEL").

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

    /// Evaluates with the given variables and converts the result to JSON.
    pub fn evaluate(&self, variables: &[(&str, &Value)]) -> Result<Value> {
        let mut context = Context::with_env(ENV.clone());
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
    fn compile_errors_have_positions() {
        let err = Expression::compile("config.kind +").expect_err("invalid");
        assert!(err.column >= 1);
        assert!(!err.message.is_empty());
    }
}
