//! The configuration file of `serve` (SPEC §14): `--config stratum.yaml`
//! (or `STRATUM_CONFIG`), overridden by `STRATUM_<SECTION>__<FIELD>`
//! environment variables (and the flat `STRATUM_*` variable of each flag),
//! overridden by flags.
//!
//! The file is checked against [`FileConfig`] first: an unknown field or a
//! bad value is an error naming its path (`limits.maxDepth: invalid type`).
//! Each setting then becomes the flag it stands for ([`SETTINGS`]), added
//! to the command line only when neither the flag nor one of its
//! environment variables is given, so clap parses one command line with
//! the usual precedence. Secrets stay in files the settings point at
//! (`auth.hs256SecretFile`); the file itself is never printed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// A duration as humantime text (`25s`, `10m`), checked when read.
#[derive(Debug, Clone)]
pub struct Duration(pub std::time::Duration);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Duration)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration ({e})")))
    }
}

/// A scope, validated as `--scope` is.
#[derive(Debug, Clone)]
pub struct ScopeSetting(pub stratum_domain::scope::Scope);

impl<'de> Deserialize<'de> for ScopeSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        stratum_domain::scope::Scope::parse(&value)
            .map(ScopeSetting)
            .map_err(serde::de::Error::custom)
    }
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// `server`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Server {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// How long `/readyz` is 503 before connections are refused.
    pub shutdown_delay: Option<Duration>,
    /// Shutdown grace period.
    pub shutdown_grace: Option<Duration>,
    /// Where the generated signing key lives.
    pub data_dir: Option<PathBuf>,
    /// Serve introspection.
    pub introspection: Option<OnOff>,
    /// Load the demo catalog.
    pub demo: Option<bool>,
}

/// `database`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Database {
    /// `sqlite://…` or `postgres://…`.
    pub url: Option<String>,
}

/// `auth.anonymous`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Anonymous {
    /// Let requests without a token in (loopback only).
    pub enabled: Option<bool>,
    /// Their role.
    pub role: Option<crate::auth::Role>,
    /// Their scope.
    pub scope: Option<ScopeSetting>,
}

/// `auth`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Auth {
    /// HS256 secret file.
    pub hs256_secret_file: Option<PathBuf>,
    /// `kid → PEM file` of RS256/ES256 public keys.
    pub public_keys: Option<BTreeMap<String, PathBuf>>,
    /// A static JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// The claim holding the role.
    pub role_claim: Option<String>,
    /// Claim values to roles.
    pub role_map: Option<BTreeMap<String, crate::auth::Role>>,
    /// Anonymous access.
    pub anonymous: Option<Anonymous>,
}

/// `limits`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Deepest query.
    pub max_depth: Option<usize>,
    /// Largest complexity.
    pub max_complexity: Option<usize>,
    /// Most aliases.
    pub max_aliases: Option<usize>,
    /// Most operations per batch.
    pub max_batch: Option<usize>,
    /// Largest body, bytes.
    pub max_body_bytes: Option<usize>,
    /// Longest request.
    pub request_timeout: Option<Duration>,
    /// Operations per WebSocket connection.
    pub max_subscriptions_per_connection: Option<usize>,
    /// WebSocket connections per token.
    pub max_connections_per_token: Option<usize>,
    /// Requests per second per caller.
    pub rate_per_second: Option<u32>,
    /// Burst per caller.
    pub rate_burst: Option<u32>,
    /// Complexity points per minute per caller.
    pub points_per_minute: Option<u32>,
}

/// `scrapers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scrapers {
    /// ScrapeConfig files or directories.
    pub paths: Option<Vec<PathBuf>>,
    /// Ownership rebalancing interval.
    pub ownership_interval: Option<Duration>,
    /// ScrapeConfig and Topology resources.
    pub crds: Option<Crds>,
}

/// `scrapers.crds`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Crds {
    /// Watch and apply them live.
    pub enabled: Option<bool>,
}

/// `cors`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cors {
    /// Exact origins allowed to call from a browser.
    pub allowed_origins: Option<Vec<String>>,
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    /// `server`.
    pub server: Option<Server>,
    /// `database`.
    pub database: Option<Database>,
    /// `auth`.
    pub auth: Option<Auth>,
    /// `limits`.
    pub limits: Option<Limits>,
    /// `scrapers`.
    pub scrapers: Option<Scrapers>,
    /// `cors`.
    pub cors: Option<Cors>,
}

/// How a setting's value becomes flag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One value.
    Scalar,
    /// A boolean switch: the flag alone when true.
    Switch,
    /// A list: the flag once per value.
    List,
    /// A map: `KEY=VALUE` once per entry.
    Map,
    /// JSON text.
    Json,
}

/// One setting: its path in the file, its flag and its flat variable.
struct Setting {
    path: &'static str,
    flag: &'static str,
    env: &'static str,
    shape: Shape,
}

const fn setting(
    path: &'static str,
    flag: &'static str,
    env: &'static str,
    shape: Shape,
) -> Setting {
    Setting {
        path,
        flag,
        env,
        shape,
    }
}

/// Every setting of the file, in file order.
const SETTINGS: &[Setting] = &[
    setting("server.listen", "--listen", "STRATUM_LISTEN", Shape::Scalar),
    setting(
        "server.shutdownGrace",
        "--shutdown-grace",
        "STRATUM_SHUTDOWN_GRACE",
        Shape::Scalar,
    ),
    setting(
        "server.dataDir",
        "--data-dir",
        "STRATUM_DATA_DIR",
        Shape::Scalar,
    ),
    setting(
        "server.introspection",
        "--introspection",
        "STRATUM_INTROSPECTION",
        Shape::Scalar,
    ),
    setting("server.demo", "--demo", "STRATUM_DEMO", Shape::Switch),
    setting(
        "database.url",
        "--database-url",
        "STRATUM_DATABASE_URL",
        Shape::Scalar,
    ),
    setting(
        "auth.hs256SecretFile",
        "--auth-hs256-secret-file",
        "STRATUM_AUTH_HS256_SECRET_FILE",
        Shape::Scalar,
    ),
    setting(
        "auth.publicKeys",
        "--auth-public-key",
        "STRATUM_AUTH_PUBLIC_KEYS",
        Shape::Map,
    ),
    setting(
        "auth.jwksFile",
        "--auth-jwks-file",
        "STRATUM_AUTH_JWKS_FILE",
        Shape::Scalar,
    ),
    setting(
        "auth.issuer",
        "--auth-issuer",
        "STRATUM_AUTH_ISSUER",
        Shape::Scalar,
    ),
    setting(
        "auth.audience",
        "--auth-audience",
        "STRATUM_AUTH_AUDIENCE",
        Shape::Scalar,
    ),
    setting(
        "auth.roleClaim",
        "--auth-role-claim",
        "STRATUM_AUTH_ROLE_CLAIM",
        Shape::Scalar,
    ),
    setting(
        "auth.roleMap",
        "--auth-role-map",
        "STRATUM_AUTH_ROLE_MAP",
        Shape::Map,
    ),
    setting(
        "auth.anonymous.enabled",
        "--anonymous",
        "STRATUM_ANONYMOUS",
        Shape::Switch,
    ),
    setting(
        "auth.anonymous.role",
        "--anonymous-role",
        "STRATUM_ANONYMOUS_ROLE",
        Shape::Scalar,
    ),
    setting(
        "auth.anonymous.scope",
        "--anonymous-scope",
        "STRATUM_ANONYMOUS_SCOPE",
        Shape::Json,
    ),
    setting(
        "limits.maxDepth",
        "--max-depth",
        "STRATUM_MAX_DEPTH",
        Shape::Scalar,
    ),
    setting(
        "limits.maxComplexity",
        "--max-complexity",
        "STRATUM_MAX_COMPLEXITY",
        Shape::Scalar,
    ),
    setting(
        "limits.maxAliases",
        "--max-aliases",
        "STRATUM_MAX_ALIASES",
        Shape::Scalar,
    ),
    setting(
        "limits.maxBatch",
        "--max-batch",
        "STRATUM_MAX_BATCH",
        Shape::Scalar,
    ),
    setting(
        "limits.maxBodyBytes",
        "--max-body-bytes",
        "STRATUM_MAX_BODY_BYTES",
        Shape::Scalar,
    ),
    setting(
        "limits.requestTimeout",
        "--request-timeout",
        "STRATUM_REQUEST_TIMEOUT",
        Shape::Scalar,
    ),
    setting(
        "limits.maxSubscriptionsPerConnection",
        "--max-subscriptions-per-connection",
        "STRATUM_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        Shape::Scalar,
    ),
    setting(
        "limits.maxConnectionsPerToken",
        "--max-connections-per-token",
        "STRATUM_MAX_CONNECTIONS_PER_TOKEN",
        Shape::Scalar,
    ),
    setting(
        "limits.ratePerSecond",
        "--rate-per-second",
        "STRATUM_RATE_PER_SECOND",
        Shape::Scalar,
    ),
    setting(
        "limits.rateBurst",
        "--rate-burst",
        "STRATUM_RATE_BURST",
        Shape::Scalar,
    ),
    setting(
        "limits.pointsPerMinute",
        "--points-per-minute",
        "STRATUM_POINTS_PER_MINUTE",
        Shape::Scalar,
    ),
    setting(
        "scrapers.paths",
        "--scrape-config",
        "STRATUM_SCRAPE_CONFIG",
        Shape::List,
    ),
    setting(
        "scrapers.ownershipInterval",
        "--ownership-interval",
        "STRATUM_OWNERSHIP_INTERVAL",
        Shape::Scalar,
    ),
    setting(
        "cors.allowedOrigins",
        "--cors-origin",
        "STRATUM_CORS_ORIGINS",
        Shape::List,
    ),
];

/// `STRATUM_<SECTION>__<FIELD>` of a path: `auth.anonymous.role` →
/// `STRATUM_AUTH__ANONYMOUS__ROLE`, `server.shutdownGrace` →
/// `STRATUM_SERVER__SHUTDOWN_GRACE`.
fn sectioned_env(path: &str) -> String {
    let mut out = String::from("STRATUM_");
    for (i, part) in path.split('.').enumerate() {
        if i > 0 {
            out.push_str("__");
        }
        for (j, c) in part.chars().enumerate() {
            if c.is_ascii_uppercase() && j > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
    }
    out
}

/// Reads and checks a configuration file; the error names the file, the
/// path of the bad field and what is wrong with it.
pub fn load(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading the config file {}: {e}", path.display()))?;
    let value: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not YAML: {e}", path.display()))?;
    let value = if value.is_null() {
        Value::Object(Default::default())
    } else {
        value
    };
    let _: FileConfig = serde_path_to_error::deserialize(&value).map_err(|e| {
        let at = e.path().to_string();
        anyhow::anyhow!(
            "{}: {}: {}",
            path.display(),
            if at == "." {
                "(top level)".to_string()
            } else {
                at
            },
            e.inner()
        )
    })?;
    Ok(value)
}

/// The file named by `--config FILE`, `--config=FILE` or `STRATUM_CONFIG`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("STRATUM_CONFIG").map(PathBuf::from)
}

fn given_on_command_line(args: &[OsString], flag: &str) -> bool {
    args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    })
}

/// Flag values of a setting's value in the file.
fn values_of(value: &Value, shape: Shape) -> Option<Vec<String>> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (shape, value) {
        (_, Value::Null) => None,
        (Shape::Switch, Value::Bool(on)) => on.then(Vec::new),
        (Shape::List, Value::Array(items)) => Some(items.iter().map(text).collect()),
        (Shape::Map, Value::Object(entries)) => Some(
            entries
                .iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect(),
        ),
        (Shape::Json, v) => Some(vec![v.to_string()]),
        (_, v) => Some(vec![text(v)]),
    }
}

/// The command line `serve` parses: `args` plus the settings of the
/// configuration file and of `STRATUM_<SECTION>__<FIELD>` variables that
/// neither a flag nor a flat variable gives. Other commands pass through.
pub fn expand_args(args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    if args.get(1).is_none_or(|a| a != "serve") {
        return Ok(args);
    }
    let file = match config_path(&args) {
        Some(path) => Some(load(&path)?),
        None => None,
    };
    let mut extra: Vec<OsString> = Vec::new();
    for s in SETTINGS {
        if given_on_command_line(&args, s.flag) || std::env::var_os(s.env).is_some() {
            continue;
        }
        let values = match std::env::var(sectioned_env(s.path)) {
            Ok(text) => match s.shape {
                Shape::Switch => matches!(text.as_str(), "true" | "1" | "on").then(Vec::new),
                Shape::List | Shape::Map => Some(text.split(',').map(str::to_string).collect()),
                _ => Some(vec![text]),
            },
            Err(_) => file
                .as_ref()
                .and_then(|f| f.pointer(&format!("/{}", s.path.replace('.', "/"))))
                .and_then(|v| values_of(v, s.shape)),
        };
        let Some(values) = values else { continue };
        if s.shape == Shape::Switch {
            extra.push(s.flag.into());
            continue;
        }
        for v in values {
            extra.push(format!("{}={v}", s.flag).into());
        }
    }
    let mut out = args;
    out.extend(extra);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("stratum.yaml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn sectioned_variables_follow_the_spec() {
        assert_eq!(sectioned_env("server.listen"), "STRATUM_SERVER__LISTEN");
        assert_eq!(
            sectioned_env("server.shutdownGrace"),
            "STRATUM_SERVER__SHUTDOWN_GRACE"
        );
        assert_eq!(
            sectioned_env("auth.anonymous.role"),
            "STRATUM_AUTH__ANONYMOUS__ROLE"
        );
    }

    #[test]
    fn bad_files_name_the_path() {
        for (text, expected) in [
            (
                "server: {listne: x}",
                "server.listne: unknown field `listne`, expected one of `listen`",
            ),
            ("limits: {maxDepth: deep}", "limits.maxDepth: invalid type"),
            (
                "server: {shutdownGrace: soon}",
                "server.shutdownGrace: \"soon\" is not a duration",
            ),
            (
                "server: {listen: nowhere}",
                "server.listen: invalid socket address",
            ),
            (
                "auth: {anonymous: {role: root}}",
                "auth.anonymous.role: unknown variant `root`",
            ),
            (
                "auth: {anonymous: {scope: {namespaces: []}}}",
                "auth.anonymous.scope: invalid scope.namespaces",
            ),
            ("colour: blue", "colour: unknown field `colour`"),
            ("server: 5", "server: invalid type: integer `5`"),
        ] {
            let (_dir, path) = write(text);
            let err = load(&path).expect_err(text).to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.contains("stratum.yaml"), "{err}");
        }
    }

    #[test]
    fn file_settings_become_flags_unless_given() {
        let (_dir, path) = write(
            "server: {listen: \"127.0.0.1:9999\", demo: true}\nlimits: {maxDepth: 7}\n\
             scrapers: {paths: [a, b]}\nauth: {roleMap: {ops: admin}, anonymous: {scope: {namespaces: [x]}}}\n",
        );
        let args: Vec<OsString> = ["stratum", "serve", "--config"]
            .iter()
            .map(OsString::from)
            .chain([
                path.clone().into_os_string(),
                "--max-depth".into(),
                "3".into(),
            ])
            .collect();
        let expanded = expand_args(args).expect("expand");
        let text: Vec<String> = expanded
            .iter()
            .map(|a| a.to_string_lossy().to_string())
            .collect();
        assert!(
            text.contains(&"--listen=127.0.0.1:9999".to_string()),
            "{text:?}"
        );
        assert!(text.contains(&"--demo".to_string()), "{text:?}");
        assert!(text.contains(&"--scrape-config=a".to_string()));
        assert!(text.contains(&"--scrape-config=b".to_string()));
        assert!(text.contains(&"--auth-role-map=ops=admin".to_string()));
        assert!(text.contains(&"--anonymous-scope={\"namespaces\":[\"x\"]}".to_string()));
        assert!(
            !text.iter().any(|a| a.starts_with("--max-depth=")),
            "the flag wins: {text:?}"
        );
        let other: Vec<OsString> = ["stratum", "schema"].iter().map(OsString::from).collect();
        assert_eq!(expand_args(other.clone()).expect("other"), other);
    }
}
