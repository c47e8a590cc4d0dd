//! Keyset pagination shared by every list the API exposes (SPEC §11
//! "Conventions"): `first`/`after` and `last`/`before` over an ordering of
//! SQL sort keys that always ends on `id`, with opaque cursors that carry the
//! key values of a row and the ordering they belong to. Never `OFFSET`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, Order};
use sea_orm::{DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, Result};

/// Largest page (`first`/`last`); larger values are an error, never clamped.
pub const MAX_PAGE: u64 = 100;
/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE: u64 = 20;

/// Which window of an ordered list to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// The first `n` rows after `after` (1–100).
    pub first: Option<u64>,
    /// Rows strictly after this cursor.
    pub after: Option<String>,
    /// The last `n` rows before `before` (1–100).
    pub last: Option<u64>,
    /// Rows strictly before this cursor.
    pub before: Option<String>,
}

impl PageRequest {
    /// The first `n` rows.
    pub fn first(n: u64) -> PageRequest {
        PageRequest {
            first: Some(n),
            ..PageRequest::default()
        }
    }

    /// The first `n` rows after `cursor`.
    pub fn after(n: u64, cursor: impl Into<String>) -> PageRequest {
        PageRequest {
            first: Some(n),
            after: Some(cursor.into()),
            ..PageRequest::default()
        }
    }

    /// The last `n` rows before `cursor` (or of the whole list).
    pub fn last(n: u64, before: Option<String>) -> PageRequest {
        PageRequest {
            last: Some(n),
            before,
            ..PageRequest::default()
        }
    }

    /// `(size, backwards)`, or why the request is invalid.
    fn window(&self) -> Result<(u64, bool)> {
        let check = |what: &'static str, n: u64| {
            if (1..=MAX_PAGE).contains(&n) {
                Ok(n)
            } else {
                Err(DomainError::invalid(
                    what,
                    format!("must be between 1 and {MAX_PAGE}, got {n}"),
                ))
            }
        };
        match (self.first, self.last) {
            (Some(_), Some(_)) => Err(DomainError::invalid("page", "give first or last, not both")),
            (Some(n), None) => Ok((check("first", n)?, false)),
            (None, Some(n)) => Ok((check("last", n)?, true)),
            (None, None) => Ok((DEFAULT_PAGE, false)),
        }
    }
}

/// One page of rows with their cursors.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// Rows in list order, each with its cursor.
    pub items: Vec<(String, T)>,
    /// More rows follow the last one.
    pub has_next_page: bool,
    /// Rows precede the first one.
    pub has_previous_page: bool,
}

impl<T> Page<T> {
    /// The rows without cursors.
    pub fn into_rows(self) -> Vec<T> {
        self.items.into_iter().map(|(_, t)| t).collect()
    }

    /// The same page with each row mapped.
    pub fn map<U>(self, f: impl Fn(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(|(c, t)| (c, f(t))).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }
}

/// How a sort key's cursor value is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Text,
    Int,
    Time,
    Uuid,
}

/// One SQL sort key.
#[derive(Debug, Clone)]
pub(crate) struct SortKey {
    /// A SQL expression over the listed table.
    pub sql: String,
    pub descending: bool,
    pub kind: KeyKind,
}

/// An ordering: sort keys ending on the row id, and a tag that binds
/// cursors to it (a cursor of another ordering is rejected, not misread).
#[derive(Debug, Clone)]
pub(crate) struct Keyset {
    keys: Vec<SortKey>,
    tag: String,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// The ordering's tag.
    o: String,
    /// Key values, one per sort key.
    k: Vec<serde_json::Value>,
}

/// A key value read off a row.
#[derive(Debug, Clone)]
pub(crate) enum KeyValue {
    Text(Option<String>),
    Int(i64),
    Time(DateTime<Utc>),
    Uuid(Uuid),
}

impl KeyValue {
    fn to_json(&self) -> serde_json::Value {
        match self {
            KeyValue::Text(t) => t.clone().map_or(serde_json::Value::Null, Into::into),
            KeyValue::Int(n) => (*n).into(),
            KeyValue::Time(t) => t
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
            KeyValue::Uuid(u) => u.to_string().into(),
        }
    }
}

fn bad_cursor() -> DomainError {
    DomainError::invalid("cursor", "not a cursor of this list and ordering")
}

impl Keyset {
    /// An ordering over `keys`, then `id_sql` (descending when
    /// `id_descending`) as the tie-break.
    pub(crate) fn new(mut keys: Vec<SortKey>, id_sql: &str, id_descending: bool) -> Keyset {
        keys.push(SortKey {
            sql: id_sql.to_string(),
            descending: id_descending,
            kind: KeyKind::Uuid,
        });
        let tag = keys
            .iter()
            .map(|k| format!("{}{}", k.sql, if k.descending { "-" } else { "+" }))
            .collect::<Vec<_>>()
            .join(",");
        // A short, stable tag: the first 8 bytes of its SHA-256.
        use sha2::{Digest, Sha256};
        let tag = hex::encode(&Sha256::digest(tag.as_bytes())[..8]);
        Keyset { keys, tag }
    }

    pub(crate) fn cursor(&self, values: &[KeyValue]) -> String {
        let cursor = Cursor {
            o: self.tag.clone(),
            k: values.iter().map(KeyValue::to_json).collect(),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
    }

    fn decode(&self, cursor: &str) -> Result<Vec<Value>> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad_cursor())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad_cursor())?;
        if cursor.o != self.tag || cursor.k.len() != self.keys.len() {
            return Err(bad_cursor());
        }
        self.keys
            .iter()
            .zip(cursor.k)
            .map(|(key, v)| {
                Ok(match (key.kind, v) {
                    (KeyKind::Text, serde_json::Value::String(s)) => Value::from(s),
                    (KeyKind::Text, serde_json::Value::Null) => Value::String(None),
                    (KeyKind::Int, serde_json::Value::Number(n)) => {
                        Value::from(n.as_i64().ok_or_else(bad_cursor)?)
                    }
                    (KeyKind::Time, serde_json::Value::String(s)) => Value::from(
                        DateTime::parse_from_rfc3339(&s)
                            .map_err(|_| bad_cursor())?
                            .with_timezone(&Utc),
                    ),
                    (KeyKind::Uuid, serde_json::Value::String(s)) => {
                        Value::from(Uuid::parse_str(&s).map_err(|_| bad_cursor())?)
                    }
                    _ => return Err(bad_cursor()),
                })
            })
            .collect()
    }

    /// Rows strictly after (or, `before`, strictly before) the cursor's
    /// row in this ordering.
    fn bound(&self, backend: DbBackend, values: Vec<Value>, before: bool) -> Condition {
        let mut any = Condition::any();
        for i in 0..self.keys.len() {
            let mut text = Vec::new();
            let mut bound = Vec::new();
            for (key, value) in self.keys.iter().zip(values.iter()).take(i) {
                text.push(format!("{} = ?", self.expr(key)));
                bound.push(self.bind(key, value));
            }
            let key = &self.keys[i];
            let greater = key.descending == before;
            text.push(format!(
                "{} {} ?",
                self.expr(key),
                if greater { ">" } else { "<" }
            ));
            bound.push(self.bind(key, &values[i]));
            any = any.add(super::cust(backend, &text.join(" AND "), bound));
        }
        any
    }

    /// Sort keys are used as written, so an index on them serves the
    /// order; text keys must be NOT NULL columns (a NULL would break the
    /// keyset comparison).
    fn expr(&self, key: &SortKey) -> String {
        key.sql.clone()
    }

    fn bind(&self, key: &SortKey, value: &Value) -> Value {
        match (key.kind, value) {
            (KeyKind::Text, Value::String(None)) => Value::from(""),
            _ => value.clone(),
        }
    }

    /// Fetches one page of `select` in this ordering; `key_of` reads a
    /// row's key values (in key order, the id last).
    pub(crate) async fn fetch<E, C>(
        &self,
        db: &C,
        select: Select<E>,
        request: &PageRequest,
        key_of: impl Fn(&E::Model) -> Vec<KeyValue>,
    ) -> Result<Page<E::Model>>
    where
        E: EntityTrait,
        C: sea_orm::ConnectionTrait,
    {
        self.fetch_into::<E, E::Model, C>(db, select, request, key_of)
            .await
    }

    /// [`Keyset::fetch`], decoding rows as `M`.
    pub(crate) async fn fetch_into<E, M, C>(
        &self,
        db: &C,
        select: Select<E>,
        request: &PageRequest,
        key_of: impl Fn(&M) -> Vec<KeyValue>,
    ) -> Result<Page<M>>
    where
        E: EntityTrait,
        M: sea_orm::FromQueryResult + Send,
        C: sea_orm::ConnectionTrait,
    {
        let (size, backwards) = request.window()?;
        let backend = db.get_database_backend();
        let mut select = select;
        if let Some(after) = &request.after {
            select = select.filter(self.bound(backend, self.decode(after)?, false));
        }
        if let Some(before) = &request.before {
            select = select.filter(self.bound(backend, self.decode(before)?, true));
        }
        for key in &self.keys {
            let descending = key.descending != backwards;
            select = select.order_by(
                Expr::cust(self.expr(key)),
                if descending { Order::Desc } else { Order::Asc },
            );
        }
        let mut rows = select.limit(size + 1).into_model::<M>().all(db).await?;
        let more = rows.len() as u64 > size;
        rows.truncate(size as usize);
        if backwards {
            rows.reverse();
        }
        let items = rows
            .into_iter()
            .map(|row| (self.cursor(&key_of(&row)), row))
            .collect();
        Ok(if backwards {
            Page {
                items,
                has_next_page: request.before.is_some(),
                has_previous_page: more,
            }
        } else {
            Page {
                items,
                has_next_page: more,
                has_previous_page: request.after.is_some(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_checked_not_clamped() {
        assert!(PageRequest::first(101).window().is_err());
        assert!(PageRequest::first(0).window().is_err());
        assert!(PageRequest::last(101, None).window().is_err());
        assert_eq!(PageRequest::default().window().ok(), Some((20, false)));
        assert_eq!(PageRequest::last(5, None).window().ok(), Some((5, true)));
        let both = PageRequest {
            first: Some(1),
            last: Some(1),
            ..PageRequest::default()
        };
        assert!(both.window().is_err());
    }

    #[test]
    fn cursors_are_bound_to_their_ordering() {
        let by_name = Keyset::new(
            vec![SortKey {
                sql: "name".into(),
                descending: false,
                kind: KeyKind::Text,
            }],
            "id",
            false,
        );
        let by_type = Keyset::new(
            vec![SortKey {
                sql: "type".into(),
                descending: false,
                kind: KeyKind::Text,
            }],
            "id",
            false,
        );
        let cursor = by_name.cursor(&[
            KeyValue::Text(Some("a".into())),
            KeyValue::Uuid(Uuid::nil()),
        ]);
        assert!(by_name.decode(&cursor).is_ok());
        assert!(by_type.decode(&cursor).is_err());
        assert!(by_name.decode("garbage").is_err());
    }
}
