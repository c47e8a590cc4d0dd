//! The `stratum` command line (SPEC §2 "Subcommands"). Exit codes: 0 ok,
//! 1 failure, 2 usage or configuration error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stratum_domain::{RunStatus, Store};
use stratum_scrapers::config::LoadedScrapeConfig;
use stratum_scrapers::{RunOptions, ScraperError, load_path, run_scrape};

/// The default embedded database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://stratum.db";

/// Stratum: a catalog of everything your systems run, as one GraphQL graph.
#[derive(Debug, Parser)]
#[command(name = "stratum", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server and the scrapers.
    Serve(Box<ServeArgs>),
    /// Sign an API token with the HS256 secret and record it, or revoke one.
    Token(Box<TokenArgs>),
    /// Apply or inspect database migrations.
    Migrate {
        /// Database URL.
        #[arg(long, env = "STRATUM_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
        database_url: String,
        /// `up` (default), `down N` or `status`.
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Run scrape configs once and exit.
    Scrape {
        /// Run once (the only mode).
        #[arg(long, required = true)]
        once: bool,
        /// ScrapeConfig files.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Database URL.
        #[arg(long, env = "STRATUM_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
        database_url: String,
        /// Override the deletion safety valve.
        #[arg(long)]
        allow_mass_delete: bool,
    },
    /// Print the GraphQL SDL (the content of `schema.graphql`).
    Schema,
    /// Print the ScrapeConfig and Topology CRDs (the content of
    /// `charts/stratum/crds/stratum.dev.yaml`).
    Crds,
    /// Evaluate the built-in health rules on Kubernetes objects (one per
    /// YAML or JSON document, `kind: List` expanded); prints one JSON line
    /// `{"kind","name","object","health","status","ready","message"}` per
    /// object (`object` is `Kind/name`).
    Health {
        /// Files of objects.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also apply this ScrapeConfig's `transform.health` overrides.
        #[arg(long)]
        scrape_config: Option<PathBuf>,
    },
    /// Validate ScrapeConfig files and the configuration file; prints
    /// `file:line:col: level: msg`.
    CheckConfig {
        /// ScrapeConfig files or directories to check.
        #[arg(required_unless_present = "config")]
        paths: Vec<PathBuf>,
        /// A `serve` configuration file (its `scrapers.paths` are checked too).
        #[arg(long, env = "STRATUM_CONFIG")]
        config: Option<PathBuf>,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
}

/// `migrate` actions.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply pending migrations.
    Up,
    /// Roll back the last N migrations.
    Down {
        /// How many.
        n: u32,
    },
    /// List migrations and whether they are applied.
    Status,
}

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A configuration file (SPEC §14); `STRATUM_<SECTION>__<FIELD>`
    /// variables and flags override it.
    #[arg(long, env = "STRATUM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "STRATUM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Database URL (`sqlite://…` or `postgres://…`).
    #[arg(long, env = "STRATUM_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// ScrapeConfig files or directories to run on their schedules.
    #[arg(
        long = "scrape-config",
        env = "STRATUM_SCRAPE_CONFIG",
        value_delimiter = ','
    )]
    pub scrape_configs: Vec<PathBuf>,
    /// Load the demo catalog.
    #[arg(long, env = "STRATUM_DEMO")]
    pub demo: bool,
    /// Watch ScrapeConfig and Topology resources in the cluster (in-cluster
    /// or `KUBECONFIG`) and apply them live, writing their status.
    #[arg(long, env = "STRATUM_WATCH_CRDS")]
    pub watch_crds: bool,
    /// Where the demo's working copy lives.
    #[arg(long, env = "STRATUM_DEMO_WORK_DIR", default_value = ".stratum-demo")]
    pub demo_work_dir: PathBuf,
    /// Serve schema introspection (and field suggestions in errors).
    #[arg(long, env = "STRATUM_INTROSPECTION", default_value = "on")]
    pub introspection: Switch,
    /// Authentication.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Requests per second per token (per IP when anonymous); applies
    /// when authentication is on.
    #[arg(long, env = "STRATUM_RATE_PER_SECOND", default_value_t = 20)]
    pub rate_per_second: u32,
    /// Requests a caller may send in a burst.
    #[arg(long, env = "STRATUM_RATE_BURST", default_value_t = 100)]
    pub rate_burst: u32,
    /// Complexity points per minute per caller (`extensions.cost`).
    #[arg(long, env = "STRATUM_POINTS_PER_MINUTE", default_value_t = 100_000)]
    pub points_per_minute: u32,
    /// Open WebSocket connections per token (per IP when anonymous).
    #[arg(long, env = "STRATUM_MAX_CONNECTIONS_PER_TOKEN", default_value_t = 20)]
    pub max_connections_per_token: usize,
    /// An origin allowed to call the API from a browser
    /// (`https://portal.example.com`; repeatable, exact matches).
    #[arg(
        long = "cors-origin",
        env = "STRATUM_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Deepest query accepted.
    #[arg(long, env = "STRATUM_MAX_DEPTH", default_value_t = 10)]
    pub max_depth: usize,
    /// Largest query complexity accepted (a connection costs `first × child`).
    #[arg(long, env = "STRATUM_MAX_COMPLEXITY", default_value_t = 5000)]
    pub max_complexity: usize,
    /// Most aliases in one query.
    #[arg(long, env = "STRATUM_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    /// Most operations in one batch.
    #[arg(long, env = "STRATUM_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,
    /// Largest request body, bytes.
    #[arg(long, env = "STRATUM_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest a request may run (`15s`, `1m`).
    #[arg(long, env = "STRATUM_REQUEST_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub request_timeout: std::time::Duration,
    /// Most subscriptions (operations) on one WebSocket connection.
    #[arg(
        long,
        env = "STRATUM_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 50
    )]
    pub max_subscriptions_per_connection: usize,
    /// How long a shutdown (SIGTERM, Ctrl-C) keeps accepting connections
    /// with `/readyz` at 503, so load balancers stop sending first.
    #[arg(long, env = "STRATUM_SHUTDOWN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: std::time::Duration,
    /// How long a shutdown (SIGTERM, Ctrl-C) then waits for in-flight
    /// requests and scrapers before the process exits anyway.
    #[arg(long, env = "STRATUM_SHUTDOWN_GRACE", default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: std::time::Duration,
    /// How often replicas sharing a PostgreSQL database rebalance which
    /// of them runs each scraper (SPEC §2).
    #[arg(long, env = "STRATUM_OWNERSHIP_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ownership_interval: std::time::Duration,
}

/// Where bearer tokens are verified against (SPEC §12). With no key,
/// `serve` generates an HS256 key in the data directory: authentication
/// is always on.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// The HS256 secret and the claims `serve` checks and `token` sets.
    #[command(flatten)]
    pub token: TokenClaimArgs,
    /// An RS256 or ES256 public key as `KID=PEM_FILE` (repeatable).
    #[arg(long = "auth-public-key", env = "STRATUM_AUTH_PUBLIC_KEYS", value_delimiter = ',', value_parser = parse_public_key)]
    pub auth_public_keys: Vec<(String, PathBuf)>,
    /// A static JWKS file of RS256/ES256 keys.
    #[arg(long, env = "STRATUM_AUTH_JWKS_FILE")]
    pub auth_jwks_file: Option<PathBuf>,
    /// Extra claim values mapped to roles, as `VALUE=ROLE` (repeatable).
    #[arg(long = "auth-role-map", env = "STRATUM_AUTH_ROLE_MAP", value_delimiter = ',', value_parser = parse_role_mapping)]
    pub auth_role_map: Vec<(String, crate::auth::Role)>,
    /// Let requests without a token in, with `--anonymous-role`; only on a
    /// loopback address.
    #[arg(long, env = "STRATUM_ANONYMOUS")]
    pub anonymous: bool,
    /// The role of anonymous requests.
    #[arg(
        long,
        env = "STRATUM_ANONYMOUS_ROLE",
        value_enum,
        default_value = "viewer"
    )]
    pub anonymous_role: crate::auth::Role,
    /// The scope of anonymous requests (`{"namespaces": ["demo-*"]}`).
    #[arg(long, env = "STRATUM_ANONYMOUS_SCOPE", value_parser = parse_scope)]
    pub anonymous_scope: Option<stratum_domain::scope::Scope>,
}

/// Parses a `--scope`-style JSON scope (SPEC §12).
pub fn parse_scope(text: &str) -> Result<stratum_domain::scope::Scope, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    stratum_domain::scope::Scope::parse(&value).map_err(|e| e.to_string())
}

fn parse_public_key(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((kid, path)) if !kid.is_empty() && !path.is_empty() => {
            Ok((kid.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("'{text}' is not KID=PEM_FILE")),
    }
}

fn parse_role_mapping(text: &str) -> Result<(String, crate::auth::Role), String> {
    use clap::ValueEnum;
    let (value, role) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not VALUE=ROLE"))?;
    let role = crate::auth::Role::from_str(role, true)
        .map_err(|_| format!("'{role}' is not a role (viewer, editor, admin)"))?;
    Ok((value.to_string(), role))
}

impl AuthArgs {
    /// The settings these flags describe.
    pub fn settings(&self) -> crate::auth::AuthSettings {
        crate::auth::AuthSettings {
            hs256_secret_file: self.token.auth_hs256_secret_file.clone(),
            public_keys: self.auth_public_keys.clone(),
            jwks_file: self.auth_jwks_file.clone(),
            issuer: self.token.auth_issuer.clone(),
            audience: self.token.auth_audience.clone(),
            role_claim: self.token.auth_role_claim.clone(),
            role_map: self.auth_role_map.iter().cloned().collect(),
            anonymous: self.anonymous.then_some(self.anonymous_role),
            anonymous_scope: self.anonymous_scope.clone(),
        }
    }
}

/// Flags of `token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Who the token is for (its `sub`).
    #[arg(long, required_unless_present = "revoke")]
    pub subject: Option<String>,
    /// Its role.
    #[arg(long, value_enum, default_value = "viewer")]
    pub role: crate::auth::Role,
    /// How long it is valid (`24h`, `90d`; at most 365 days).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// The items it may see (`{"namespaces": ["payments"]}`; SPEC §12).
    #[arg(long, value_parser = parse_scope)]
    pub scope: Option<stratum_domain::scope::Scope>,
    /// Revoke the token with this id instead (replicas notice within 30 s).
    #[arg(long, conflicts_with_all = ["subject", "scope"])]
    pub revoke: Option<String>,
    /// Database URL (where tokens are recorded).
    #[arg(long, env = "STRATUM_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// The HS256 secret and the claims to set.
    #[command(flatten)]
    pub claims: TokenClaimArgs,
}

/// The HS256 secret and the claims `serve` verifies and `token` signs, one
/// set of flags for both so they cannot drift apart.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenClaimArgs {
    /// File holding the HS256 secret (at least 32 bytes). Without any key,
    /// `serve` generates `<data dir>/stratum.key` and `token` signs with it.
    #[arg(long, env = "STRATUM_AUTH_HS256_SECRET_FILE")]
    pub auth_hs256_secret_file: Option<PathBuf>,
    /// Where Stratum keeps the signing key it generates.
    #[arg(long, env = "STRATUM_DATA_DIR", default_value = ".")]
    pub data_dir: PathBuf,
    /// The `iss` claim (required by `serve` when set).
    #[arg(long, env = "STRATUM_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,
    /// The `aud` claim (required by `serve` when set).
    #[arg(long, env = "STRATUM_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,
    /// The claim holding the caller's role.
    #[arg(long, env = "STRATUM_AUTH_ROLE_CLAIM", default_value = "stratum/role")]
    pub auth_role_claim: String,
}

/// Runs `stratum token`: prints the token on stdout and its id on stderr.
pub async fn token(args: TokenArgs) -> anyhow::Result<()> {
    let store = open_store(&args.database_url).await?;
    if let Some(jti) = &args.revoke {
        store
            .revoke_token(jti)
            .await
            .with_context(|| format!("revoking token {jti}"))?;
        eprintln!("revoked {jti}; servers stop accepting it within 30 s");
        return Ok(());
    }
    let generated = args.claims.data_dir.join(crate::auth::SIGNING_KEY_FILE);
    let secret_file = match &args.claims.auth_hs256_secret_file {
        Some(file) => file.clone(),
        None if generated.exists() => generated,
        None => anyhow::bail!(
            "no signing key: give --auth-hs256-secret-file (or STRATUM_AUTH_HS256_SECRET_FILE), \
             or --data-dir where `stratum serve` generated {}",
            crate::auth::SIGNING_KEY_FILE
        ),
    };
    let secret = crate::auth::read_secret(&secret_file)?;
    let subject = args.subject.clone().unwrap_or_default();
    let (token, jti, expires_at) = crate::auth::sign_hs256(
        &secret,
        &crate::auth::TokenSpec {
            subject: subject.clone(),
            role: args.role,
            ttl: args.ttl,
            scope: args.scope.clone(),
        },
        &crate::auth::ClaimNames {
            role_claim: &args.claims.auth_role_claim,
            issuer: args.claims.auth_issuer.as_deref(),
            audience: args.claims.auth_audience.as_deref(),
        },
    )?;
    store
        .record_token(&stratum_domain::store::TokenRecord {
            jti: jti.clone(),
            subject,
            role: args.role.as_str().into(),
            expires_at,
        })
        .await
        .context("recording the token")?;
    println!("{token}");
    eprintln!(
        "token {jti} ({}) expires {}",
        args.role.as_str(),
        expires_at.to_rfc3339()
    );
    Ok(())
}

/// An on/off switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl ServeArgs {
    /// The schema options these flags ask for.
    pub fn schema_options(&self) -> crate::graphql::SchemaOptions {
        let defaults = crate::graphql::Limits::default();
        crate::graphql::SchemaOptions {
            limits: crate::graphql::Limits {
                depth: self.max_depth,
                complexity: self.max_complexity,
                aliases: self.max_aliases,
                batch: self.max_batch,
                body_bytes: self.max_body_bytes,
                timeout: self.request_timeout,
                subscriptions_per_connection: self.max_subscriptions_per_connection,
                ..defaults
            },
            introspection: self.introspection == Switch::On,
        }
    }
}

/// Connects and migrates.
pub async fn open_store(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Loads configs from files or directories (directories: `*.yaml`, `*.yml`).
pub fn load_configs(paths: &[PathBuf]) -> Result<Vec<LoadedScrapeConfig>, ScraperError> {
    let mut configs = Vec::new();
    for f in stratum_scrapers::config::config_files(paths)? {
        configs.extend(load_path(&f)?);
    }
    Ok(configs)
}

/// Best-effort `metadata` of a config file that failed to load.
fn identity_of(path: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: serde_json::Value = serde_yaml_ng_value(&text)?;
    let name = doc.pointer("/metadata/name")?.as_str()?.to_string();
    let namespace = doc
        .pointer("/metadata/namespace")
        .and_then(|v| v.as_str())
        .unwrap_or("default")
        .to_string();
    Some((namespace, name))
}

fn serde_yaml_ng_value(text: &str) -> Option<serde_json::Value> {
    stratum_scrapers::file::parse_file(Path::new("config.yaml"), text, Some("yaml"))
        .ok()?
        .into_iter()
        .next()
}

/// `stratum scrape --once`.
pub async fn scrape_once(
    configs: &[PathBuf],
    url: &str,
    allow_mass_delete: bool,
) -> anyhow::Result<ExitCode> {
    let store = open_store(url).await?;
    let mut code = ExitCode::SUCCESS;
    for path in configs {
        let loaded = match load_path(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                if let Some((namespace, name)) = identity_of(path) {
                    stratum_scrapers::pipeline::record_rejected(
                        &store,
                        &namespace,
                        &name,
                        vec![e.to_string()],
                    )
                    .await
                    .context("recording the failed run")?;
                }
                code = ExitCode::from(2);
                continue;
            }
        };
        for config in loaded {
            for w in &config.warnings {
                eprintln!("{w}");
            }
            let report = run_scrape(&store, &config, &RunOptions { allow_mass_delete })
                .await
                .with_context(|| format!("scraping {}", config.metadata.name))?;
            let s = &report.summary;
            println!(
                "{}/{}: {} — {} scraped, {} created, {} updated, {} unchanged, {} deleted, {} changes",
                config.metadata.namespace,
                config.metadata.name,
                report.status,
                s.scraped,
                s.created,
                s.updated,
                s.unchanged,
                s.deleted,
                s.changes
            );
            let t = &report.timings;
            println!(
                "  {:.2}s: read and extract {:.2}s, write {:.2}s, settle edges and deletions {:.2}s",
                (t.extract + t.ingest + t.settle).as_secs_f64(),
                t.extract.as_secs_f64(),
                t.ingest.as_secs_f64(),
                t.settle.as_secs_f64()
            );
            for e in &s.errors {
                eprintln!("error: {e}");
            }
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            if report.status != RunStatus::Succeeded && code == ExitCode::SUCCESS {
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

/// `stratum check-config`.
pub fn check_config(paths: &[PathBuf], config: Option<&Path>, strict: bool) -> ExitCode {
    let mut errors = 0;
    let mut warnings = 0;
    let mut paths = paths.to_vec();
    if let Some(config) = config {
        match crate::config::load(config) {
            Ok(file) => paths.extend(
                file.pointer("/scrapers/paths")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(serde_json::Value::as_str)
                    .map(PathBuf::from),
            ),
            Err(e) => {
                println!("error: {e}");
                errors += 1;
            }
        }
    }
    let files = match stratum_scrapers::config::config_files(&paths) {
        Ok(files) => files,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for path in &files {
        let path = path.as_path();
        match load_path(path) {
            Ok(configs) => {
                for c in configs {
                    for w in &c.warnings {
                        println!("{w}");
                        warnings += 1;
                    }
                }
            }
            Err(ScraperError::Invalid(diags)) => {
                for d in diags {
                    println!("{d}");
                    errors += 1;
                }
            }
            Err(e) => {
                println!("{}:1:1: error: {e}", path.display());
                errors += 1;
            }
        }
        // Topologies share the files; I/O errors were reported above.
        if let Err(ScraperError::Invalid(diags)) = stratum_scrapers::topology::load_path(path) {
            for d in diags {
                println!("{d}");
                errors += 1;
            }
        }
    }
    if errors > 0 || (strict && warnings > 0) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// The objects of a YAML or JSON text: one per document, the items of a
/// `kind: List` in its place. A document that does not parse is an error
/// with its line and column; parsing stops there.
pub fn objects_of(text: &str) -> Result<Vec<serde_json::Value>, String> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document).map_err(|e| match e.location() {
            Some(at) => format!("{}:{}: {e}", at.line(), at.column()),
            None => format!("1:1: {e}"),
        })?;
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::Object(ref o)
                if o.get("kind").and_then(|k| k.as_str()) == Some("List") =>
            {
                out.extend(
                    o.get("items")
                        .and_then(|i| i.as_array())
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// The health verdict of one object as `stratum health` prints it, after
/// `rules` (a ScrapeConfig's overrides), or why it has none (not an
/// object, or no `kind`). A failing override keeps the built-in verdict
/// and is reported as `"overrideError"`.
pub fn health_of(
    object: &serde_json::Value,
    rules: &[stratum_scrapers::config::HealthRule],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<serde_json::Value, String> {
    let kind = object
        .get("kind")
        .and_then(|k| k.as_str())
        .filter(|k| !k.is_empty())
        .ok_or("the object has no kind")?;
    let text = |path: &str| object.pointer(path).and_then(|v| v.as_str());
    let name = match (text("/metadata/namespace"), text("/metadata/name")) {
        (Some(ns), Some(name)) => format!("{kind}/{ns}/{name}"),
        (None, Some(name)) => format!("{kind}/{name}"),
        _ => kind.to_string(),
    };
    let item_type = format!("Kubernetes::{kind}");
    let builtin = stratum_domain::health::evaluate(&item_type, object, now);
    let labels: std::collections::BTreeMap<String, String> = object
        .pointer("/metadata/labels")
        .and_then(|l| l.as_object())
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let meta_name = text("/metadata/name").unwrap_or_default();
    let (verdict, override_error) = stratum_scrapers::apply_health_rules(
        rules,
        &stratum_scrapers::HealthSubject {
            id: text("/metadata/uid").unwrap_or(meta_name),
            item_type: &item_type,
            class: kind,
            name: meta_name,
            namespace: text("/metadata/namespace"),
            tags: &std::collections::BTreeMap::new(),
            labels: &labels,
            config: object,
        },
        builtin,
    );
    let mut line = serde_json::json!({
        "kind": kind,
        "name": meta_name,
        "object": name,
        "health": verdict.health.as_str(),
        "status": verdict.status,
        "ready": verdict.ready,
        "message": verdict.message,
    });
    if let Some(e) = override_error {
        line["overrideError"] = serde_json::Value::String(e);
    }
    Ok(line)
}

/// `stratum health FILE…`: prints a verdict per object and each problem as
/// `file[:line:col]: error: …` on stderr; exit 1 when any file or object
/// could not be evaluated (the rest are still printed).
pub fn health(files: &[PathBuf], scrape_config: Option<&Path>) -> ExitCode {
    let now = chrono::Utc::now();
    let mut failed = false;
    let rules = match scrape_config.map(load_path) {
        None => Vec::new(),
        Some(Ok(configs)) => configs
            .into_iter()
            .next()
            .map(|c| c.health_rules)
            .unwrap_or_default(),
        Some(Err(ScraperError::Invalid(diags))) => {
            for d in diags {
                eprintln!("{d}");
            }
            return ExitCode::from(2);
        }
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for file in files {
        let objects = std::fs::read_to_string(file)
            .map_err(|e| format!("1:1: {e}"))
            .and_then(|text| objects_of(&text));
        match objects {
            Ok(objects) => {
                for (i, object) in objects.iter().enumerate() {
                    match health_of(object, &rules, now) {
                        Ok(line) => println!("{line}"),
                        Err(e) => {
                            eprintln!("{}: error: object {}: {e}", file.display(), i + 1);
                            failed = true;
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("{}:{e}", file.display());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn health_reads_documents_lists_and_json() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: pay}\nstatus: {phase: Succeeded}\n---\n\
                    kind: List\nitems:\n- {kind: Namespace, metadata: {name: pay}, status: {phase: Active}}\n- {kind: Node, metadata: {name: n1}, status: {conditions: [{type: Ready, status: 'False'}]}}\n";
        let objects = objects_of(yaml).expect("parses");
        let now = chrono::Utc::now();
        let verdicts: Vec<serde_json::Value> = objects
            .iter()
            .map(|o| health_of(o, &[], now).expect("verdict"))
            .collect();
        assert_eq!(verdicts.len(), 3);
        assert_eq!(verdicts[0]["object"], "Pod/pay/api");
        assert_eq!(verdicts[0]["health"], "healthy");
        assert_eq!(verdicts[0]["status"], "Completed");
        assert_eq!(verdicts[1]["status"], "Active");
        assert_eq!(verdicts[2]["health"], "unhealthy");
        let json = objects_of(r#"{"kind": "PersistentVolumeClaim", "status": {"phase": "Lost"}}"#)
            .expect("json");
        assert_eq!(
            health_of(&json[0], &[], now).expect("pvc")["health"],
            "unhealthy"
        );
        let err = objects_of("kind: Pod\nmetadata: [unclosed\n").expect_err("syntax");
        assert!(err.starts_with("2:") || err.starts_with("3:"), "{err}");
        assert!(health_of(&serde_json::json!({"metadata": {}}), &[], now).is_err());
        assert!(health_of(&serde_json::json!([1, 2]), &[], now).is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
