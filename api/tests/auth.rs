//! Bearer-token authentication over a real socket (SPEC §12, issue #6):
//! every bad token is a 401 `UNAUTHENTICATED` with a generic message (close
//! code 4401 on a WebSocket), good ones carry their role, a viewer cannot
//! mutate, and anonymous access gives exactly its configured role.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::spawn;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use stratum_api::auth::{AuthSettings, Authenticator, Role};
use stratum_api::graphql::SchemaOptions;
use stratum_api::http::AppState;
use stratum_tests::ws::Client;
use stratum_tests::{Backend, TestDb};

mod common;

const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-1234";
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "stratum";

fn fixture(name: &str) -> PathBuf {
    stratum_tests::repo_root()
        .join("tests/fixtures/auth")
        .join(name)
}

async fn serve(db: &TestDb, settings: AuthSettings) -> SocketAddr {
    let mut state = AppState::new(db.store.clone(), SchemaOptions::default());
    state.auth = Arc::new(Authenticator::from_settings(&settings).expect("auth settings"));
    spawn(state).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(role: &str) -> Value {
    json!({"sub": "ci", "stratum/role": role, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "jti": "t-1"})
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).expect("key"),
    )
    .expect("encode")
}

fn signed(alg: Algorithm, kid: Option<&str>, private: &str, claims: &Value) -> String {
    let pem = std::fs::read(fixture(private)).expect("pem");
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        _ => EncodingKey::from_ec_pem(&pem),
    }
    .expect("key");
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key).expect("encode")
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

struct Reply {
    status: u16,
    www_authenticate: Option<String>,
    body: Value,
}

async fn post(addr: SocketAddr, token: Option<&str>, query: &str) -> Reply {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .header("content-type", "application/json")
        .header("accept", "application/graphql-response+json")
        .body(json!({"query": query}).to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.expect("post");
    Reply {
        status: response.status().as_u16(),
        www_authenticate: response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: response.json().await.expect("json"),
    }
}

const QUERY: &str = "{ configItems(first: 1) { totalCount } }";
const MUTATION: &str = "mutation { resolveInsight(id: \"SW5zaWdodDowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDE\") { id } }";

fn hs_settings(dir: &std::path::Path) -> AuthSettings {
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    AuthSettings {
        hs256_secret_file: Some(secret),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        role_claim: "stratum/role".into(),
        ..AuthSettings::default()
    }
}

#[tokio::test]
async fn every_bad_token_is_a_generic_401() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let addr = serve(&db, hs_settings(dir.path())).await;

    let mut expired = claims("viewer");
    expired["exp"] = json!(now() - 120);
    let mut early = claims("viewer");
    early["nbf"] = json!(now() + 600);
    let mut string_exp = claims("viewer");
    string_exp["exp"] = json!((now() + 600).to_string());
    let mut wrong_iss = claims("viewer");
    wrong_iss["iss"] = json!("https://elsewhere.test");
    let mut wrong_aud = claims("viewer");
    wrong_aud["aud"] = json!("someone-else");
    let mut no_sub = claims("viewer");
    no_sub.as_object_mut().expect("object").remove("sub");
    let mut scoped = claims("viewer");
    scoped["stratum/scope"] = json!({"namespaces": []});
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("admin"))
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("not-a-jwt".into())),
        ("alg none", Some(alg_none)),
        (
            "wrong signature",
            Some(hs256(
                &claims("viewer"),
                b"another-secret-that-is-long-enough-42",
            )),
        ),
        (
            "RS256 against the HS256 key",
            Some(signed(
                Algorithm::RS256,
                None,
                "rsa-private.pem",
                &claims("viewer"),
            )),
        ),
        ("expired", Some(hs256(&expired, SECRET))),
        ("nbf in the future", Some(hs256(&early, SECRET))),
        ("exp as a string", Some(hs256(&string_exp, SECRET))),
        ("wrong issuer", Some(hs256(&wrong_iss, SECRET))),
        ("wrong audience", Some(hs256(&wrong_aud, SECRET))),
        ("no sub", Some(hs256(&no_sub, SECRET))),
        ("no known role", Some(hs256(&claims("superuser"), SECRET))),
        ("a malformed scope", Some(hs256(&scoped, SECRET))),
    ];
    for (what, token) in cases {
        let reply = post(addr, token.as_deref(), QUERY).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert_eq!(reply.www_authenticate.as_deref(), Some("Bearer"), "{what}");
        let error = &reply.body["errors"][0];
        assert_eq!(error["extensions"]["code"], "UNAUTHENTICATED", "{what}");
        assert!(reply.body.get("data").is_none(), "{what}: nothing ran");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message == "invalid or expired token" || message.starts_with("authentication required"),
            "{what}: the reason is not leaked: {message}"
        );
    }

    // Within the 30 s leeway an expired token still works.
    let mut just_expired = claims("viewer");
    just_expired["exp"] = json!(now() - 5);
    let reply = post(addr, Some(&hs256(&just_expired, SECRET)), QUERY).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn roles_decide_what_a_token_may_do() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let addr = serve(&db, hs_settings(dir.path())).await;
    let viewer = hs256(&claims("viewer"), SECRET);
    let editor = hs256(&claims("editor"), SECRET);
    let mut several = claims("viewer");
    several["stratum/role"] = json!(["viewer", "admin"]);
    let admin = hs256(&several, SECRET);

    let reply = post(addr, Some(&viewer), QUERY).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["data"]["configItems"]["totalCount"], 0);
    // The cached verification answers the same.
    assert_eq!(post(addr, Some(&viewer), QUERY).await.status, 200);

    let reply = post(addr, Some(&viewer), MUTATION).await;
    assert_eq!(
        reply.body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{}",
        reply.body
    );
    assert!(
        reply.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("editor")),
        "{}",
        reply.body
    );
    for token in [&editor, &admin] {
        let reply = post(addr, Some(token), MUTATION).await;
        assert_eq!(
            reply.body["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{}",
            reply.body
        );
    }
}

#[tokio::test]
async fn public_keys_need_their_exact_kid_and_algorithm() {
    let db = TestDb::new(Backend::Sqlite).await;
    let settings = AuthSettings {
        public_keys: vec![
            ("rsa-1".into(), fixture("rsa-public.pem")),
            ("ec-1".into(), fixture("ec-public.pem")),
        ],
        role_claim: "stratum/role".into(),
        ..AuthSettings::default()
    };
    let addr = serve(&db, settings).await;
    let c = claims("viewer");
    let ok = [
        signed(Algorithm::RS256, Some("rsa-1"), "rsa-private.pem", &c),
        signed(Algorithm::ES256, Some("ec-1"), "ec-private.pem", &c),
    ];
    for token in &ok {
        let reply = post(addr, Some(token), QUERY).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // Public keys verify; they cannot sign, so nothing can be minted here.
    let admin = signed(
        Algorithm::RS256,
        Some("rsa-1"),
        "rsa-private.pem",
        &claims("admin"),
    );
    let reply = post(
        addr,
        Some(&admin),
        "mutation { createApiToken(subject: \"x\", role: VIEWER) { token } }",
    )
    .await;
    assert_eq!(
        reply.body["errors"][0]["extensions"]["code"], "FAILED_PRECONDITION",
        "{}",
        reply.body
    );
    // HS256 "signed" with the RSA public key, the classic confusion attack.
    let public_pem = std::fs::read(fixture("rsa-public.pem")).expect("pem");
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(
        &confused,
        &c,
        &EncodingKey::from_secret(&public_pem).expect("key"),
    )
    .expect("encode");
    let bad = [
        (
            "unknown kid",
            signed(Algorithm::RS256, Some("rsa-2"), "rsa-private.pem", &c),
        ),
        (
            "no kid with two keys",
            signed(Algorithm::RS256, None, "rsa-private.pem", &c),
        ),
        (
            "ES256 under the RSA kid",
            signed(Algorithm::ES256, Some("rsa-1"), "ec-private.pem", &c),
        ),
        ("HS256 under the RSA kid", confused),
    ];
    for (what, token) in bad {
        let reply = post(addr, Some(&token), QUERY).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert_eq!(
            reply.body["errors"][0]["extensions"]["code"],
            "UNAUTHENTICATED"
        );
    }
}

#[tokio::test]
async fn websockets_authenticate_in_connection_init_and_close_4401() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let addr = serve(&db, hs_settings(dir.path())).await;
    const T: &str = "graphql-transport-ws";
    let good = hs256(&claims("viewer"), SECRET);

    for protocol in [T, "graphql-ws"] {
        for payload in [json!({}), json!({"Authorization": "Bearer nope"})] {
            let mut c = Client::connect(addr, protocol).await;
            c.send(json!({"type": "connection_init", "payload": payload}))
                .await;
            let (code, _) = c.expect_close().await;
            assert_eq!(code, 4401, "{protocol}: {payload}");
        }
        for payload in [
            json!({"Authorization": format!("Bearer {good}")}),
            json!({"token": good}),
        ] {
            let mut c = Client::connect(addr, protocol).await;
            c.send(json!({"type": "connection_init", "payload": payload}))
                .await;
            assert_eq!(c.recv_json().await["type"], "connection_ack", "{protocol}");
        }
    }

    // A token on the upgrade request serves too.
    let mut request = stratum_tests::ws::request(addr, T);
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {good}").parse().expect("header"),
    );
    let mut c = Client::connect_request(request).await;
    c.init().await;

    // When the token expires the connection closes with 4401 (the leeway
    // applies to accepting a token, not to keeping a connection).
    let mut short = claims("viewer");
    short["exp"] = json!(now() + 2);
    let mut c = Client::connect(addr, T).await;
    c.send(json!({"type": "connection_init", "payload": {"token": hs256(&short, SECRET)}}))
        .await;
    assert_eq!(c.recv_json().await["type"], "connection_ack");
    c.subscribe(
        T,
        "h",
        "subscription { healthChanged { current } }",
        json!({}),
    )
    .await;
    let started = std::time::Instant::now();
    let (code, reason) = c.expect_close().await;
    assert_eq!((code, reason.as_str()), (4401, "the token expired"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn anonymous_access_gets_exactly_its_role() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut settings = hs_settings(dir.path());
    settings.anonymous = Some(Role::Viewer);
    let addr = serve(&db, settings).await;
    let reply = post(addr, None, QUERY).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = post(addr, None, MUTATION).await;
    assert_eq!(reply.body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    // A bad token is still refused: anonymous access is for no token only.
    assert_eq!(post(addr, Some("garbage"), QUERY).await.status, 401);
}

stratum_tests::on_both_backends!(minted_tokens_work_until_revoked);

fn stratum(db: &TestDb, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(args)
        .env("STRATUM_DATABASE_URL", &db.url)
        .output()
        .expect("run stratum")
}

/// `stratum token` signs with the server's secret and records the token;
/// `--revoke` turns it away once the server reloads the revoked set.
async fn minted_tokens_work_until_revoked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tmp");
    let settings = hs_settings(dir.path());
    let secret = settings
        .hs256_secret_file
        .clone()
        .expect("secret file")
        .display()
        .to_string();
    let mut state = AppState::new(db.store.clone(), SchemaOptions::default());
    let auth = Arc::new(Authenticator::from_settings(&settings).expect("auth"));
    state.auth = auth.clone();
    let addr = spawn(state).await;

    let base = [
        "token",
        "--auth-hs256-secret-file",
        &secret,
        "--auth-issuer",
        ISSUER,
        "--auth-audience",
        AUDIENCE,
    ];
    let out = stratum(
        &db,
        &[
            &base[..],
            &["--subject", "ci", "--role", "editor", "--ttl", "1h"],
        ]
        .concat(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let jti = stderr
        .lines()
        .find_map(|l| l.strip_prefix("token "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the token id on stderr")
        .to_string();
    assert!(
        !stderr.contains(&token),
        "the token is printed once, on stdout"
    );
    let reply = post(addr, Some(&token), MUTATION).await;
    assert_eq!(
        reply.body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "an editor: {}",
        reply.body
    );

    let out = stratum(&db, &["token", "--revoke", &jti]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the server's 30 s reload does.
    auth.set_revoked(
        db.store
            .revoked_tokens()
            .await
            .expect("revoked")
            .into_iter()
            .collect(),
    );
    assert_eq!(
        post(addr, Some(&token), QUERY).await.status,
        401,
        "revoked, even though cached"
    );

    // A scoped token carries its scope.
    let out = stratum(
        &db,
        &[
            &base[..],
            &["--subject", "ci", "--scope", "{\"namespaces\": [\"a\"]}"],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scoped = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let payload = scoped.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64"),
    )
    .expect("claims");
    assert_eq!(claims["stratum/scope"], json!({"namespaces": ["a"]}));
    assert_eq!(post(addr, Some(&scoped), QUERY).await.status, 200);

    for (args, code, expected) in [
        (vec!["--subject", "ci", "--ttl", "400d"], 1, "365 days"),
        (
            vec!["--subject", "ci", "--scope", "{\"namespaces\": []}"],
            2,
            "scope.namespaces",
        ),
        (
            vec!["--subject", "ci", "--scope", "payments"],
            2,
            "not JSON",
        ),
    ] {
        let out = stratum(&db, &[&base[..], &args[..]].concat());
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{args:?}"
        );
    }
    let out = stratum(&db, &["token", "--subject", "ci"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auth-hs256-secret-file"));
    let out = stratum(&db, &["token", "--revoke", "no-such-token"]);
    assert_eq!(out.status.code(), Some(1));
}

/// Every mutation leaves one audit line (who, what, when, outcome) in the
/// server's JSON log, and no token ever appears in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_names_who_did_what_and_never_the_token() {
    let dir = tempfile::tempdir().expect("tmp");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    let secret = secret.display().to_string();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let mint = |role: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stratum"))
            .args(["token", "--subject", &format!("ci-{role}"), "--role", role])
            .args(["--auth-hs256-secret-file", &secret, "--database-url", &url])
            .output()
            .expect("token");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (editor, viewer) = (mint("editor"), mint("viewer"));
    let log = dir.path().join("serve.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
        .args(["--auth-hs256-secret-file", &secret])
        .env("STRATUM_LOG", "stratum::audit=info,warn")
        .env("STRATUM_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve");
    let addr = stratum_tests::listening_addr(&mut child).expect("serve starts");
    let silence = "mutation($id: ID!) { silenceInsight(id: $id) { id } }";
    let body = json!({"query": silence, "variables": {"id": "SW5zaWdodDowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDE"}});
    for (n, token) in [&editor, &viewer].into_iter().enumerate() {
        let status = reqwest::Client::new()
            .post(format!("http://{addr}/graphql"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .header("x-request-id", format!("audit-test-{n}"))
            .body(body.to_string())
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, 200);
    }
    assert_eq!(
        post(addr, Some(&editor), QUERY).await.status,
        200,
        "queries are not audited"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    let audit: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "stratum::audit")
        .collect();
    assert_eq!(audit.len(), 2, "{text}");
    let fields: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|v| {
            (
                v["fields"]["subject"].as_str().unwrap_or_default(),
                v["fields"]["mutation"].as_str().unwrap_or_default(),
                v["fields"]["outcome"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("ci-editor", "silenceInsight", "NOT_FOUND"),
            ("ci-viewer", "silenceInsight", "FORBIDDEN")
        ]
    );
    assert!(
        audit[0]["fields"]["arguments"]
            .as_str()
            .is_some_and(|a| a.contains("SW5zaWdodDow")),
        "the target id is logged: {}",
        audit[0]
    );
    assert!(audit.iter().all(|v| v["timestamp"].is_string()));
    // Each line carries its request's id.
    let ids: Vec<&str> = audit
        .iter()
        .map(|v| v["span"]["request_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["audit-test-0", "audit-test-1"], "{text}");
    assert!(
        !text.contains(&editor) && !text.contains(&viewer),
        "no token in the log"
    );
    assert!(!text.contains("a-test-secret"), "no secret in the log");
}

/// CORS (SPEC §12): an exact allow-list, preflights answered for it only,
/// and never `Access-Control-Allow-Credentials`.
#[tokio::test]
async fn cors_allows_exactly_the_listed_origins_without_credentials() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut state = AppState::new(db.store.clone(), SchemaOptions::default());
    state.cors_origins =
        stratum_api::http::parse_origins(&["https://portal.example.com".into()]).expect("origins");
    let addr = spawn(state).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("http://{addr}/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://portal.example.com")
        .await
        .expect("preflight");
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://portal.example.com"
    );
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii");
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));
    assert!(headers.get("access-control-allow-credentials").is_none());
    let other = preflight("https://evil.example.com")
        .await
        .expect("preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let reply = client
        .post(format!("http://{addr}/graphql"))
        .header("origin", "https://portal.example.com")
        .header("content-type", "application/json")
        .body(json!({"query": QUERY}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(
        reply.headers()["access-control-allow-origin"],
        "https://portal.example.com"
    );
    assert!(
        reply.headers()["access-control-expose-headers"]
            .to_str()
            .expect("ascii")
            .contains("x-request-id")
    );

    for bad in [
        "*",
        "portal.example.com",
        "https://portal.example.com/path",
        "ftp://x",
    ] {
        assert!(
            stratum_api::http::parse_origins(&[bad.to_string()]).is_err(),
            "{bad}"
        );
    }
}

/// Serves with the HS256 settings and these rate limits.
async fn serve_limited(
    db: &TestDb,
    dir: &std::path::Path,
    limits: stratum_api::ratelimit::RateSettings,
) -> SocketAddr {
    let mut state = AppState::new(db.store.clone(), SchemaOptions::default());
    state.auth = Arc::new(Authenticator::from_settings(&hs_settings(dir)).expect("auth"));
    state.rate_limits = Some(Arc::new(stratum_api::ratelimit::RateLimits::new(limits)));
    spawn(state).await
}

/// A viewer token with its own `jti` (its own allowances).
fn viewer_with_jti(jti: &str) -> String {
    let mut c = claims("viewer");
    c["jti"] = json!(jti);
    hs256(&c, SECRET)
}

/// Per-token request rates and complexity budgets (SPEC §12): `429`
/// `RATE_LIMITED` with `Retry-After`, and `extensions.cost` on every answer.
#[tokio::test]
async fn rates_and_budgets_refuse_with_retry_after() {
    use stratum_api::ratelimit::RateSettings;
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let addr = serve_limited(
        &db,
        dir.path(),
        RateSettings {
            per_second: 1,
            burst: 3,
            points_per_minute: 1_000,
            connections: 20,
        },
    )
    .await;
    let token = viewer_with_jti;

    // The request rate: a burst of 3, then a wait.
    let fast = token("rate");
    for _ in 0..3 {
        assert_eq!(post(addr, Some(&fast), QUERY).await.status, 200);
    }
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {fast}"))
        .body(json!({"query": QUERY}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    // Another token is not affected.
    assert_eq!(post(addr, Some(&token("other")), QUERY).await.status, 200);

    // The complexity budget: every answer reports it; once spent, 429.
    let heavy = "{ configItems(first: 100) { nodes { name type health } } }";
    let spender = token("budget");
    let mut last_remaining = u64::MAX;
    let mut refused = None;
    for _ in 0..3 {
        let reply = post(addr, Some(&spender), heavy).await;
        if reply.status == 429 {
            refused = Some(reply);
            break;
        }
        let cost = &reply.body["extensions"]["cost"];
        let requested = cost["requested"].as_u64().expect("requested");
        let remaining = cost["remaining"].as_u64().expect("remaining");
        assert!(requested >= 300, "a page of 100 costs its size: {cost}");
        assert!(remaining < last_remaining, "{cost}");
        last_remaining = remaining;
    }
    let refused = refused.expect("the budget runs out within three heavy queries");
    assert_eq!(
        refused.body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{}",
        refused.body
    );
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("points")),
        "{}",
        refused.body
    );
}

/// WebSockets draw on the same allowances (SPEC §12): at most N open
/// connections per token (the next closes with 4429, a closed one frees
/// its slot), and each operation counts against the request rate and the
/// complexity budget.
#[tokio::test]
async fn websocket_connections_and_operations_are_limited_per_token() {
    use stratum_api::ratelimit::RateSettings;
    const T: &str = "graphql-transport-ws";
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let addr = serve_limited(
        &db,
        dir.path(),
        RateSettings {
            per_second: 1,
            burst: 2,
            points_per_minute: 1_000,
            connections: 2,
        },
    )
    .await;
    let token = viewer_with_jti;
    use stratum_tests::ws::Incoming;
    let open = |token: String| async move {
        let mut c = Client::connect(addr, T).await;
        c.send(json!({"type": "connection_init", "payload": {"token": token}}))
            .await;
        (c.recv().await, c)
    };
    let acked =
        |reply: &Incoming| matches!(reply, Incoming::Json(m) if m["type"] == "connection_ack");
    let a = token("ws-a");
    let (ack, mut first) = open(a.clone()).await;
    assert!(acked(&ack), "{ack:?}");
    let (ack, _second) = open(a.clone()).await;
    assert!(acked(&ack), "{ack:?}");
    let (refused, _) = open(a.clone()).await;
    match refused {
        Incoming::Closed(code, reason) => {
            assert_eq!(code, 4429, "{reason}");
            assert!(reason.contains("at most 2"), "{reason}");
        }
        other => panic!("a third connection was let in: {other:?}"),
    }
    // Another token has its own slots.
    let (ack, _other) = open(token("ws-b")).await;
    assert!(acked(&ack), "{ack:?}");
    // Closing a connection gives its slot back.
    first
        .send_raw(stratum_tests::ws::Message::Close(None))
        .await;
    let _ = first.expect_close().await;
    let mut reopened = None;
    for _ in 0..50 {
        let (ack, c) = open(a.clone()).await;
        if acked(&ack) {
            reopened = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = reopened.expect("the freed slot is reusable");

    // Operations: a burst of 2, then RATE_LIMITED without closing.
    let op =
        |id: &str, query: &str| json!({"type": "subscribe", "id": id, "payload": {"query": query}});
    for id in ["q1", "q2"] {
        c.send(op(id, QUERY)).await;
        let next = c.recv_for(id).await;
        assert_eq!(next["type"], "next", "{next}");
    }
    c.send(op("q3", QUERY)).await;
    let refused = c.recv_for("q3").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(
        refused.to_string().contains("requests per second"),
        "{refused}"
    );

    // The complexity budget (1,000 points): a page of 100 with six fields
    // costs over 600, so the second one is refused.
    let heavy = "{ configItems(first: 100) { nodes { id name type health status namespace } } }";
    let (ack, mut spender) = open(token("ws-budget")).await;
    assert!(acked(&ack), "{ack:?}");
    spender.send(op("h1", heavy)).await;
    let next = spender.recv_for("h1").await;
    assert_eq!(next["type"], "next", "{next}");
    spender.send(op("h2", heavy)).await;
    let refused = spender.recv_for("h2").await;
    assert!(refused.to_string().contains("RATE_LIMITED"), "{refused}");
    assert!(refused.to_string().contains("points"), "{refused}");
}

/// A JWKS file's keys verify tokens by exact kid, and a changed file
/// replaces them (SPEC §12: reloaded when it changes): the new key's
/// tokens are accepted and the removed key's are refused at once, even
/// ones verified (and cached) before. A broken file keeps the last keys.
#[tokio::test]
async fn a_changed_jwks_file_replaces_its_keys() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let jwks = dir.path().join("jwks.json");
    std::fs::copy(fixture("jwks-rsa.json"), &jwks).expect("copy");
    let settings = AuthSettings {
        jwks_file: Some(jwks.clone()),
        role_claim: "stratum/role".into(),
        ..AuthSettings::default()
    };
    let auth = Arc::new(Authenticator::from_settings(&settings).expect("auth"));
    let mut state = AppState::new(db.store.clone(), SchemaOptions::default());
    state.auth = auth.clone();
    let addr = spawn(state).await;
    let c = claims("viewer");
    let rsa = signed(Algorithm::RS256, Some("jwks-rsa"), "rsa-private.pem", &c);
    let ec = signed(Algorithm::ES256, Some("jwks-ec"), "ec-private.pem", &c);
    assert_eq!(post(addr, Some(&rsa), QUERY).await.status, 200);
    assert_eq!(post(addr, Some(&ec), QUERY).await.status, 401);
    assert!(
        !auth.reload_jwks().expect("unchanged"),
        "nothing changed yet"
    );

    std::fs::copy(fixture("jwks-ec.json"), &jwks).expect("copy");
    assert!(auth.reload_jwks().expect("reload"));
    assert_eq!(post(addr, Some(&ec), QUERY).await.status, 200);
    assert_eq!(
        post(addr, Some(&rsa), QUERY).await.status,
        401,
        "the removed key's token is refused, though it was cached"
    );

    std::fs::write(&jwks, "{not json").expect("write");
    let err = auth.reload_jwks().expect_err("a broken file");
    assert!(err.to_string().contains("not a JWKS document"), "{err}");
    assert_eq!(
        post(addr, Some(&ec), QUERY).await.status,
        200,
        "last keys kept"
    );
}

/// `/schema.graphql` is introspection: authenticated callers only.
#[tokio::test]
async fn the_sdl_needs_authentication() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let addr = serve(&db, hs_settings(dir.path())).await;
    let get = |token: Option<String>| async move {
        let mut request = reqwest::Client::new().get(format!("http://{addr}/schema.graphql"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("get");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    };
    let (status, body) = get(None).await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("type QueryRoot"));
    let (status, body) = get(Some(hs256(&claims("viewer"), SECRET))).await;
    assert_eq!(status, 200);
    assert!(body.contains("type QueryRoot"));
}

/// Only an unscoped admin mints and revokes tokens over the API
/// (`createApiToken`, `revokeApiToken`): an editor, a viewer and a scoped
/// admin are `FORBIDDEN`; a minted token carries its role and scope; a
/// revoked one is refused at once; bad input is `BAD_USER_INPUT`.
#[tokio::test]
async fn only_an_unscoped_admin_mints_tokens() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tmp");
    let addr = serve(&db, hs_settings(dir.path())).await;
    let mint = |role: &str, scope: &str| {
        format!(
            "mutation {{ createApiToken(subject: \"ci\", role: {role}, ttl: \"1h\"{scope}) {{ token id subject role expiresAt }} }}"
        )
    };
    let code = |reply: &Reply| reply.body["errors"][0]["extensions"]["code"].clone();
    let mut scoped_admin = claims("admin");
    scoped_admin["stratum/scope"] = json!({"namespaces": ["a"]});
    for token in [
        hs256(&claims("editor"), SECRET),
        hs256(&claims("viewer"), SECRET),
        hs256(&scoped_admin, SECRET),
    ] {
        let reply = post(addr, Some(&token), &mint("ADMIN", "")).await;
        assert_eq!(code(&reply), "FORBIDDEN", "{}", reply.body);
        assert!(reply.body["data"].is_null() || reply.body["data"]["createApiToken"].is_null());
    }
    let admin = hs256(&claims("admin"), SECRET);
    let reply = post(
        addr,
        Some(&admin),
        &mint("VIEWER", ", scope: {namespaces: [\"payments\"]}"),
    )
    .await;
    let minted = &reply.body["data"]["createApiToken"];
    assert_eq!(minted["role"], "viewer", "{}", reply.body);
    assert_eq!(minted["subject"], "ci");
    let token = minted["token"].as_str().expect("token").to_string();
    let id = minted["id"].as_str().expect("id").to_string();
    // It works, as a viewer: it may not mutate.
    assert_eq!(post(addr, Some(&token), QUERY).await.status, 200);
    assert_eq!(code(&post(addr, Some(&token), MUTATION).await), "FORBIDDEN");
    let payload = token.split('.').nth(1).expect("payload");
    let claims_of: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64"),
    )
    .expect("claims");
    assert_eq!(
        claims_of["stratum/scope"],
        json!({"namespaces": ["payments"]})
    );
    assert_eq!(claims_of["iss"], ISSUER);

    for (bad, expected) in [
        (mint("VIEWER", "").replace("1h", "400d"), "365 days"),
        (mint("VIEWER", "").replace("1h", "soon"), "ttl"),
        (
            mint("VIEWER", ", scope: {namespaces: []}"),
            "scope.namespaces",
        ),
    ] {
        let reply = post(addr, Some(&admin), &bad).await;
        assert_eq!(code(&reply), "BAD_USER_INPUT", "{}", reply.body);
        assert!(reply.body.to_string().contains(expected), "{}", reply.body);
    }

    let revoke = format!("mutation {{ revokeApiToken(id: \"{id}\") }}");
    let editor = hs256(&claims("editor"), SECRET);
    assert_eq!(code(&post(addr, Some(&editor), &revoke).await), "FORBIDDEN");
    let reply = post(addr, Some(&admin), &revoke).await;
    assert_eq!(reply.body["data"]["revokeApiToken"], true, "{}", reply.body);
    assert_eq!(
        post(addr, Some(&token), QUERY).await.status,
        401,
        "revoked at once"
    );
    let reply = post(
        addr,
        Some(&admin),
        "mutation { revokeApiToken(id: \"no-such\") }",
    )
    .await;
    assert_eq!(code(&reply), "NOT_FOUND");
}
