//! Subscription filters, tested in memory against each event: a bus fans
//! one event out to thousands of subscribers, so no filter may cost a
//! database round trip.

use std::str::FromStr;

use uuid::Uuid;

use super::{ChangeEvent, ComponentHealthEvent, InsightEvent};
use crate::entities::config_item;
use crate::model::{Health, Severity};

/// A test on one tag or label key. Values may start or end with `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyTest {
    /// The value is one of these.
    In(String, Vec<String>),
    /// The key is absent or its value is none of these.
    NotIn(String, Vec<String>),
    /// The key is present.
    Exists(String),
    /// The key is absent.
    Absent(String),
}

fn glob_match(pattern: &str, value: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        _ if pattern == "*" => true,
        (Some(rest), _) if rest.ends_with('*') => value.contains(&rest[..rest.len() - 1]),
        (Some(suffix), _) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        (None, None) => value == pattern,
    }
}

impl KeyTest {
    fn holds(&self, map: &serde_json::Value) -> bool {
        let value = |key: &str| map.get(key).and_then(|v| v.as_str());
        match self {
            KeyTest::In(key, values) => {
                value(key).is_some_and(|v| values.iter().any(|p| glob_match(p, v)))
            }
            KeyTest::NotIn(key, values) => {
                value(key).is_none_or(|v| !values.iter().any(|p| glob_match(p, v)))
            }
            KeyTest::Exists(key) => map.get(key).is_some(),
            KeyTest::Absent(key) => map.get(key).is_none(),
        }
    }
}

/// Which config items a subscriber hears about; empty fields allow all.
#[derive(Debug, Clone, Default)]
pub struct ItemMatcher {
    /// Only these items.
    pub ids: Vec<Uuid>,
    /// Exact types.
    pub types: Vec<String>,
    /// Exact classes.
    pub classes: Vec<String>,
    /// Exact namespaces.
    pub namespaces: Vec<String>,
    /// The item's (current) health is one of these.
    pub health: Vec<Health>,
    /// Tag tests, all of which must hold.
    pub tags: Vec<KeyTest>,
    /// Label tests, all of which must hold.
    pub labels: Vec<KeyTest>,
    /// Deliver events of deleted items too.
    pub include_deleted: bool,
}

impl ItemMatcher {
    /// True when `item` passes every test.
    pub fn matches(&self, item: &config_item::Model) -> bool {
        (self.include_deleted || item.deleted_at.is_none())
            && (self.ids.is_empty() || self.ids.contains(&item.id))
            && (self.types.is_empty() || self.types.contains(&item.item_type))
            && (self.classes.is_empty() || self.classes.contains(&item.config_class))
            && (self.namespaces.is_empty()
                || item
                    .namespace
                    .as_ref()
                    .is_some_and(|n| self.namespaces.contains(n)))
            && (self.health.is_empty()
                || Health::from_str(&item.health).is_ok_and(|h| self.health.contains(&h)))
            && self.tags.iter().all(|t| t.holds(&item.tags))
            && self.labels.iter().all(|t| t.holds(&item.labels))
    }
}

fn severity_allowed(severities: &[Severity], min: Option<Severity>, stored: &str) -> bool {
    if severities.is_empty() && min.is_none() {
        return true;
    }
    Severity::from_str(stored).is_ok_and(|s| {
        (severities.is_empty() || severities.contains(&s)) && min.is_none_or(|m| s >= m)
    })
}

/// Which changes a subscriber hears about.
#[derive(Debug, Clone, Default)]
pub struct ChangeMatcher {
    /// Tests on the changed item.
    pub item: ItemMatcher,
    /// Exact change types.
    pub change_types: Vec<String>,
    /// Exactly these severities.
    pub severities: Vec<Severity>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
    /// Exact sources.
    pub sources: Vec<String>,
    /// Only health transitions (the `healthChanged` stream).
    pub health_only: bool,
}

impl ChangeMatcher {
    /// True when `event` passes every test.
    pub fn matches(&self, event: &ChangeEvent) -> bool {
        let c = &event.change;
        (!self.health_only || event.is_health_transition())
            && (self.change_types.is_empty() || self.change_types.contains(&c.change_type))
            && (self.sources.is_empty() || self.sources.contains(&c.source))
            && severity_allowed(&self.severities, self.min_severity, &c.severity)
            && self.item.matches(&event.item)
    }
}

/// Which insight transitions a subscriber hears about.
#[derive(Debug, Clone, Default)]
pub struct InsightMatcher {
    /// Tests on the insight's item (`ids` are config ids).
    pub item: ItemMatcher,
    /// Exact analyzers.
    pub analyzers: Vec<String>,
    /// Exact analysis types.
    pub types: Vec<String>,
    /// Exactly these severities.
    pub severities: Vec<Severity>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
    /// New statuses (`open`, `resolved`, `silenced`); all when empty.
    pub statuses: Vec<String>,
}

impl InsightMatcher {
    /// True when `event` passes every test.
    pub fn matches(&self, event: &InsightEvent) -> bool {
        let i = &event.insight;
        (self.analyzers.is_empty() || self.analyzers.contains(&i.analyzer))
            && (self.types.is_empty() || self.types.contains(&i.analysis_type))
            && (self.statuses.is_empty() || self.statuses.contains(&i.status))
            && severity_allowed(&self.severities, self.min_severity, &i.severity)
            && self.item.matches(&event.item)
    }
}

/// Which component transitions a subscriber hears about.
#[derive(Debug, Clone, Default)]
pub struct ComponentMatcher {
    /// Only these components.
    pub ids: Vec<Uuid>,
    /// Components of these topologies.
    pub topology_ids: Vec<Uuid>,
    /// Exact component types.
    pub types: Vec<String>,
    /// The component's own health is one of these.
    pub health: Vec<Health>,
    /// The new rolled-up health is one of these.
    pub rolled_up_health: Vec<Health>,
}

impl ComponentMatcher {
    /// True when `event` passes every test.
    pub fn matches(&self, event: &ComponentHealthEvent) -> bool {
        let c = &event.component;
        let health_in = |allowed: &[Health], stored: &str| {
            allowed.is_empty() || Health::from_str(stored).is_ok_and(|h| allowed.contains(&h))
        };
        (self.ids.is_empty() || self.ids.contains(&c.id))
            && (self.topology_ids.is_empty() || self.topology_ids.contains(&c.topology_id))
            && (self.types.is_empty() || self.types.contains(&c.component_type))
            && health_in(&self.health, &c.health)
            && health_in(&self.rolled_up_health, &event.transition.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_match_at_either_end() {
        assert!(glob_match("api-*", "api-7f9"));
        assert!(glob_match("*-prod", "eu-prod"));
        assert!(glob_match("*pay*", "x-payments-y"));
        assert!(glob_match("*", "anything"));
        assert!(!glob_match("api", "api-1"));
    }

    #[test]
    fn key_tests_treat_missing_keys_as_their_docs_say() {
        let tags = json!({"team": "payments", "tier": "1"});
        assert!(KeyTest::In("team".into(), vec!["pay*".into()]).holds(&tags));
        assert!(!KeyTest::In("owner".into(), vec!["*".into()]).holds(&tags));
        assert!(KeyTest::NotIn("owner".into(), vec!["x".into()]).holds(&tags));
        assert!(!KeyTest::NotIn("team".into(), vec!["payments".into()]).holds(&tags));
        assert!(KeyTest::Exists("tier".into()).holds(&tags));
        assert!(KeyTest::Absent("owner".into()).holds(&tags));
    }

    #[test]
    fn severities_combine_as_an_intersection() {
        assert!(severity_allowed(&[], None, "whatever"));
        assert!(severity_allowed(&[], Some(Severity::Medium), "high"));
        assert!(!severity_allowed(&[], Some(Severity::Medium), "low"));
        assert!(!severity_allowed(
            &[Severity::Critical],
            Some(Severity::Medium),
            "high"
        ));
    }
}
