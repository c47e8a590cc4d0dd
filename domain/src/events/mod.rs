//! The event bus of SPEC §13: what a committed write announces, how it
//! reaches subscribers in this process and on other replicas, and how a
//! subscriber resumes from a cursor.
//!
//! Writers record the sequence numbers they allocate in their
//! [`WriteTxn`](crate::store::WriteTxn). Only after the commit are those
//! numbers handed to the bus, which loads the committed rows once and
//! broadcasts them; a rolled-back transaction announces nothing. On
//! PostgreSQL the same transaction also `pg_notify`s the numbers, so other
//! replicas load and republish them (see [`listener`]).

pub(crate) mod bus;
mod cursor;
mod filter;
pub(crate) mod listener;
pub(crate) mod subscriber;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::entities::{component, component_health_history, config_change, config_item, insight};

pub use bus::EventBus;
pub use cursor::EventCursor;
pub use filter::{ChangeMatcher, ComponentMatcher, InsightMatcher, ItemMatcher, KeyTest};
pub use subscriber::{Delivery, EventPredicate, Subscriber};

/// Events each in-process channel holds before its slowest receiver lags.
pub const CHANNEL_CAPACITY: usize = 4_096;
/// Undelivered events one subscriber may have before it is cut off with a
/// lagged notice.
pub const SUBSCRIBER_BUFFER: usize = 256;
/// Most events a `since` cursor may be behind.
pub const REPLAY_LIMIT: usize = 10_000;
/// Oldest cursor a subscriber may resume from.
pub const CURSOR_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// The PostgreSQL notification channel.
pub const NOTIFY_CHANNEL: &str = "stratum_events";

/// The stored tables events come from; each row carries a `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventStream {
    /// `config_changes`: diffs, events and health transitions.
    #[serde(rename = "c")]
    Changes,
    /// `insights`: opened, resolved, silenced.
    #[serde(rename = "i")]
    Insights,
    /// `component_health_history`.
    #[serde(rename = "h")]
    ComponentHealth,
}

/// One committed row, by stream and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventRef {
    /// The table.
    pub stream: EventStream,
    /// The row's `seq`.
    pub seq: i64,
}

/// Anything delivered on a stream: ordered and resumable by `seq`.
pub trait Sequenced: Send + Sync + 'static {
    /// The row's sequence number.
    fn seq(&self) -> i64;
    /// When it happened.
    fn at(&self) -> DateTime<Utc>;
    /// The cursor a client resumes after this event from.
    fn cursor(&self) -> EventCursor {
        EventCursor::new(self.seq(), self.at())
    }
}

/// A stored change with its item as it is after the write.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    /// The change row.
    pub change: config_change::Model,
    /// Its config item.
    pub item: Arc<config_item::Model>,
}

impl ChangeEvent {
    /// True for health transitions (SPEC §5), the `healthChanged` stream.
    pub fn is_health_transition(&self) -> bool {
        self.change.source == "health"
    }

    /// The `previous` or `current` side of a health transition's details.
    pub fn transition_side(&self, side: &str) -> Option<&serde_json::Value> {
        self.change.details.as_ref()?.get(side)
    }
}

impl Sequenced for ChangeEvent {
    fn seq(&self) -> i64 {
        self.change.seq
    }
    fn at(&self) -> DateTime<Utc> {
        self.change.created_at
    }
}

/// An insight in its new state, with its item.
#[derive(Debug, Clone)]
pub struct InsightEvent {
    /// The insight row.
    pub insight: insight::Model,
    /// Its config item.
    pub item: Arc<config_item::Model>,
}

impl Sequenced for InsightEvent {
    fn seq(&self) -> i64 {
        self.insight.seq
    }
    fn at(&self) -> DateTime<Utc> {
        self.insight
            .status_changed_at
            .unwrap_or(self.insight.last_observed)
            .max(self.insight.last_observed)
    }
}

/// A component's rolled-up health transition, with the component after it.
#[derive(Debug, Clone)]
pub struct ComponentHealthEvent {
    /// The history row.
    pub transition: component_health_history::Model,
    /// The component.
    pub component: Arc<component::Model>,
}

impl Sequenced for ComponentHealthEvent {
    fn seq(&self) -> i64 {
        self.transition.seq
    }
    fn at(&self) -> DateTime<Utc> {
        self.transition.at
    }
}
