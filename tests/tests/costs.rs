//! Costs (SPEC §8) on real SQLite and PostgreSQL against hand-computed
//! figures: prorating across window edges, item totals and per-minute
//! cost, mixed currencies never summed, subtree and grouped rollups,
//! unattributed spend reported, idempotent and corrected re-imports, and
//! bad rows rejecting the whole set. The cost source through a real scrape
//! and its GraphQL fields are in `api/tests/costs.rs`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use stratum_domain::store::costs::{CostRow, CostWindow, Money};
use stratum_domain::store::{GroupKey, ItemFilter};
use stratum_domain::{ItemRef, ids};
use stratum_tests::{Backend, TestDb, item, keep_everything, scrape_items};

stratum_tests::on_both_backends!(hand_computed_totals_and_rollups);

const SCRAPER: &str = "costs";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0)
        .single()
        .expect("date")
}

fn row(ext: &str, service: &str, from_h: i64, to_h: i64, usd: f64, currency: &str) -> CostRow {
    let micros = (usd * 1_000_000.0).round() as i64;
    CostRow {
        external_id: ext.into(),
        service: Some(service.into()),
        period_start: t0() + Duration::hours(from_h),
        period_end: t0() + Duration::hours(to_h),
        billed: micros,
        effective: micros,
        currency: currency.into(),
    }
}

fn money(amount: i64, currency: &str) -> Money {
    Money {
        amount,
        currency: currency.into(),
    }
}

/// The rows of the hand count (hours relative to `t0`).
fn rows() -> Vec<CostRow> {
    vec![
        // A: 24 USD over [-36h, -12h): half inside the last day.
        row("i-1", "EC2", -36, -12, 24.0, "USD"),
        // B: 7 USD over [-10d, -3d): 4 of 7 days inside the last week.
        row("I-1", "EBS", -240, -72, 7.0, "USD"),
        // G: 10 USD over [-31d, -29d): half inside the 30 days.
        row("i-1", "S3", -744, -696, 10.0, "USD"),
        // F: entirely older than 30 days.
        row("i-1", "Old", -960, -840, 100.0, "USD"),
        // i-2 is billed in two currencies.
        row("i-2", "EC2", -48, -24, 5.0, "USD"),
        row("i-2", "VAT", -24, 0, 3.0, "EUR"),
        // Nobody's.
        row("i-404", "EC2", -24, 0, 2.0, "USD"),
    ]
}

async fn hand_computed_totals_and_rollups(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let mut child = item("Test::Box", "i-1", json!({}));
    child.parent = Some((
        ItemRef::External {
            item_type: "Test::Account".into(),
            external_id: "acct".into(),
        },
        "AccountBox".into(),
    ));
    let scraper = scrape_items(
        store,
        SCRAPER,
        vec![
            item("Test::Account", "acct", json!({})),
            child,
            item("Test::Box", "i-2", json!({})),
        ],
        keep_everything(),
    )
    .await;
    let i1 = ids::item_id(scraper, "Test::Box", "i-1");
    let i2 = ids::item_id(scraper, "Test::Box", "i-2");
    let acct = ids::item_id(scraper, "Test::Account", "acct");

    let first = store.import_costs(scraper, rows()).await.expect("import");
    assert_eq!(
        (first.written, first.matched, first.unattributed_rows),
        (7, 6, 1)
    );
    assert_eq!(first.unattributed, vec![money(2_000_000, "USD")]);
    store.recompute_costs(t0()).await.expect("recompute");

    // i-1: 1d = 12 (half of A); 7d = 24 + 4; 30d = 24 + 7 + 5.
    let one = store.get_item(i1).await.expect("get").expect("i-1");
    assert_eq!(
        (
            one.cost_total_1d,
            one.cost_total_7d,
            one.cost_total_30d,
            one.cost_per_minute,
            one.currency.as_deref()
        ),
        (
            Some(12_000_000),
            Some(28_000_000),
            Some(36_000_000),
            Some(12_000_000 / 1440),
            Some("USD")
        )
    );
    // i-2 has two currencies: no scalar totals, one entry per currency.
    let two = store.get_item(i2).await.expect("get").expect("i-2");
    assert_eq!((two.cost_total_30d, two.currency), (None, None));
    let costs = store.item_costs(&[i2], t0()).await.expect("costs");
    let mut by: Vec<(String, i64, i64)> = costs[&i2]
        .iter()
        .map(|t| (t.currency.clone(), t.total_1d, t.total_30d))
        .collect();
    by.sort();
    assert_eq!(
        by,
        vec![
            ("EUR".to_string(), 3_000_000, 3_000_000),
            ("USD".to_string(), 0, 5_000_000)
        ]
    );

    // Rollups: the account's subtree holds i-1; the report groups by type
    // and keeps currencies apart.
    assert_eq!(
        store
            .subtree_cost(acct, CostWindow::D30, t0())
            .await
            .expect("subtree"),
        vec![money(36_000_000, "USD")]
    );
    assert_eq!(
        store
            .subtree_cost(acct, CostWindow::D1, t0())
            .await
            .expect("subtree"),
        vec![money(12_000_000, "USD")]
    );
    let report = store
        .cost_report(
            &ItemFilter::default(),
            &[GroupKey::Type],
            CostWindow::D30,
            t0(),
        )
        .await
        .expect("report");
    assert_eq!(report.groups.len(), 1);
    assert_eq!(report.groups[0].items, 2);
    assert_eq!(
        report.groups[0].cost,
        vec![money(3_000_000, "EUR"), money(41_000_000, "USD")]
    );
    assert_eq!(report.unattributed, vec![money(2_000_000, "USD")]);
    assert!(report.mixed_currency);

    // A re-import changes nothing; a corrected amount updates its row.
    let again = store.import_costs(scraper, rows()).await.expect("import");
    assert_eq!((again.written, again.unchanged), (0, 7));
    let mut corrected = rows();
    corrected[0].effective = 48_000_000;
    let fixed = store
        .import_costs(scraper, corrected)
        .await
        .expect("import");
    assert_eq!((fixed.written, fixed.unchanged), (1, 6));
    store.recompute_costs(t0()).await.expect("recompute");
    let one = store.get_item(i1).await.expect("get").expect("i-1");
    assert_eq!(one.cost_total_1d, Some(24_000_000));

    // The orphan's item appears: the next recompute attributes it.
    scrape_items(
        store,
        SCRAPER,
        vec![item("Test::Box", "i-404", json!({}))],
        keep_everything(),
    )
    .await;
    store.recompute_costs(t0()).await.expect("recompute");
    let report = store
        .cost_report(
            &ItemFilter::default(),
            &[GroupKey::Type],
            CostWindow::D30,
            t0(),
        )
        .await
        .expect("report");
    assert_eq!(report.unattributed, vec![]);

    // Bad rows reject the whole set, naming the row.
    let mut bad = rows();
    bad[2].effective = -1;
    let err = store
        .import_costs(scraper, bad)
        .await
        .expect_err("negative");
    assert!(err.to_string().contains("row 3"), "{err}");
    let mut bad = rows();
    bad[4].period_end = bad[4].period_start;
    assert!(store.import_costs(scraper, bad).await.is_err());
}
