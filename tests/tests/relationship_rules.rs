//! `transform.relationship` rules (SPEC §4) through the real pipeline on
//! both backends: an `expr` selector across scrapers (`scope: all`) that
//! becomes the hard parent, a template selector within the scraper as a
//! soft edge, an empty value that skips its rule, misses counted as
//! unresolved, and bad rules rejected at load with their position.

use std::path::Path;

use sea_orm::{ConnectionTrait, Statement};

use stratum_scrapers::{ScraperError, load_str};
use stratum_tests::{Backend, TestDb};
use uuid::Uuid;

stratum_tests::on_both_backends!(rules_link_across_and_within_scrapers);

const BILLING: &str = r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {name: billing, namespace: test}
spec:
  file:
    - paths: [accounts.json]
      items: $.accounts[*]
      id: $.id
      type: Billing::Account
      name: $.name
"#;

const INVENTORY: &str = r#"apiVersion: stratum.dev/v1
kind: ScrapeConfig
metadata: {name: inventory, namespace: test}
spec:
  file:
    - paths: [inventory.json]
      items: $.things[*]
      id: $.id
      type: {expr: '"Inventory::" + config.kind'}
      name: $.name
  transform:
    relationship:
      - filter: type == "Inventory::Service"
        scope: all
        parent: true
        relation: AccountService
        expr: '[{"type": "Billing::Account", "externalId": config.account}]'
      - filter: type == "Inventory::Service"
        type: Inventory::Team
        name: {expr: config.team}
        relation: ServiceTeam
      - filter: type == "Inventory::Service"
        type: Inventory::Team
        name: {expr: '""'}
"#;

fn load(dir: &Path, name: &str, text: &str) -> stratum_scrapers::LoadedScrapeConfig {
    load_str(&dir.join(name), text)
        .expect("config loads")
        .remove(0)
}

async fn rules_link_across_and_within_scrapers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("accounts.json"),
        r#"{"accounts": [{"id": "acct-1", "name": "acme"}]}"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("inventory.json"),
        r#"{"things": [
            {"id": "svc-1", "kind": "Service", "name": "api", "account": "acct-1", "team": "payments"},
            {"id": "svc-2", "kind": "Service", "name": "worker", "account": "acct-404", "team": "payments"},
            {"id": "team-payments", "kind": "Team", "name": "payments"}
        ]}"#,
    )
    .expect("write");
    let billing = load(dir.path(), "billing.yaml", BILLING);
    let inventory = load(dir.path(), "inventory.yaml", INVENTORY);
    stratum_tests::scrape_succeeds(&db.store, &billing).await;
    let run = stratum_tests::scrape_succeeds(&db.store, &inventory).await;
    assert_eq!(
        run.summary.edges_unresolved, 1,
        "acct-404 matches nothing; the empty name skips its rule"
    );

    let id_of = |scraper: &str, t: &str, external: &str| {
        stratum_domain::ids::item_id(
            stratum_domain::ids::scraper_id("test", scraper),
            t,
            external,
        )
    };
    let account = id_of("billing", "Billing::Account", "acct-1");
    let api = id_of("inventory", "Inventory::Service", "svc-1");
    let worker = id_of("inventory", "Inventory::Service", "svc-2");
    let team = id_of("inventory", "Inventory::Team", "team-payments");
    let api_item = db.store.get_item(api).await.expect("get").expect("api");
    assert_eq!(
        api_item.parent_id,
        Some(account),
        "a single parent match is the hard parent"
    );
    assert_eq!(
        db.store
            .get_item(worker)
            .await
            .expect("get")
            .expect("worker")
            .parent_id,
        None
    );

    let rows = db
        .store
        .connection()
        .query_all_raw(Statement::from_string(
            db.store.backend(),
            "SELECT from_id, to_id, relation, hard FROM config_relationships WHERE deleted_at IS NULL",
        ))
        .await
        .expect("edges");
    let edges: Vec<(Uuid, Uuid, String, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "from_id").expect("from"),
                r.try_get("", "to_id").expect("to"),
                r.try_get("", "relation").expect("relation"),
                r.try_get("", "hard").expect("hard"),
            )
        })
        .collect();
    assert!(
        edges.contains(&(account, api, "AccountService".into(), true)),
        "{edges:?}"
    );
    assert!(
        edges.contains(&(api, team, "ServiceTeam".into(), false)),
        "{edges:?}"
    );
    assert!(
        edges.contains(&(worker, team, "ServiceTeam".into(), false)),
        "{edges:?}"
    );

    // Bad rules are rejected at load, with their line.
    for (bad, says) in [
        (
            INVENTORY.replace("scope: all", "scope: everywhere"),
            "is not self or all",
        ),
        (
            INVENTORY.replace("config.account}]'", "config.account}'"),
            "invalid CEL",
        ),
        (
            INVENTORY.replace(
                "        type: Inventory::Team\n        name: {expr: config.team}\n",
                "        labels: {app: x}\n",
            ),
            "a selector needs id, externalId, type or name",
        ),
    ] {
        let Err(ScraperError::Invalid(diags)) = load_str(&dir.path().join("inventory.yaml"), &bad)
        else {
            panic!("{says}: expected a rejection");
        };
        assert!(
            diags.iter().any(|d| d.message.contains(says) && d.line > 1),
            "{says}: {diags:?}"
        );
    }
}
