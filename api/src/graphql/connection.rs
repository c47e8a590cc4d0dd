//! The one pagination helper every list field goes through: Relay
//! `first`/`after`/`last`/`before` arguments into a domain
//! [`PageRequest`], and a domain [`Page`] into an async-graphql
//! [`Connection`] (`edges`, `nodes`, `pageInfo`, plus the list's own fields
//! such as a lazily computed `totalCount`).

use async_graphql::connection::{Connection, Edge};
use async_graphql::{ObjectType, OutputType};
use stratum_domain::store::{MAX_PAGE, Page, PageRequest};

use crate::error::{ApiError, ApiResult, gql};

/// Relay arguments as the schema receives them.
#[derive(Debug, Default, Clone)]
pub struct PageArgs {
    /// `first`.
    pub first: Option<i32>,
    /// `after`.
    pub after: Option<String>,
    /// `last`.
    pub last: Option<i32>,
    /// `before`.
    pub before: Option<String>,
}

fn size(what: &str, n: Option<i32>) -> ApiResult<Option<u64>> {
    match n {
        None => Ok(None),
        Some(n) if n >= 1 && (n as u64) <= MAX_PAGE => Ok(Some(n as u64)),
        Some(n) => Err(gql(ApiError::BadUserInput(format!(
            "{what} must be between 1 and {MAX_PAGE}, got {n}"
        )))),
    }
}

impl PageArgs {
    /// Checks the sizes (1–100, never clamped) and builds the request.
    pub fn request(self) -> ApiResult<PageRequest> {
        Ok(PageRequest {
            first: size("first", self.first)?,
            after: self.after,
            last: size("last", self.last)?,
            before: self.before,
        })
    }
}

/// Builds a connection from a page, mapping rows to nodes.
pub fn connection<T, N, F>(
    page: Page<T>,
    node: impl Fn(T) -> N,
    fields: F,
) -> Connection<String, N, F>
where
    N: OutputType,
    F: ObjectType,
{
    let mut conn =
        Connection::with_additional_fields(page.has_previous_page, page.has_next_page, fields);
    conn.edges.extend(
        page.items
            .into_iter()
            .map(|(cursor, row)| Edge::new(cursor, node(row))),
    );
    conn
}
