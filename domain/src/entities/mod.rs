//! SeaORM entities, one per table of the catalog (SPEC §3). The schema itself
//! lives in `stratum-migrations`; these types mirror it for queries.

pub mod component;
pub mod component_health_history;
pub mod component_relationship;
pub mod config_change;
pub mod config_component_relationship;
pub mod config_external_id;
pub mod config_item;
pub mod config_relationship;
pub mod insight;
pub mod scrape_run;
pub mod scraper;
