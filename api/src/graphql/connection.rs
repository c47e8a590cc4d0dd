//! The one pagination helper every list field goes through: Relay
//! `first`/`after`/`last`/`before` arguments into a domain
//! [`PageRequest`], and a domain [`Page`] into an async-graphql
//! [`Connection`] (`edges`, `nodes`, `pageInfo`, plus the list's own fields
//! such as a lazily computed `totalCount`).

use async_graphql::connection::{Connection, Edge};
use async_graphql::{ObjectType, OutputType};
use stratum_domain::store::{MAX_PAGE, Page, PageRequest};

use crate::error::{ApiError, ApiResult, gql};

fn size(what: &str, n: Option<i32>) -> ApiResult<Option<u64>> {
    match n {
        None => Ok(None),
        Some(n) if n >= 1 && (n as u64) <= MAX_PAGE => Ok(Some(n as u64)),
        Some(n) => Err(gql(ApiError::BadUserInput(format!(
            "{what} must be between 1 and {MAX_PAGE}, got {n}"
        )))),
    }
}

/// Builds the page request from a field's Relay arguments, checking the
/// sizes (1–100, never clamped).
pub fn page_request(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> ApiResult<PageRequest> {
    Ok(PageRequest {
        first: size("first", first)?,
        after,
        last: size("last", last)?,
        before,
    })
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

/// Pages a list already in memory (a relationship walk, at most 5,000
/// rows) whose rows carry their cursors: the same `first`/`after`/`last`/
/// `before` rules as the keyset lists. An unknown cursor is an error.
pub fn page_in_memory<T>(rows: Vec<(String, T)>, request: &PageRequest) -> ApiResult<Page<T>> {
    let position = |cursor: &str| {
        rows.iter().position(|(c, _)| c == cursor).ok_or_else(|| {
            gql(ApiError::BadUserInput(
                "invalid cursor: not a cursor of this list".into(),
            ))
        })
    };
    let start = match &request.after {
        Some(c) => position(c)? + 1,
        None => 0,
    };
    let end = match &request.before {
        Some(c) => position(c)?,
        None => rows.len(),
    }
    .max(start);
    let (from, to) = match (request.first, request.last) {
        (Some(_), Some(_)) => {
            return Err(gql(ApiError::BadUserInput(
                "give first or last, not both".into(),
            )));
        }
        (Some(n), None) => (start, end.min(start + n as usize)),
        (None, Some(n)) => (end.saturating_sub(n as usize).max(start), end),
        (None, None) => (start, end.min(start + 20)),
    };
    let has_next_page = to < end || request.before.is_some();
    let has_previous_page = from > start || request.after.is_some();
    Ok(Page {
        items: rows.into_iter().skip(from).take(to - from).collect(),
        has_next_page,
        has_previous_page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<(String, u32)> {
        (0..10).map(|i| (format!("c{i}"), i)).collect()
    }

    fn values(page: Page<u32>) -> (Vec<u32>, bool, bool) {
        let (next, previous) = (page.has_next_page, page.has_previous_page);
        (page.into_rows(), next, previous)
    }

    #[test]
    fn in_memory_pages_follow_relay_rules() {
        let first = |n, after: Option<&str>| PageRequest {
            first: Some(n),
            after: after.map(str::to_string),
            ..PageRequest::default()
        };
        let last = |n, before: Option<&str>| PageRequest {
            last: Some(n),
            before: before.map(str::to_string),
            ..PageRequest::default()
        };
        let page = |r: PageRequest| values(page_in_memory(rows(), &r).expect("page"));
        assert_eq!(page(first(3, None)), (vec![0, 1, 2], true, false));
        assert_eq!(page(first(3, Some("c8"))), (vec![9], false, true));
        assert_eq!(page(last(3, None)), (vec![7, 8, 9], false, true));
        assert_eq!(page(last(3, Some("c2"))), (vec![0, 1], true, false));
        assert!(page_in_memory(rows(), &first(3, Some("nope"))).is_err());
    }
}
