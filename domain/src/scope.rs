//! Access scopes (SPEC §12): which config items a token may see. A scope
//! is the `stratum/scope` claim, `{namespaces?, types?, tags?, scrapers?}`;
//! an item is visible when it matches every dimension present, values
//! within a dimension ORed. The store applies the same rule in SQL
//! ([`crate::store::Store::scoped`]); [`Scope::allows`] is its in-memory
//! twin for subscription delivery.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::entities::config_item;
use crate::error::{DomainError, Result};

/// Most patterns or values one dimension may list.
pub const MAX_VALUES: usize = 100;

/// The items a token may see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Namespace globs (`*`, `?`); items without a namespace are hidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Config type globs (`Kubernetes::*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// Exact tag values per tag key; every key must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, Vec<String>>>,
    /// Names of the scrapers whose items are visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrapers: Option<Vec<String>>,
}

/// A glob of `*` (any run) and `?` (one character); everything else is literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Glob<'a> {
    /// No wildcard: an exact value.
    Exact(&'a str),
    /// A pattern with wildcards.
    Pattern(&'a str),
}

impl<'a> Glob<'a> {
    /// Classifies `text`.
    pub fn of(text: &'a str) -> Glob<'a> {
        if text.contains(['*', '?']) {
            Glob::Pattern(text)
        } else {
            Glob::Exact(text)
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Glob::Exact(text) => *text == value,
            Glob::Pattern(text) => wildcard_match(text, value),
        }
    }

    /// The pattern as a `LIKE … ESCAPE '\'` pattern.
    pub fn like_pattern(&self) -> String {
        let text = match self {
            Glob::Exact(t) | Glob::Pattern(t) => t,
        };
        let mut out = String::with_capacity(text.len() + 4);
        for c in text.chars() {
            match c {
                '*' => out.push('%'),
                '?' => out.push('_'),
                '%' | '_' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out
    }
}

/// `*`/`?` matching over characters (as SQL's `%`/`_` and SQLite's GLOB
/// match), backtracking to the last `*`. The `glob` crate's patterns are
/// path globs: `**` has path meaning there and `a**b` is an error.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let value: Vec<char> = value.chars().collect();
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, v));
                p += 1;
            }
            Some('?') => {
                p += 1;
                v += 1;
            }
            Some(c) if *c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    p = sp + 1;
                    v = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

impl Scope {
    /// Parses and validates the `stratum/scope` claim or a `--scope` flag.
    pub fn parse(value: &serde_json::Value) -> Result<Scope> {
        let scope: Scope = serde_json::from_value(value.clone())
            .map_err(|e| DomainError::invalid("scope", e.to_string()))?;
        scope.validate()?;
        Ok(scope)
    }

    /// Checks every dimension: at least one value, at most [`MAX_VALUES`],
    /// no empty values, and only `*`/`?` as wildcards (`[`, `]` and `\`
    /// are refused so SQL and memory agree on what matches).
    pub fn validate(&self) -> Result<()> {
        let check = |field: &'static str, values: &[String], globs: bool| -> Result<()> {
            if values.is_empty() {
                return Err(DomainError::invalid(
                    field,
                    "an empty list would hide everything; omit the dimension instead",
                ));
            }
            if values.len() > MAX_VALUES {
                return Err(DomainError::invalid(
                    field,
                    format!("at most {MAX_VALUES} values"),
                ));
            }
            for v in values {
                if v.is_empty() {
                    return Err(DomainError::invalid(field, "values must not be empty"));
                }
                if globs && v.contains(['[', ']', '\\']) {
                    return Err(DomainError::invalid(
                        field,
                        format!(
                            "{v:?}: only `*` and `?` are wildcards; `[`, `]` and `\\` are not allowed"
                        ),
                    ));
                }
            }
            Ok(())
        };
        if let Some(v) = &self.namespaces {
            check("scope.namespaces", v, true)?;
        }
        if let Some(v) = &self.types {
            check("scope.types", v, true)?;
        }
        if let Some(v) = &self.scrapers {
            check("scope.scrapers", v, false)?;
        }
        if let Some(tags) = &self.tags {
            if tags.is_empty() {
                return Err(DomainError::invalid(
                    "scope.tags",
                    "an empty map restricts nothing; omit it instead",
                ));
            }
            for (key, values) in tags {
                if key.is_empty() {
                    return Err(DomainError::invalid("scope.tags", "keys must not be empty"));
                }
                if values.is_empty() {
                    return Err(DomainError::invalid(
                        "scope.tags",
                        format!("{key}: an empty list would hide everything; omit the key instead"),
                    ));
                }
                check("scope.tags", values, false)?;
            }
        }
        if self.is_unrestricted() {
            return Err(DomainError::invalid(
                "scope",
                "names no dimension (namespaces, types, tags or scrapers)",
            ));
        }
        Ok(())
    }

    /// True when no dimension is present.
    pub fn is_unrestricted(&self) -> bool {
        self.namespaces.is_none()
            && self.types.is_none()
            && self.tags.is_none()
            && self.scrapers.is_none()
    }

    /// Whether `item` (of a scraper named `scraper_name`) is visible: the
    /// in-memory form of the store's SQL condition.
    pub fn allows(&self, item: &config_item::Model, scraper_name: Option<&str>) -> bool {
        let any = |globs: &[String], value: &str| globs.iter().any(|g| Glob::of(g).matches(value));
        if let Some(namespaces) = &self.namespaces {
            match &item.namespace {
                Some(ns) if any(namespaces, ns) => {}
                _ => return false,
            }
        }
        if let Some(types) = &self.types
            && !any(types, &item.item_type)
        {
            return false;
        }
        if let Some(tags) = &self.tags {
            for (key, values) in tags {
                let Some(value) = item.tags.get(key).and_then(|v| v.as_str()) else {
                    return false;
                };
                if !values.iter().any(|v| v == value) {
                    return false;
                }
            }
        }
        if let Some(scrapers) = &self.scrapers {
            match scraper_name {
                Some(name) if scrapers.iter().any(|s| s == name) => {}
                _ => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn globs_match_like_sql() {
        assert!(Glob::of("team-*").matches("team-a"));
        assert!(Glob::of("team-*").matches("team-"));
        assert!(!Glob::of("team-*").matches("xteam-a"));
        assert!(Glob::of("*-prod").matches("payments-prod"));
        assert!(Glob::of("a?c").matches("abc"));
        assert!(!Glob::of("a?c").matches("ac"));
        assert!(Glob::of("*a*b*").matches("xxaxxbxx"));
        assert!(!Glob::of("*a*b*").matches("xxbxxaxx"));
        assert!(Glob::of("payments").matches("payments"));
        assert!(!Glob::of("payments").matches("Payments"));
        assert_eq!(Glob::of("a_b%*?").like_pattern(), "a\\_b\\%%_");
    }

    #[test]
    fn bad_scopes_are_refused_with_the_field() {
        for (value, field) in [
            (json!({}), "scope"),
            (json!({"namespaces": []}), "scope.namespaces"),
            (json!({"namespaces": [""]}), "scope.namespaces"),
            (json!({"types": ["[ab]"]}), "scope.types"),
            (json!({"tags": {}}), "scope.tags"),
            (json!({"tags": {"team": []}}), "team: an empty list"),
            (json!({"namespace": ["a"]}), "scope"),
            (json!({"namespaces": "a"}), "scope"),
        ] {
            let err = Scope::parse(&value).expect_err(&value.to_string());
            assert!(
                err.to_string().contains(field),
                "{value}: {err} does not name {field}"
            );
        }
    }

    fn item(
        namespace: Option<&str>,
        item_type: &str,
        tags: serde_json::Value,
    ) -> config_item::Model {
        let now = chrono::Utc::now();
        config_item::Model {
            id: uuid::Uuid::nil(),
            scraper_id: uuid::Uuid::nil(),
            external_ids: json!([]),
            primary_external_id: String::new(),
            item_type: item_type.into(),
            config_class: String::new(),
            name: "x".into(),
            namespace: namespace.map(str::to_string),
            tags,
            labels: json!({}),
            properties: json!([]),
            config: json!(null),
            config_hash: String::new(),
            row_hash: String::new(),
            health: "healthy".into(),
            status: None,
            ready: true,
            description: None,
            rolled_up_health: "healthy".into(),
            descendant_health: json!({}),
            parent_id: None,
            path: String::new(),
            source: None,
            cost_per_minute: None,
            cost_total_1d: None,
            cost_total_7d: None,
            cost_total_30d: None,
            currency: None,
            created_at: now,
            updated_at: now,
            last_scraped_at: now,
            deleted_at: None,
            delete_reason: None,
        }
    }

    #[test]
    fn dimensions_are_anded_and_values_ored() {
        let scope = Scope::parse(&json!({
            "namespaces": ["payments", "team-*"],
            "tags": {"env": ["prod", "staging"]}
        }))
        .expect("scope");
        let pod = |ns, env| item(ns, "Kubernetes::Pod", json!({"env": env}));
        assert!(scope.allows(&pod(Some("payments"), "prod"), None));
        assert!(scope.allows(&pod(Some("team-a"), "staging"), None));
        assert!(!scope.allows(&pod(Some("team-a"), "dev"), None));
        assert!(!scope.allows(&pod(Some("orders"), "prod"), None));
        assert!(!scope.allows(&pod(None, "prod"), None));
        assert!(!scope.allows(&item(Some("payments"), "T", json!({})), None));

        let by_scraper = Scope::parse(&json!({"scrapers": ["k8s"]})).expect("scope");
        assert!(by_scraper.allows(&pod(None, "x"), Some("k8s")));
        assert!(!by_scraper.allows(&pod(None, "x"), Some("aws")));
        assert!(!by_scraper.allows(&pod(None, "x"), None));
    }

    proptest! {
        #[test]
        fn a_literal_pattern_matches_only_itself(a in "[a-z-]{0,8}", b in "[a-z-]{0,8}") {
            prop_assert_eq!(Glob::of(&a).matches(&b), a == b);
        }

        #[test]
        fn a_star_suffix_matches_every_extension(a in "[a-z]{0,6}", rest in "[a-z*?]{0,6}") {
            let pattern = format!("{a}*");
            let value = format!("{a}{rest}");
            prop_assert!(Glob::of(&pattern).matches(&value));
        }
    }
}
