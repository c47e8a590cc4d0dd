//! Catalog value types shared by the store, the scrapers and the API:
//! health, severities, run states and the shape of a scraped item.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::DomainError;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored, lower-case spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $(if s.eq_ignore_ascii_case($text) { return Ok($name::$variant); })+
                Err(DomainError::invalid(stringify!($name), format!("unknown value {s:?}")))
            }
        }
    };
}

string_enum! {
    /// Red/amber/green health, ordered so that "worst" is the maximum.
    Health {
        /// Nothing known.
        Unknown => "unknown",
        /// Green.
        Healthy => "healthy",
        /// Amber.
        Warning => "warning",
        /// Red.
        Unhealthy => "unhealthy",
    }
}

string_enum! {
    /// Change and insight severity, ordered from least to most severe.
    Severity {
        /// Informational.
        Info => "info",
        /// Low.
        Low => "low",
        /// Medium.
        Medium => "medium",
        /// High.
        High => "high",
        /// Critical.
        Critical => "critical",
    }
}

string_enum! {
    /// Why an item was soft-deleted.
    DeleteReason {
        /// Not seen by full scrapes for longer than `staleItemAge`.
        Stale => "STALE",
        /// The source reported the deletion.
        FromSource => "FROM_SOURCE",
        /// A change mapping deleted it.
        FromEvent => "FROM_EVENT",
        /// Deleted by an operator.
        Manual => "MANUAL",
    }
}

string_enum! {
    /// How a scrape run was triggered.
    RunMode {
        /// A full listing of the source.
        Full => "full",
        /// A watch or partial update.
        Incremental => "incremental",
        /// Results pushed through the API.
        Push => "push",
    }
}

string_enum! {
    /// Outcome of a scrape run.
    RunStatus {
        /// Still running.
        Running => "running",
        /// Finished without errors.
        Succeeded => "succeeded",
        /// Finished, but some sources failed.
        Partial => "partial",
        /// Nothing could be scraped.
        Failed => "failed",
        /// The scraper panicked.
        Panicked => "panicked",
    }
}

string_enum! {
    /// Where a scraper's definition comes from.
    ScraperSource {
        /// A ScrapeConfig file.
        File => "file",
        /// A Kubernetes custom resource.
        Crd => "crd",
        /// Created through the API.
        Api => "api",
    }
}

/// Health, status and readiness as computed by a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// Red/amber/green.
    pub health: Health,
    /// Short human-readable status, e.g. `Running`.
    pub status: Option<String>,
    /// Whether the object is reconciled/ready.
    pub ready: bool,
    /// A message explaining the health.
    pub message: Option<String>,
}

impl HealthResult {
    /// An unknown health with no status.
    pub fn unknown() -> Self {
        HealthResult {
            health: Health::Unknown,
            status: None,
            ready: false,
            message: None,
        }
    }
}

/// A reference to another item, resolved at ingest time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemRef {
    /// A known item id (e.g. a Kubernetes uid).
    Id(Uuid),
    /// An item of `item_type` carrying `external_id` (lower-cased).
    External {
        /// The config type, e.g. `Kubernetes::Namespace`.
        item_type: String,
        /// One of the item's external ids.
        external_id: String,
    },
}

/// An edge a scraper wants from or to an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapedRelationship {
    /// The other end of the edge.
    pub other: ItemRef,
    /// True when the other end is upstream (`other → this`).
    pub other_is_upstream: bool,
    /// The relation name, e.g. `NodePod`.
    pub relation: String,
}

/// One item as a scraper produced it, before it is stored.
#[derive(Debug, Clone)]
pub struct ScrapedItem {
    /// A source UUID (Kubernetes `uid`) when the source has one.
    pub source_id: Option<Uuid>,
    /// External ids; the first is the primary. Lower-cased on ingest.
    pub external_ids: Vec<String>,
    /// Config type, e.g. `Kubernetes::Pod`.
    pub item_type: String,
    /// Config class, e.g. `Pod`.
    pub class: String,
    /// Display name.
    pub name: String,
    /// Namespace, when the item has one.
    pub namespace: Option<String>,
    /// Low-cardinality tags.
    pub tags: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Display properties (a JSON array).
    pub properties: Value,
    /// The normalized config document, serialized and hashed.
    pub config: crate::normalize::CanonicalConfig,
    /// Health as computed by the rules.
    pub health: HealthResult,
    /// Where it came from: a file, a URL or `kubernetes/<cluster>`.
    pub source: Option<String>,
    /// The hard parent, with the rule name that chose it.
    pub parent: Option<(ItemRef, String)>,
    /// Soft edges.
    pub relationships: Vec<ScrapedRelationship>,
    /// Change types never recorded for this item (`ignore-changes`).
    pub ignored_change_types: Vec<String>,
    /// Findings about this item (analysis rules, full-mode `analysis`),
    /// written in the item's batch.
    pub insights: Vec<ScrapedInsight>,
}

/// The analysis types an insight may have (SPEC §7).
pub const ANALYSIS_TYPES: &[&str] = &[
    "availability",
    "compliance",
    "cost",
    "integration",
    "other",
    "performance",
    "recommendation",
    "reliability",
    "security",
    "technical_debt",
];

/// One observation of a finding about an item.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapedInsight {
    /// The rule or tool that found it.
    pub analyzer: String,
    /// One of [`ANALYSIS_TYPES`].
    pub analysis_type: String,
    /// How bad it is.
    pub severity: Severity,
    /// One line.
    pub summary: String,
    /// Longer text (may be empty).
    pub message: String,
    /// Structured details (an object, or null).
    pub details: Value,
    /// Tells apart several findings of one analyzer on one item; the id is
    /// UUIDv5(`config_id|analyzer|key`).
    pub key: String,
}

impl ScrapedInsight {
    /// Checks the fields a caller supplied: a known analysis type and a
    /// non-empty analyzer.
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.analyzer.trim().is_empty() {
            return Err(DomainError::invalid(
                "insight",
                "analyzer must not be empty",
            ));
        }
        if !ANALYSIS_TYPES.contains(&self.analysis_type.as_str()) {
            return Err(DomainError::invalid(
                "insight",
                format!(
                    "unknown analysis type {:?} (one of {})",
                    self.analysis_type,
                    ANALYSIS_TYPES.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// A finding about an item named by reference (pushes and full-mode
/// entries that name another item).
#[derive(Debug, Clone, PartialEq)]
pub struct InsightObservation {
    /// The item.
    pub target: ItemRef,
    /// The finding.
    pub insight: ScrapedInsight,
}

impl ScrapedItem {
    /// The primary external id (lower-cased), or the name when there is none.
    pub fn primary_external_id(&self) -> String {
        self.external_ids
            .first()
            .map(|s| s.to_lowercase())
            .unwrap_or_else(|| self.name.to_lowercase())
    }
}

/// Counts of item health, used for rollups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCounts {
    /// Healthy descendants.
    pub healthy: i64,
    /// Warning descendants.
    pub warning: i64,
    /// Unhealthy descendants.
    pub unhealthy: i64,
    /// Unknown descendants.
    pub unknown: i64,
}
