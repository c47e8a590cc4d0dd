//! The HTTP router: GraphQL over HTTP at `/graphql` following the
//! GraphQL-over-HTTP specification (POST JSON, GET for queries only,
//! `Accept` negotiation between `application/graphql-response+json` and
//! `application/json` with its status codes, batches, a body limit and a
//! per-request timeout), GraphiQL for browsers, the SDL at
//! `/schema.graphql`, and the `/healthz` and `/readyz` probes.
//!
//! Requiring `Content-Type: application/json` on POST is the CSRF guard: a
//! "simple" cross-site request (form or `text/plain`) never executes.

use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, ServerError};
use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use stratum_domain::Store;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, Authenticator, Principal};
use crate::ratelimit::{Budget, RateLimits};

use crate::graphql::guard::{code_of, codes, with_code};
use crate::graphql::{Executor, Limits, SchemaOptions, sdl};

/// The GraphQL-over-HTTP media type.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// Shared state of the router.
#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema and its fast path.
    pub graphql: Executor,
    /// The catalog store.
    pub store: Store,
    /// Request limits (the schema enforces the rest of them).
    pub limits: Limits,
    /// Serve the SDL at `/schema.graphql` (follows the introspection switch).
    pub introspection: bool,
    /// Cancelled when the server shuts down: long-lived streams
    /// (WebSockets, server-sent events) close on it.
    pub shutdown: CancellationToken,
    /// Cancelled when a shutdown starts, before connections are refused:
    /// `/readyz` answers 503 from then on.
    pub draining: CancellationToken,
    /// Verifies bearer tokens.
    pub auth: Arc<Authenticator>,
    /// Origins allowed to call the API from a browser (exact matches);
    /// none means same-origin only.
    pub cors_origins: Vec<HeaderValue>,
    /// Per-caller request rate and complexity budget; none when
    /// authentication is off.
    pub rate_limits: Option<Arc<RateLimits>>,
}

impl AppState {
    /// The state for `store` with `options`, its schema built from them.
    pub fn new(store: Store, options: SchemaOptions) -> Self {
        AppState {
            graphql: Executor::new(Some(store.clone()), options),
            store,
            limits: options.limits,
            introspection: options.introspection,
            shutdown: CancellationToken::new(),
            draining: CancellationToken::new(),
            auth: Arc::new(Authenticator::open()),
            cors_origins: Vec::new(),
            rate_limits: None,
        }
    }

    /// The caller of a request with these headers from `peer`, its
    /// request counted against its rate; a ready response when refused.
    fn caller(
        &self,
        media: MediaType,
        id: &str,
        headers: &HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Caller, Box<Response>> {
        let principal = self
            .auth
            .authenticate(bearer_of(headers))
            .map_err(|e| Box::new(unauthenticated(media, id, &e)))?;
        let budget = match &self.rate_limits {
            Some(limits) => {
                let key = crate::ratelimit::caller_key(&principal, peer);
                limits.check_request(&key).map_err(|refusal| {
                    rate_limited(media, id, &refusal.message, refusal.retry_after_secs())
                })?;
                Some(Budget {
                    limits: limits.clone(),
                    key,
                })
            }
            None => None,
        };
        Ok(Caller {
            scoped: crate::graphql::scoped_store(&self.store, &principal),
            principal,
            budget,
            auth: self.auth.clone(),
        })
    }
}

/// Who a request runs as, and the budget it is charged to.
pub(crate) struct Caller {
    principal: Principal,
    budget: Option<Budget>,
    /// The store restricted to the caller's scope, if it has one.
    scoped: Option<Store>,
    /// The server's authenticator (token mutations sign and revoke with it).
    auth: Arc<Authenticator>,
}

impl Caller {
    /// `request` with the caller's data attached.
    fn attach(&self, request: async_graphql::Request) -> async_graphql::Request {
        let request = crate::graphql::as_caller(request, &self.principal, self.scoped.as_ref())
            .data(self.auth.clone());
        match &self.budget {
            Some(budget) => request.data(budget.clone()),
            None => request,
        }
    }
}

/// 429 with `Retry-After`.
fn rate_limited(media: MediaType, id: &str, message: &str, retry_after_secs: u64) -> Response {
    let response = request_error(
        StatusCode::TOO_MANY_REQUESTS,
        media,
        id,
        codes::RATE_LIMITED,
        message,
    );
    with_retry_after(response, retry_after_secs)
}

/// `response` as a 429 asking the client to wait `seconds` (at least 1).
fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The `Retry-After` of a response refused by the complexity budget.
fn budget_refusal(response: &async_graphql::Response) -> Option<u64> {
    if response.data != async_graphql::Value::Null {
        return None;
    }
    let error = response
        .errors
        .iter()
        .find(|e| code_of(e).as_deref() == Some(codes::RATE_LIMITED))?;
    match error.extensions.as_ref()?.get("retryAfter")? {
        async_graphql::Value::Number(n) => n.as_u64(),
        _ => Some(60),
    }
}

/// The bearer token of a request, if it sends one.
pub(crate) fn bearer_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer)
}

/// 401 for a request whose token is missing or does not verify.
fn unauthenticated(media: MediaType, id: &str, error: &AuthError) -> Response {
    let mut response = request_error(
        StatusCode::UNAUTHORIZED,
        media,
        id,
        "UNAUTHENTICATED",
        error.public_message(),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Kernel send buffer of each connection. A fixed size (rather than
/// autotuning up to megabytes) bounds what a client that stops reading can
/// have queued, so a stalled subscriber is noticed and lags (SPEC §13)
/// instead of hiding thousands of events in the socket.
const SEND_BUFFER_BYTES: usize = 128 * 1024;

/// The listener every server socket is accepted through: no Nagle delay
/// (subscription events are small writes) and a bounded send buffer.
pub fn listener(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    listener.tap_io(tune_socket as fn(&mut tokio::net::TcpStream))
}

fn tune_socket(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    if let Err(e) = socket2::SockRef::from(&*tcp).set_send_buffer_size(SEND_BUFFER_BYTES) {
        tracing::debug!(error = %e, "cannot set the send buffer size");
    }
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.cors_origins);
    let router = Router::new()
        .route("/graphql", get(graphql_get_or_upgrade).post(graphql_post))
        .route("/schema.graphql", get(schema_sdl))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(prometheus_metrics))
        .route("/readyz", get(readyz))
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// CORS for third-party portals (SPEC §12): an exact allow-list of
/// origins, never credentials (the API needs no cookies; tokens travel in
/// `Authorization`).
fn cors_layer(origins: &[HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let request_id = HeaderName::from_static("x-request-id");
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                request_id.clone(),
            ])
            .expose_headers([request_id])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Parses `--cors-origin` values: `scheme://host[:port]`, nothing else.
pub fn parse_origins(values: &[String]) -> anyhow::Result<Vec<HeaderValue>> {
    values
        .iter()
        .map(|v| {
            let v = v.trim();
            let (scheme, rest) = v
                .split_once("://")
                .ok_or_else(|| anyhow::anyhow!("--cors-origin {v:?} is not an origin like https://portal.example.com"))?;
            anyhow::ensure!(
                matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/') && v != "*",
                "--cors-origin {v:?} is not an origin like https://portal.example.com (no path, no wildcard)"
            );
            HeaderValue::from_str(v).map_err(|_| anyhow::anyhow!("--cors-origin {v:?} is not a valid header value"))
        })
        .collect()
}

/// Which media type a response is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    GraphqlResponseJson,
    Json,
}

impl MediaType {
    fn header(self) -> HeaderValue {
        match self {
            MediaType::GraphqlResponseJson => {
                HeaderValue::from_static("application/graphql-response+json; charset=utf-8")
            }
            MediaType::Json => HeaderValue::from_static("application/json; charset=utf-8"),
        }
    }
}

/// Picks the response type from `Accept`: `application/graphql-response+json`
/// when listed, else `application/json` for `application/json`, `*/*`,
/// `application/*` or no header; `None` (406) for anything else.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::Json);
    };
    let mut json = false;
    for part in accept.split(',') {
        let mut params = part.split(';');
        let media = params
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let refused = params.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        if refused {
            continue;
        }
        match media.as_str() {
            GRAPHQL_RESPONSE_JSON => return Some(MediaType::GraphqlResponseJson),
            "application/json" | "*/*" | "application/*" => json = true,
            _ => {}
        }
    }
    json.then_some(MediaType::Json)
}

/// The request id: a sane `x-request-id` from the client, or a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn respond(
    status: StatusCode,
    media: MediaType,
    id: &str,
    body: &impl serde::Serialize,
) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = (status, [(header::CONTENT_TYPE, media.header())], bytes).into_response();
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// A response for a request that never reached GraphQL.
fn request_error(
    status: StatusCode,
    media: MediaType,
    id: &str,
    code: &str,
    message: &str,
) -> Response {
    let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": code, "requestId": id}}]});
    respond(status, media, id, &body)
}

/// 406: the client accepts neither response type.
fn not_acceptable(id: &str) -> Response {
    request_error(
        StatusCode::NOT_ACCEPTABLE,
        MediaType::Json,
        id,
        "NOT_ACCEPTABLE",
        "Accept must allow application/graphql-response+json or application/json",
    )
}

/// Codes of errors that mean the request was rejected before execution.
fn is_request_error(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(codes::PARSE_FAILED | codes::VALIDATION_FAILED | codes::TOO_COMPLEX)
    )
}

async fn execute_one(
    state: &AppState,
    id: &str,
    caller: &Caller,
    request: async_graphql::Request,
) -> async_graphql::Response {
    use tracing::Instrument;
    let request = caller.attach(request);
    // Every log line of the request carries its id (and who asked). The
    // span is at ERROR level so that no `STRATUM_LOG` filter drops it: a
    // span logs nothing itself, it only labels the lines inside it.
    let span = tracing::error_span!(target: "stratum::request", "request", request_id = %id, subject = %caller.principal.subject);
    let mut response = match tokio::time::timeout(
        state.limits.timeout,
        state
            .graphql
            .execute(request, caller.budget.as_ref())
            .instrument(span),
    )
    .await
    {
        Ok(response) => response,
        Err(_) => async_graphql::Response::from_errors(vec![with_code(
            ServerError::new(
                format!(
                    "the request ran longer than {} s",
                    state.limits.timeout.as_secs()
                ),
                None,
            ),
            codes::TIMEOUT,
        )]),
    };
    for error in &mut response.errors {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("requestId", id);
    }
    response
}

/// The status of a single response: with `graphql-response+json`, a
/// request rejected before execution is a 400 without `data`; everything
/// else (and every `application/json` response) is a 200.
fn status_of(media: MediaType, response: &async_graphql::Response) -> StatusCode {
    let rejected = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response
            .errors
            .iter()
            .all(|e| is_request_error(code_of(e).as_deref()));
    if media == MediaType::GraphqlResponseJson && rejected {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// A response as sent: whole, or without `data` when the request never ran.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Sent<'a> {
    Ran(&'a async_graphql::Response),
    Rejected {
        errors: &'a [ServerError],
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
    },
}

/// A response with its status, leaving `data` out when the request never
/// ran; serialized straight to the body, not through a `Value`.
fn body_of(media: MediaType, response: &async_graphql::Response) -> (StatusCode, Sent<'_>) {
    let status = status_of(media, response);
    let sent = if status == StatusCode::BAD_REQUEST {
        Sent::Rejected {
            errors: &response.errors,
            extensions: &response.extensions,
        }
    } else {
        Sent::Ran(response)
    };
    (status, sent)
}

async fn execute(
    state: &AppState,
    media: MediaType,
    id: &str,
    caller: &Caller,
    batch: BatchRequest,
) -> Response {
    match batch {
        BatchRequest::Single(request) => {
            let response = execute_one(state, id, caller, request).await;
            let (status, body) = body_of(media, &response);
            let reply = respond(status, media, id, &body);
            match budget_refusal(&response) {
                Some(seconds) => with_retry_after(reply, seconds),
                None => reply,
            }
        }
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(execute_one(state, id, caller, request).await);
            }
            let bodies: Vec<Sent> = responses.iter().map(|r| body_of(media, r).1).collect();
            respond(StatusCode::OK, media, id, &bodies)
        }
    }
}

async fn graphql_post(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let id = request_id(&headers);
    let event_stream = wants_event_stream(&headers);
    let Some(media) = negotiate(&headers).or(event_stream.then_some(MediaType::Json)) else {
        return not_acceptable(&id);
    };
    let caller = match state.caller(media, &id, &headers, peer.map(|p| p.0.0.ip())) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Only JSON bodies: a "simple" cross-site request can never run an operation.
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            &id,
            "UNSUPPORTED_MEDIA_TYPE",
            "POST /graphql requires Content-Type: application/json",
        );
    }
    let bytes = match axum::body::to_bytes(body, state.limits.body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return request_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                media,
                &id,
                codes::TOO_COMPLEX,
                &format!(
                    "the request body is larger than the limit of {} bytes",
                    state.limits.body_bytes
                ),
            );
        }
    };
    let batch = match serde_json::from_slice::<BatchRequest>(&bytes) {
        Ok(batch) => batch,
        Err(e) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                media,
                &id,
                codes::PARSE_FAILED,
                &format!(
                    "the body is not a GraphQL request: {e} (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            );
        }
    };
    if let BatchRequest::Batch(requests) = &batch {
        if requests.is_empty() {
            return request_error(
                StatusCode::BAD_REQUEST,
                media,
                &id,
                codes::PARSE_FAILED,
                "an empty batch",
            );
        }
        if requests.len() > state.limits.batch {
            return request_error(
                StatusCode::BAD_REQUEST,
                media,
                &id,
                codes::TOO_COMPLEX,
                &format!(
                    "the batch has {} operations; the limit is {}",
                    requests.len(),
                    state.limits.batch
                ),
            );
        }
    }
    if event_stream {
        return match batch {
            BatchRequest::Single(request) => {
                let request = caller.attach(request);
                event_stream_response(state, id, request)
            }
            BatchRequest::Batch(_) => request_error(
                StatusCode::BAD_REQUEST,
                media,
                &id,
                codes::PARSE_FAILED,
                "an event stream carries one operation, not a batch",
            ),
        };
    }
    execute(&state, media, &id, &caller, batch).await
}

/// True when the client asks for `text/event-stream` (GraphQL over SSE).
fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept
                .split(',')
                .any(|part| part.split(';').next().map(str::trim) == Some("text/event-stream"))
        })
}

/// GraphQL over server-sent events ("distinct connections" mode of the
/// graphql-sse protocol): one `next` event per result, then `complete`.
/// For clients that cannot open a WebSocket.
fn event_stream_response(state: AppState, id: String, request: async_graphql::Request) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;
    let request_id = id.clone();
    let results = state
        .graphql
        .schema
        .execute_stream(request)
        .map(move |mut response| {
            for error in &mut response.errors {
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("requestId", request_id.as_str());
            }
            Event::default()
                .event("next")
                .json_data(&response)
                .unwrap_or_else(|_| Event::default().event("next").data("{}"))
        });
    let events = results
        .chain(futures_util::stream::once(async {
            Event::default().event("complete").data("")
        }))
        .take_until(state.shutdown.clone().cancelled_owned())
        .map(Ok::<_, std::convert::Infallible>);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(crate::ws::PING_INTERVAL))
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

#[derive(Deserialize)]
struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// GET `/graphql`: a WebSocket upgrade, GraphiQL for a browser, or a query.
async fn graphql_get_or_upgrade(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let upgrading = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if upgrading {
        let id = request_id(&parts.headers);
        return match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(ws) => {
                let token = bearer_of(&parts.headers).map(str::to_string);
                let peer = parts
                    .extensions
                    .get::<ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| c.0.ip());
                crate::ws::upgrade(ws, state, id, token, peer)
            }
            Err(rejection) => rejection.into_response(),
        };
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    match Query::<GetParams>::from_request_parts(&mut parts, &state).await {
        Ok(Query(params)) => graphql_get(state, parts.headers, peer, params).await,
        Err(rejection) => {
            let id = request_id(&parts.headers);
            request_error(
                StatusCode::BAD_REQUEST,
                negotiate(&parts.headers).unwrap_or(MediaType::Json),
                &id,
                codes::PARSE_FAILED,
                &rejection.body_text(),
            )
        }
    }
}

async fn graphql_get(
    state: AppState,
    headers: HeaderMap,
    peer: Option<std::net::IpAddr>,
    params: GetParams,
) -> Response {
    let id = request_id(&headers);
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if params.query.is_none() && params.extensions.is_none() && wants_html {
        return Html(GraphiQLSource::build().endpoint("/graphql").finish()).into_response();
    }
    let Some(media) = negotiate(&headers) else {
        return not_acceptable(&id);
    };
    let caller = match state.caller(media, &id, &headers, peer) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let mut request = async_graphql::Request::new(params.query.clone().unwrap_or_default());
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    for (what, raw) in [
        ("variables", &params.variables),
        ("extensions", &params.extensions),
    ] {
        let Some(raw) = raw else { continue };
        let parsed = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw);
        let Ok(map) = parsed else {
            return request_error(
                StatusCode::BAD_REQUEST,
                media,
                &id,
                codes::PARSE_FAILED,
                &format!("{what} must be a JSON object"),
            );
        };
        if what == "variables" {
            request = request.variables(async_graphql::Variables::from_json(
                serde_json::Value::Object(map),
            ));
        } else {
            for (k, v) in map {
                if let Ok(v) = async_graphql::Value::from_json(v) {
                    request.extensions.insert(k, v);
                }
            }
        }
    }
    if params.query.is_none() && params.extensions.is_none() {
        return request_error(
            StatusCode::BAD_REQUEST,
            media,
            &id,
            codes::PARSE_FAILED,
            "missing query parameter",
        );
    }
    // GET is for queries only.
    if let Ok(doc) = async_graphql::parser::parse_query(&request.query) {
        let is_mutation = doc.operations.iter().any(|(name, op)| {
            let selected = match (&request.operation_name, name) {
                (Some(wanted), Some(n)) => wanted.as_str() == n.as_str(),
                (Some(_), None) => false,
                (None, _) => true,
            };
            selected && op.node.ty != async_graphql::parser::types::OperationType::Query
        });
        if is_mutation {
            let mut response = request_error(
                StatusCode::METHOD_NOT_ALLOWED,
                media,
                &id,
                "METHOD_NOT_ALLOWED",
                "only queries may be sent with GET; use POST",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
    }
    execute(&state, media, &id, &caller, BatchRequest::Single(request)).await
}

/// The SDL, for the same callers as introspection: authenticated ones
/// (anonymous access counts), unless introspection is off.
async fn schema_sdl(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.introspection {
        return (
            StatusCode::NOT_FOUND,
            "introspection is disabled on this server",
        )
            .into_response();
    }
    if let Err(e) = state.auth.authenticate(bearer_of(&headers)) {
        return unauthenticated(MediaType::Json, &request_id(&headers), &e);
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], sdl()).into_response()
}

/// `/metrics` in the Prometheus text format (no item data: counts,
/// latencies and operation names only, so it is served without a token,
/// like the probes).
async fn prometheus_metrics(State(state): State<AppState>) -> Response {
    match crate::metrics::render(&state.store) {
        Some(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not recorded by this process",
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(1), state.store.ping()).await;
    let db_ok = matches!(ping, Ok(Ok(())));
    let migrations_ok = if db_ok {
        matches!(state.store.migration_status().await, Ok(list) if list.iter().all(|(_, applied)| *applied))
    } else {
        false
    };
    let shutting_down = state.draining.is_cancelled() || state.shutdown.is_cancelled();
    let body = serde_json::json!({"database": db_ok, "migrations": migrations_ok, "shuttingDown": shutting_down});
    let status = if db_ok && migrations_ok && !shutting_down {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<MediaType> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).expect("header"),
        );
        negotiate(&headers)
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(MediaType::Json));
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            Some(MediaType::GraphqlResponseJson)
        );
        assert_eq!(accept("application/json"), Some(MediaType::Json));
        assert_eq!(accept("*/*"), Some(MediaType::Json));
        assert_eq!(accept("text/html"), None);
        assert_eq!(accept("application/json;q=0"), None);
    }
}
