//! The audit log of SPEC §12: one structured line per mutation field
//! (target `stratum::audit`) saying who ran what, when, and how it ended.
//! Ids, times and flags are written out; anything else (pushed payloads,
//! YAML) shows only as `…`. Only mutations pay for it: queries pass
//! through two hooks that do nothing.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{Response, ServerResult, Variables};

use crate::auth::Principal;

/// Arguments whose values are written to the audit line.
const LOGGED_ARGUMENTS: &[&str] = &["id", "ids", "until", "scraperId", "full", "hard", "dryRun"];

/// Installs the audit log. Register it before the request guard, whose
/// document cache would otherwise hide the parsed mutation from it.
pub struct AuditLog;

impl ExtensionFactory for AuditLog {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AuditExtension::default())
    }
}

/// One root mutation field of the request.
struct MutationField {
    /// The alias, or the field name: errors' paths start with it.
    key: String,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct AuditExtension {
    /// `(operation name, its root fields)` of each mutation in the document.
    mutations: Mutex<Vec<(Option<String>, Vec<MutationField>)>>,
}

fn argument_text(name: &str, value: &async_graphql::Value) -> String {
    let text = value.to_string();
    if LOGGED_ARGUMENTS.contains(&name) && !text.starts_with('{') && text.len() <= 400 {
        text
    } else {
        "…".to_string()
    }
}

fn mutation_fields(
    doc: &ExecutableDocument,
    variables: &Variables,
) -> Vec<(Option<String>, Vec<MutationField>)> {
    doc.operations
        .iter()
        .filter(|(_, op)| op.node.ty == OperationType::Mutation)
        .map(|(name, op)| {
            let fields = op
                .node
                .selection_set
                .node
                .items
                .iter()
                .filter_map(|item| match &item.node {
                    Selection::Field(field) => Some(&field.node),
                    _ => None,
                })
                .map(|field| MutationField {
                    key: field.response_key().node.to_string(),
                    name: field.name.node.to_string(),
                    arguments: field
                        .arguments
                        .iter()
                        .map(|(arg, value)| {
                            let value = value
                                .node
                                .clone()
                                .into_const_with(|var| variables.get(&var).cloned().ok_or(()))
                                .unwrap_or(async_graphql::Value::Null);
                            format!("{}={}", arg.node, argument_text(arg.node.as_str(), &value))
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                })
                .collect();
            (name.map(|n| n.to_string()), fields)
        })
        .collect()
}

#[async_trait::async_trait]
impl Extension for AuditExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let found = mutation_fields(&doc, variables);
        if !found.is_empty() {
            *self
                .mutations
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = found;
        }
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(ctx, operation_name).await;
        let mutations = std::mem::take(
            &mut *self
                .mutations
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let fields = match operation_name {
            Some(wanted) => mutations
                .into_iter()
                .find(|(name, _)| name.as_deref() == Some(wanted)),
            None if mutations.len() == 1 => mutations.into_iter().next(),
            None => None,
        };
        let Some((_, fields)) = fields else {
            return response;
        };
        let principal = ctx.data_opt::<Principal>();
        for field in fields {
            let outcome = response
                .errors
                .iter()
                .find(|e| {
                    e.path.first().is_some_and(
                        |p| matches!(p, async_graphql::PathSegment::Field(f) if *f == field.key),
                    )
                })
                .map_or_else(
                    || "ok".to_string(),
                    |e| crate::graphql::guard::code_of(e).unwrap_or_else(|| "error".into()),
                );
            tracing::info!(
                target: "stratum::audit",
                mutation = %field.name,
                arguments = %field.arguments,
                subject = principal.map_or("server", |p| p.subject.as_str()),
                role = principal.map_or("admin", |p| p.role.as_str()),
                token = principal.and_then(|p| p.token_id.as_deref()),
                outcome = %outcome,
                "mutation"
            );
        }
        response
    }
}
