//! Authentication and roles (SPEC §12): bearer JWTs verified with
//! `jsonwebtoken` against an explicit key set (an HS256 secret, RS256/ES256
//! public keys from PEM files, or a static JWKS file), a cache of verified
//! tokens, optional anonymous access, and the role guard of mutations.
//!
//! Every failure reaches the client as the same generic `UNAUTHENTICATED`
//! (401, or close code 4401 on a WebSocket); the reason is logged, the
//! token never is.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::{Context, Guard};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lru::LruCache;
use serde_json::Value;
use sha2::{Digest, Sha256};
use stratum_domain::scope::Scope;

/// The claim carrying a token's scope (SPEC §12).
pub const SCOPE_CLAIM: &str = "stratum/scope";
/// Clock leeway for `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// Verified tokens kept.
const CACHE_ENTRIES: NonZeroUsize = NonZeroUsize::new(10_000).expect("non-zero");
/// Longest a verified token is trusted without verifying it again.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Shortest accepted HS256 secret.
const MIN_SECRET_BYTES: usize = 32;

/// What a caller may do, lowest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries and subscriptions.
    Viewer,
    /// Plus scrape triggers, pushed results and insight mutations.
    Editor,
    /// Everything.
    Admin,
}

impl Role {
    /// The role's name in claims and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`, or `anonymous`.
    pub subject: String,
    /// What it may do.
    pub role: Role,
    /// The token's `jti`, if any.
    pub token_id: Option<String>,
    /// When the token expires (`None` for anonymous access).
    pub expires_at: Option<DateTime<Utc>>,
    /// The items it may see; everything when `None`.
    pub scope: Option<Arc<Scope>>,
}

/// Why a request is not authenticated. Shown to clients only as a generic
/// message; the detail is for the log.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No bearer token, and anonymous access is off.
    #[error("authentication required")]
    Missing,
    /// The token did not verify; the reason is logged.
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl AuthError {
    /// The message clients see.
    pub fn public_message(&self) -> &'static str {
        match self {
            AuthError::Missing => "authentication required: send a bearer token",
            AuthError::Invalid(_) => "invalid or expired token",
        }
    }
}

/// Where keys and rules come from (the `--auth-*` flags).
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// File holding the HS256 secret (at least 32 bytes).
    pub hs256_secret_file: Option<PathBuf>,
    /// `(kid, PEM file)` of RS256 or ES256 public keys.
    pub public_keys: Vec<(String, PathBuf)>,
    /// A static JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// The claim holding the role (a string or an array of strings).
    pub role_claim: String,
    /// Claim values to roles; the role names themselves map to themselves.
    pub role_map: BTreeMap<String, Role>,
    /// The role of requests without a token, when anonymous access is on.
    pub anonymous: Option<Role>,
    /// The scope of anonymous requests.
    pub anonymous_scope: Option<Scope>,
}

impl AuthSettings {
    /// True when any key is configured (authentication is enforced).
    pub fn has_keys(&self) -> bool {
        self.hs256_secret_file.is_some() || !self.public_keys.is_empty() || self.jwks_file.is_some()
    }
}

#[derive(Clone)]
struct VerifyKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies bearer tokens.
pub struct Authenticator {
    /// The keys tokens are verified with: the fixed ones, then the JWKS's.
    keys: std::sync::RwLock<Arc<Vec<VerifyKey>>>,
    /// The HS256 secret and PEM keys (never reloaded).
    fixed_keys: Vec<VerifyKey>,
    /// The JWKS file and the digest of what was loaded from it.
    jwks: Option<(PathBuf, Mutex<[u8; 32]>)>,
    /// The HS256 secret, when configured: `createApiToken` signs with it.
    signing_secret: Option<Vec<u8>>,
    issuer: Option<String>,
    audience: Option<String>,
    role_claim: String,
    role_map: BTreeMap<String, Role>,
    anonymous: Option<Principal>,
    /// Off: no keys were configured and every caller is an admin.
    open: bool,
    cache: Mutex<LruCache<[u8; 32], (Principal, Instant)>>,
    /// `jti`s of revoked tokens, reloaded from the store.
    revoked: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.current_keys().len())
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

/// The keys of a JWKS document read from `path`: RSA (RS256) and P-256
/// (ES256) keys, each with a `kid`.
fn jwks_keys(path: &Path, bytes: &[u8]) -> anyhow::Result<Vec<VerifyKey>> {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a JWKS document: {e}", path.display()))?;
    let mut keys = Vec::with_capacity(set.keys.len());
    for jwk in &set.keys {
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| anyhow::anyhow!("a key in {} has no kid", path.display()))?;
        let algorithm = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            _ => anyhow::bail!(
                "key {kid} in {}: only RSA (RS256) and P-256 (ES256) keys are accepted",
                path.display()
            ),
        };
        keys.push(VerifyKey {
            kid: Some(kid.clone()),
            algorithm,
            key: DecodingKey::from_jwk(jwk)
                .map_err(|e| anyhow::anyhow!("key {kid} in {}: {e}", path.display()))?,
        });
    }
    Ok(keys)
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("reading the {what} {}: {e}", path.display()))
}

impl Authenticator {
    /// No authentication: every caller is an admin. Used when no key is
    /// configured (and by in-process tests).
    pub fn open() -> Self {
        Authenticator {
            keys: Default::default(),
            fixed_keys: Vec::new(),
            jwks: None,
            signing_secret: None,
            issuer: None,
            audience: None,
            role_claim: String::new(),
            role_map: BTreeMap::new(),
            anonymous: None,
            open: true,
            cache: Mutex::new(LruCache::new(CACHE_ENTRIES)),
            revoked: Default::default(),
        }
    }

    /// Loads the configured keys; an error names the file and the problem
    /// (never the key).
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        if !settings.has_keys() {
            return Ok(Authenticator::open());
        }
        let mut keys = Vec::new();
        let mut signing_secret = None;
        if let Some(path) = &settings.hs256_secret_file {
            let secret = read_secret(path)?;
            signing_secret = Some(secret.clone());
            let secret = secret.as_slice();
            anyhow::ensure!(
                secret.len() >= MIN_SECRET_BYTES,
                "the HS256 secret in {} has {} bytes; at least {MIN_SECRET_BYTES} are required",
                path.display(),
                secret.len()
            );
            keys.push(VerifyKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret)?,
            });
        }
        for (kid, path) in &settings.public_keys {
            let pem = read(path, "public key")?;
            let (algorithm, key) = match DecodingKey::from_rsa_pem(&pem) {
                Ok(key) => (Algorithm::RS256, key),
                Err(_) => match DecodingKey::from_ec_pem(&pem) {
                    Ok(key) => (Algorithm::ES256, key),
                    Err(e) => anyhow::bail!(
                        "{} is neither an RSA nor a P-256 public key in PEM: {e}",
                        path.display()
                    ),
                },
            };
            keys.push(VerifyKey {
                kid: Some(kid.clone()),
                algorithm,
                key,
            });
        }
        let mut all = keys.clone();
        let jwks = match &settings.jwks_file {
            Some(path) => {
                let bytes = read(path, "JWKS")?;
                all.extend(jwks_keys(path, &bytes)?);
                Some((path.clone(), Mutex::new(Sha256::digest(&bytes).into())))
            }
            None => None,
        };
        let mut role_map: BTreeMap<String, Role> = [Role::Viewer, Role::Editor, Role::Admin]
            .into_iter()
            .map(|r| (r.as_str().to_string(), r))
            .collect();
        role_map.extend(settings.role_map.clone());
        Ok(Authenticator {
            keys: std::sync::RwLock::new(Arc::new(all)),
            fixed_keys: keys,
            jwks,
            signing_secret,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            role_claim: settings.role_claim.clone(),
            role_map,
            anonymous: settings.anonymous.map(|role| Principal {
                subject: "anonymous".into(),
                role,
                token_id: None,
                expires_at: None,
                scope: settings.anonymous_scope.clone().map(Arc::new),
            }),
            open: false,
            cache: Mutex::new(LruCache::new(CACHE_ENTRIES)),
            revoked: Default::default(),
        })
    }

    fn current_keys(&self) -> Arc<Vec<VerifyKey>> {
        self.keys
            .read()
            .map(|keys| keys.clone())
            .unwrap_or_default()
    }

    /// Reloads the JWKS file when its content changed (SPEC §12): the new
    /// key set replaces the old one at once, and tokens verified with the
    /// old set are verified again. A file that cannot be read or parsed
    /// keeps the old set (the error says why). `Ok(true)` when it changed.
    pub fn reload_jwks(&self) -> anyhow::Result<bool> {
        let Some((path, loaded)) = &self.jwks else {
            return Ok(false);
        };
        let bytes = read(path, "JWKS")?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let mut loaded = loaded
            .lock()
            .map_err(|_| anyhow::anyhow!("the JWKS state is poisoned"))?;
        if *loaded == digest {
            return Ok(false);
        }
        let mut keys = self.fixed_keys.clone();
        keys.extend(jwks_keys(path, &bytes)?);
        if let Ok(mut current) = self.keys.write() {
            *current = Arc::new(keys);
        }
        *loaded = digest;
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
        Ok(true)
    }

    /// Signs a token for `spec` with this server's HS256 secret and claim
    /// names (what `stratum token` does); an error when the server holds
    /// no secret (it verifies with public keys only).
    pub fn sign(&self, spec: &TokenSpec) -> anyhow::Result<(String, String, DateTime<Utc>)> {
        let secret = self.signing_secret.as_ref().ok_or_else(|| {
            anyhow::anyhow!("this server verifies tokens with public keys only and cannot sign one")
        })?;
        sign_hs256(
            secret,
            spec,
            &ClaimNames {
                role_claim: &self.role_claim,
                issuer: self.issuer.as_deref(),
                audience: self.audience.as_deref(),
            },
        )
    }

    /// Refuses `jti` from now on (the stored revocation reaches other
    /// replicas with their 30 s reload).
    pub fn revoke_now(&self, jti: &str) {
        if let Ok(mut current) = self.revoked.write() {
            current.insert(jti.to_string());
        }
    }

    /// Replaces the set of revoked token ids.
    pub fn set_revoked(&self, revoked: std::collections::HashSet<String>) {
        if let Ok(mut current) = self.revoked.write() {
            *current = revoked;
        }
    }

    fn is_revoked(&self, principal: &Principal) -> bool {
        principal.token_id.as_ref().is_some_and(|jti| {
            self.revoked
                .read()
                .map(|set| set.contains(jti))
                .unwrap_or(true)
        })
    }

    /// True when no key is configured and nothing is checked.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The caller of a request that carries `bearer` (the token without the
    /// `Bearer ` prefix), or none.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Principal, AuthError> {
        if self.open {
            return Ok(Principal {
                subject: "local".into(),
                role: Role::Admin,
                token_id: None,
                expires_at: None,
                scope: None,
            });
        }
        let Some(token) = bearer.map(str::trim).filter(|t| !t.is_empty()) else {
            return self.anonymous.clone().ok_or(AuthError::Missing);
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self.cache.lock().ok().and_then(|mut cache| {
            let hit = cache.get(&digest).cloned();
            match hit {
                Some((principal, until)) if Instant::now() < until => Some(principal),
                Some(_) => {
                    cache.pop(&digest);
                    None
                }
                None => None,
            }
        });
        let principal = match cached {
            Some(principal) => principal,
            None => self.verify(token).inspect_err(|e| {
                tracing::info!(reason = %e, "rejected a bearer token");
            })?,
        };
        if self.is_revoked(&principal) {
            tracing::info!(
                jti = principal.token_id.as_deref(),
                "rejected a revoked token"
            );
            return Err(AuthError::Invalid("revoked".into()));
        }
        let ttl = principal
            .expires_at
            .and_then(|exp| (exp - Utc::now()).to_std().ok())
            .map_or(CACHE_TTL, |left| left.min(CACHE_TTL));
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(digest, (principal.clone(), Instant::now() + ttl));
        }
        Ok(principal)
    }

    fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let invalid = |m: String| AuthError::Invalid(m);
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        let keys = self.current_keys();
        let key = match &header.kid {
            Some(kid) => keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                .ok_or_else(|| invalid(format!("unknown kid {kid:?}")))?,
            None if keys.len() == 1 => &keys[0],
            None => return Err(invalid("no kid, and several keys are configured".into())),
        };
        if header.alg != key.algorithm {
            return Err(invalid(format!(
                "alg {:?} does not match the key's {:?}",
                header.alg, key.algorithm
            )));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.key, &validation)
                .map_err(|e| invalid(e.to_string()))?;
        let claims = data.claims;
        let scope = match claims.get(SCOPE_CLAIM) {
            None => None,
            Some(value) => Some(Arc::new(
                Scope::parse(value).map_err(|e| invalid(format!("{SCOPE_CLAIM}: {e}")))?,
            )),
        };
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("sub is not a string".into()))?
            .to_string();
        let role = self
            .role_of(claims.get(&self.role_claim))
            .ok_or_else(|| invalid(format!("no known role in the {} claim", self.role_claim)))?;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_i64)
            .and_then(|exp| DateTime::from_timestamp(exp, 0));
        Ok(Principal {
            subject,
            role,
            token_id: claims
                .get("jti")
                .and_then(Value::as_str)
                .map(str::to_string),
            expires_at,
            scope,
        })
    }

    /// The highest role any value of the claim maps to.
    fn role_of(&self, claim: Option<&Value>) -> Option<Role> {
        let values: Vec<&str> = match claim? {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => return None,
        };
        values
            .into_iter()
            .filter_map(|v| self.role_map.get(v).copied())
            .max()
    }
}

/// Longest TTL `stratum token` signs.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// What a signed token says about its holder.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// `sub`.
    pub subject: String,
    /// The role.
    pub role: Role,
    /// How long it is valid.
    pub ttl: Duration,
    /// The `stratum/scope` claim, if any.
    pub scope: Option<Scope>,
}

/// Names and values of the claims a server checks.
#[derive(Debug, Clone, Copy)]
pub struct ClaimNames<'a> {
    /// The claim holding the role.
    pub role_claim: &'a str,
    /// `iss`, when servers require one.
    pub issuer: Option<&'a str>,
    /// `aud`, when servers require one.
    pub audience: Option<&'a str>,
}

/// Signs an HS256 token for `subject` with `role`, valid for `ttl`;
/// returns the token and its `jti`.
pub fn sign_hs256(
    secret: &[u8],
    token: &TokenSpec,
    claims: &ClaimNames<'_>,
) -> anyhow::Result<(String, String, DateTime<Utc>)> {
    let ttl = token.ttl;
    anyhow::ensure!(
        secret.len() >= MIN_SECRET_BYTES,
        "the HS256 secret has {} bytes; at least {MIN_SECRET_BYTES} are required",
        secret.len()
    );
    anyhow::ensure!(
        !ttl.is_zero() && ttl <= MAX_TOKEN_TTL,
        "the TTL must be between 1 s and 365 days"
    );
    let now = Utc::now();
    let expires_at = now + chrono::TimeDelta::from_std(ttl)?;
    let jti = uuid::Uuid::now_v7().to_string();
    let mut body = serde_json::Map::new();
    body.insert("sub".into(), token.subject.clone().into());
    body.insert(claims.role_claim.into(), token.role.as_str().into());
    body.insert("jti".into(), jti.clone().into());
    body.insert("iat".into(), now.timestamp().into());
    body.insert("exp".into(), expires_at.timestamp().into());
    if let Some(scope) = &token.scope {
        body.insert(SCOPE_CLAIM.into(), serde_json::to_value(scope)?);
    }
    if let Some(iss) = claims.issuer {
        body.insert("iss".into(), iss.into());
    }
    if let Some(aud) = claims.audience {
        body.insert("aud".into(), aud.into());
    }
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &body,
        &jsonwebtoken::EncodingKey::from_secret(secret)?,
    )?;
    Ok((token, jti, expires_at))
}

/// The signing key `serve` generates on first start without keys (SPEC §12).
pub const SIGNING_KEY_FILE: &str = "stratum.key";

/// `<data_dir>/stratum.key`, created with 32 random bytes (hex) and mode
/// 0600 when missing. Returns the path and whether it was just created.
/// The key itself is never logged.
pub fn ensure_signing_key(data_dir: &Path) -> anyhow::Result<(PathBuf, bool)> {
    use anyhow::Context as _;
    use std::io::Write;
    let path = data_dir.join(SIGNING_KEY_FILE);
    if path.exists() {
        return Ok((path, false));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = match options.open(&path) {
        Ok(file) => file,
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok((path, false)),
        Err(e) => {
            return Err(e).with_context(|| format!("creating {}", path.display()));
        }
    };
    file.write_all(hex::encode(bytes).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((path, true))
}

/// Reads an HS256 secret file (surrounding whitespace ignored).
pub fn read_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(read(path, "HS256 secret")?.trim_ascii().to_vec())
}

/// The token of an `Authorization: Bearer …` value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Requires at least `role` of the request's principal (`FORBIDDEN`
/// otherwise).
pub struct RoleGuard(pub Role);

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        match ctx.data_opt::<Principal>() {
            Some(p) if p.role >= self.0 => Ok(()),
            Some(p) => Err(crate::error::gql(crate::error::ApiError::Forbidden(
                format!(
                    "this needs the {} role; the token has {}",
                    self.0.as_str(),
                    p.role.as_str()
                ),
            ))),
            // Executions without a principal are the server's own.
            None => Ok(()),
        }
    }
}

/// Refuses scoped callers (`FORBIDDEN`): for writes that reach items by
/// reference, where even "unknown target" would tell a scoped token that
/// an item outside its scope exists.
pub struct UnscopedGuard;

impl Guard for UnscopedGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        match ctx.data_opt::<Principal>() {
            Some(p) if p.scope.is_some() => Err(crate::error::gql(
                crate::error::ApiError::Forbidden("this needs a token without a scope".into()),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_are_parsed_case_insensitively() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn the_highest_mapped_role_wins() {
        let mut settings = AuthSettings {
            role_claim: "roles".into(),
            ..AuthSettings::default()
        };
        settings.role_map.insert("ops".into(), Role::Editor);
        let mut auth = Authenticator::from_settings(&settings).expect("settings");
        auth.role_map = settings.role_map.clone();
        auth.role_map.insert("admin".into(), Role::Admin);
        let claim = serde_json::json!(["nobody", "ops", "admin"]);
        assert_eq!(auth.role_of(Some(&claim)), Some(Role::Admin));
        assert_eq!(
            auth.role_of(Some(&serde_json::json!("ops"))),
            Some(Role::Editor)
        );
        assert_eq!(auth.role_of(Some(&serde_json::json!(["nobody"]))), None);
        assert_eq!(auth.role_of(Some(&serde_json::json!(5))), None);
    }
}
