//! Deterministic ids: UUIDv5 for catalog identities, UUIDv7 for rows.

use uuid::Uuid;

/// The UUIDv5 namespace for Stratum identities.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b7e_4c1d_4f5e_9a3b_8d2e_7c6b_5a49);

/// The id of an item without a source UUID: UUIDv5(`scraper_id|type|primary external id`).
pub fn item_id(scraper_id: Uuid, item_type: &str, primary_external_id: &str) -> Uuid {
    let key = format!("{scraper_id}|{item_type}|{primary_external_id}");
    Uuid::new_v5(&NAMESPACE, key.as_bytes())
}

/// The id of a scraper, from its namespace and name.
pub fn scraper_id(namespace: &str, name: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("scraper|{namespace}|{name}").as_bytes())
}

/// The id of an insight: UUIDv5(`config_id|analyzer|key`), so a
/// re-observed finding updates its row.
pub fn insight_id(config_id: Uuid, analyzer: &str, key: &str) -> Uuid {
    Uuid::new_v5(
        &NAMESPACE,
        format!("{config_id}|{analyzer}|{key}").as_bytes(),
    )
}

/// A fresh time-ordered row id.
pub fn row_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_are_stable_and_distinct() {
        let s = scraper_id("default", "demo");
        assert_eq!(item_id(s, "A", "x"), item_id(s, "A", "x"));
        assert_ne!(item_id(s, "A", "x"), item_id(s, "B", "x"));
        assert_ne!(
            item_id(s, "A", "x"),
            item_id(scraper_id("default", "other"), "A", "x")
        );
    }
}
