//! Introspection and field suggestions can be switched off.

use serde_json::Value;
use stratum_api::graphql::{SchemaOptions, build_schema_with};

async fn run(introspection: bool, query: &str) -> Value {
    let schema = build_schema_with(
        None,
        SchemaOptions {
            introspection,
            ..SchemaOptions::default()
        },
    );
    serde_json::to_value(schema.execute(query).await).expect("json")
}

#[tokio::test]
async fn introspection_and_suggestions_follow_the_switch() {
    let on = run(true, "{ __schema { queryType { name } } }").await;
    assert_eq!(
        on["data"]["__schema"]["queryType"]["name"], "QueryRoot",
        "{on}"
    );
    let off = run(false, "{ __schema { queryType { name } } }").await;
    assert_eq!(
        off["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{off}"
    );
    assert_eq!(
        off["errors"][0]["message"],
        "introspection is disabled on this server"
    );
    let fragment = run(
        false,
        "{ ...F } fragment F on QueryRoot { __type(name: \"ConfigItem\") { name } }",
    )
    .await;
    assert_eq!(
        fragment["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{fragment}"
    );
    let typename = run(false, "{ __typename }").await;
    assert_eq!(typename["data"]["__typename"], "QueryRoot", "{typename}");

    let typo = "{ configItemz { totalCount } }";
    let on = run(true, typo).await;
    assert!(
        on["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Did you mean"),
        "{on}"
    );
    let off = run(false, typo).await;
    let message = off["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        !message.is_empty() && !message.contains("Did you mean"),
        "{off}"
    );
}
