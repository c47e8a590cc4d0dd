//! `schema.graphql` must be exactly what `stratum schema` prints.

#[test]
fn committed_schema_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema.graphql");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = stratum_api::graphql::sdl();
    assert!(
        committed == generated,
        "schema.graphql is stale: run `cargo run -p stratum-api -- schema > schema.graphql` and commit it"
    );
}

#[test]
fn binary_prints_the_same_schema() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("schema")
        .output()
        .expect("run stratum schema");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        stratum_api::graphql::sdl()
    );
}

/// `charts/stratum/crds/stratum.dev.yaml` must be exactly what `stratum
/// crds` prints from the Rust types.
#[test]
fn committed_crds_match_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/stratum/crds/stratum.dev.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = stratum_scrapers::crd::crds_yaml().expect("crds");
    assert!(
        committed == generated,
        "charts/stratum/crds/stratum.dev.yaml is stale: run `cargo run -p stratum-api -- crds > charts/stratum/crds/stratum.dev.yaml` and commit it"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("crds")
        .output()
        .expect("run stratum crds");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), generated);
}
