//! The audit log of SPEC §12: one structured line per mutation field
//! (target `stratum::audit`) saying who ran what, when, and how it ended.
//! Ids, times and flags are written out; anything else (pushed payloads,
//! YAML) shows only as `…`. The request guard ([`super::guard`]) calls it:
//! it notes a document's mutation fields when the document is parsed (or
//! served from its cache) and logs them once the operation ran, so the log
//! needs no schema extension of its own (each one costs every field of
//! every response).

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{Response, Variables};

use crate::auth::Principal;

/// Arguments whose values are written to the audit line.
const LOGGED_ARGUMENTS: &[&str] = &["id", "ids", "until", "scraperId", "full", "hard", "dryRun"];

/// One root mutation field of the request.
pub(super) struct MutationField {
    /// The alias, or the field name: errors' paths start with it.
    key: String,
    name: String,
    arguments: String,
}

/// `(operation name, its root fields)` of each mutation in a document.
pub(super) type Mutations = Vec<(Option<String>, Vec<MutationField>)>;

fn argument_text(name: &str, value: &async_graphql::Value) -> String {
    let text = value.to_string();
    if LOGGED_ARGUMENTS.contains(&name) && !text.starts_with('{') && text.len() <= 400 {
        text
    } else {
        "…".to_string()
    }
}

/// The mutation operations of `doc` with their root fields (none for a
/// query document).
pub(super) fn mutation_fields(doc: &ExecutableDocument, variables: &Variables) -> Mutations {
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

/// Writes the audit lines of the operation `operation_name` of a document
/// whose mutations are `mutations`, now that it ran.
pub(super) fn log(
    mutations: Mutations,
    operation_name: Option<&str>,
    response: &Response,
    principal: Option<&Principal>,
) {
    let fields = match operation_name {
        Some(wanted) => mutations
            .into_iter()
            .find(|(name, _)| name.as_deref() == Some(wanted)),
        None if mutations.len() == 1 => mutations.into_iter().next(),
        None => None,
    };
    let Some((_, fields)) = fields else {
        return;
    };
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
}
