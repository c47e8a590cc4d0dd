//! GraphQL over WebSocket on `/graphql` (SPEC §13 "Transport"): the
//! `graphql-transport-ws` protocol and the legacy `graphql-ws`
//! (subscriptions-transport-ws) one, with their close codes, an init
//! deadline, keepalive pings, a silence timeout, and a cap on the
//! subscriptions of one connection.
//!
//! Each operation runs in a task of its own that writes into the
//! connection's bounded outbox; one writer task drains the outbox into the
//! socket. A client that stops reading stalls only its own operations,
//! whose subscribers then lag (SPEC §13 "Subscribers").

use std::collections::HashMap;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::auth::Principal;
use crate::graphql::guard::{code_of, codes};
use crate::http::AppState;

/// The protocol names, in order of preference.
pub const PROTOCOLS: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];
/// How often the server pings (`ka` on the legacy protocol).
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// How long a connection may stay silent before it is dropped.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the reader loop waits to queue a control message.
const CONTROL_SEND_WAIT: Duration = Duration::from_secs(1);
/// Messages queued for the socket per connection.
const OUTBOX: usize = 32;
/// Socket buffers: small, so idle connections stay cheap.
const SOCKET_BUFFER: usize = 8 * 1024;
/// Largest message a client may send.
const MAX_MESSAGE: usize = 256 * 1024;

/// Which subprotocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `graphql-transport-ws` (the graphql-ws library).
    Transport,
    /// `graphql-ws` (the legacy subscriptions-transport-ws library).
    Legacy,
}

/// Close codes of `graphql-transport-ws`, used for both protocols.
mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const TIMEOUT: u16 = 3008;
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
}

/// Upgrades the request to a GraphQL WebSocket connection.
/// `header_token` is the upgrade request's bearer token; a token in the
/// `connection_init` payload takes precedence (browsers cannot set headers
/// on a WebSocket).
pub fn upgrade(
    ws: WebSocketUpgrade,
    state: AppState,
    request_id: String,
    header_token: Option<String>,
    peer: Option<std::net::IpAddr>,
) -> Response {
    let ws = ws
        .protocols(PROTOCOLS)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE);
    let protocol = match ws.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some("graphql-ws") => Protocol::Legacy,
        _ => Protocol::Transport,
    };
    ws.on_upgrade(move |socket| run(socket, protocol, state, request_id, header_token, peer))
}

/// What the reader loop does after a client message.
enum Flow {
    Continue,
    Close(u16, String),
}

struct Connection {
    protocol: Protocol,
    state: AppState,
    request_id: String,
    outbox: mpsc::Sender<Message>,
    finished: mpsc::UnboundedSender<(String, u64)>,
    operations: HashMap<String, (u64, JoinHandle<()>)>,
    next_task: u64,
    initialised: bool,
    header_token: Option<String>,
    /// Who the connection acts for, once initialised.
    principal: Option<Principal>,
    /// The store restricted to the principal's scope, if it has one.
    scoped: Option<stratum_domain::Store>,
    /// The client's address (the rate key of anonymous callers).
    peer: Option<std::net::IpAddr>,
    /// The caller's rate and complexity budget, once initialised (when the
    /// server limits rates).
    budget: Option<crate::ratelimit::Budget>,
    /// The caller's connection slot, given back when the connection ends.
    _slot: Option<crate::ratelimit::ConnectionSlot>,
}

fn text(value: Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

fn close_frame(code: u16, reason: &str) -> Message {
    // A close reason is limited to 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    }))
}

async fn run(
    socket: WebSocket,
    protocol: Protocol,
    state: AppState,
    request_id: String,
    header_token: Option<String>,
    peer: Option<std::net::IpAddr>,
) {
    let _open = crate::metrics::Held::new("stratum_websocket_connections");
    let (mut sink, mut incoming) = socket.split();
    let (outbox, mut queued) = mpsc::channel::<Message>(OUTBOX);
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let (finished, mut finished_rx) = mpsc::unbounded_channel();
    let shutdown = state.shutdown.clone();
    let mut conn = Connection {
        protocol,
        state,
        request_id,
        outbox,
        finished,
        operations: HashMap::new(),
        next_task: 0,
        initialised: false,
        header_token,
        principal: None,
        scoped: None,
        peer,
        budget: None,
        _slot: None,
    };
    let init_deadline = tokio::time::sleep(conn.state.limits.connection_init_timeout);
    tokio::pin!(init_deadline);
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut last_heard = Instant::now();
    let ending = loop {
        tokio::select! {
            message = incoming.next() => {
                let Some(Ok(message)) = message else { break None };
                last_heard = Instant::now();
                match conn.handle(message).await {
                    Flow::Continue => {}
                    Flow::Close(code, reason) => break Some((code, reason)),
                }
            }
            Some((id, task)) = finished_rx.recv() => {
                if conn.operations.get(&id).is_some_and(|(t, _)| *t == task) {
                    conn.operations.remove(&id);
                }
            }
            _ = &mut init_deadline, if !conn.initialised => {
                break Some((close::INIT_TIMEOUT, "Connection initialisation timeout".into()));
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= SILENCE_TIMEOUT {
                    break Some((close::TIMEOUT, format!("no message for {} s", SILENCE_TIMEOUT.as_secs())));
                }
                if conn.initialised {
                    let message = match conn.protocol {
                        Protocol::Transport => json!({"type": "ping"}),
                        Protocol::Legacy => json!({"type": "ka"}),
                    };
                    // A full outbox already means the client is behind; skip this ping.
                    let _ = conn.outbox.try_send(text(message));
                }
            }
            _ = token_expiry(conn.principal.as_ref().and_then(|p| p.expires_at)) => {
                break Some((close::UNAUTHORIZED, "the token expired".into()));
            }
            _ = shutdown.cancelled() => {
                break Some((close::GOING_AWAY, "server shutting down".into()));
            }
        }
    };
    for (_, (_, task)) in conn.operations.drain() {
        task.abort();
    }
    if let Some((code, reason)) = ending {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            conn.outbox.send(close_frame(code, &reason)),
        )
        .await;
    }
    drop(conn);
    // A client that stopped reading does not hold the connection open.
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
}

impl Connection {
    /// Queues a control message. A client that lets its outbox fill is not
    /// reading: after a second the message is dropped rather than letting
    /// that client stall its own connection loop (and with it the init
    /// deadline, pings and shutdown).
    async fn send(&self, value: Value) {
        let _ = tokio::time::timeout(CONTROL_SEND_WAIT, self.outbox.send(text(value))).await;
    }

    async fn handle(&mut self, message: Message) -> Flow {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return Flow::Close(
                    close::BAD_REQUEST,
                    "binary messages are not supported".into(),
                );
            }
            Message::Close(_) => return Flow::Close(close::NORMAL, String::new()),
            Message::Ping(_) | Message::Pong(_) => return Flow::Continue,
        };
        let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(text.as_str()) else {
            return Flow::Close(
                close::BAD_REQUEST,
                "Invalid message received: not a JSON object".into(),
            );
        };
        let kind = match message.get("type").and_then(Value::as_str) {
            Some(kind) => kind.to_string(),
            None => {
                return Flow::Close(
                    close::BAD_REQUEST,
                    "Invalid message received: no type".into(),
                );
            }
        };
        let id = message
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let payload = message.remove("payload");
        match (self.protocol, kind.as_str()) {
            (_, "connection_init") => self.init(payload).await,
            (Protocol::Transport, "ping") => {
                self.send(json!({"type": "pong"})).await;
                Flow::Continue
            }
            (Protocol::Transport, "pong") => Flow::Continue,
            (Protocol::Transport, "subscribe") | (Protocol::Legacy, "start") => {
                let Some(id) = id.filter(|id| !id.is_empty()) else {
                    return Flow::Close(
                        close::BAD_REQUEST,
                        format!("Invalid message received: {kind} needs an id"),
                    );
                };
                self.subscribe(id, payload).await
            }
            (Protocol::Transport, "complete") | (Protocol::Legacy, "stop") => {
                let Some(id) = id else {
                    return Flow::Close(
                        close::BAD_REQUEST,
                        format!("Invalid message received: {kind} needs an id"),
                    );
                };
                if let Some((_, task)) = self.operations.remove(&id) {
                    task.abort();
                    if self.protocol == Protocol::Legacy {
                        self.send(json!({"type": "complete", "id": id})).await;
                    }
                }
                Flow::Continue
            }
            (Protocol::Legacy, "connection_terminate") => Flow::Close(close::NORMAL, String::new()),
            (_, other) => Flow::Close(
                close::BAD_REQUEST,
                format!("Invalid message received: unknown type '{other}'"),
            ),
        }
    }

    async fn init(&mut self, payload: Option<Value>) -> Flow {
        if self.initialised {
            return Flow::Close(
                close::TOO_MANY_INITS,
                "Too many initialisation requests".into(),
            );
        }
        if !matches!(payload, None | Some(Value::Null) | Some(Value::Object(_))) {
            return Flow::Close(
                close::BAD_REQUEST,
                "Invalid message received: the connection_init payload must be an object".into(),
            );
        }
        let token = payload
            .as_ref()
            .and_then(init_token)
            .or(self.header_token.clone());
        match self.state.auth.authenticate(token.as_deref()) {
            Ok(principal) => {
                if let Some(limits) = &self.state.rate_limits {
                    let key = crate::ratelimit::caller_key(&principal, self.peer);
                    let Some(slot) = limits.open_connection(&key) else {
                        return Flow::Close(
                            close::TOO_MANY_INITS,
                            format!(
                                "Too many connections: at most {} per token",
                                limits.settings().connections
                            ),
                        );
                    };
                    self._slot = Some(slot);
                    self.budget = Some(crate::ratelimit::Budget {
                        limits: limits.clone(),
                        key,
                    });
                }
                self.scoped = crate::graphql::scoped_store(&self.state.store, &principal);
                self.principal = Some(principal);
            }
            Err(e) => {
                if self.protocol == Protocol::Legacy {
                    self.send(json!({"type": "connection_error", "payload": {"message": e.public_message()}}))
                        .await;
                }
                return Flow::Close(close::UNAUTHORIZED, "Unauthorized".into());
            }
        }
        self.initialised = true;
        self.send(json!({"type": "connection_ack"})).await;
        if self.protocol == Protocol::Legacy {
            self.send(json!({"type": "ka"})).await;
        }
        Flow::Continue
    }

    /// Refuses an operation without closing the connection.
    async fn refuse(&self, id: &str, code: &str, message: &str) {
        let error =
            json!({"message": message, "extensions": {"code": code, "requestId": self.request_id}});
        self.send(json!({"type": "error", "id": id, "payload": [error]}))
            .await;
    }

    async fn subscribe(&mut self, id: String, payload: Option<Value>) -> Flow {
        if !self.initialised {
            return Flow::Close(close::UNAUTHORIZED, "Unauthorized".into());
        }
        let request: async_graphql::Request = match payload.map(serde_json::from_value) {
            Some(Ok(request)) => request,
            Some(Err(e)) => {
                return Flow::Close(close::BAD_REQUEST, format!("Invalid message received: {e}"));
            }
            None => {
                return Flow::Close(
                    close::BAD_REQUEST,
                    "Invalid message received: no payload".into(),
                );
            }
        };
        if self.operations.contains_key(&id) {
            if self.protocol == Protocol::Legacy {
                self.refuse(
                    &id,
                    codes::BAD_REQUEST,
                    &format!("an operation with id '{id}' is already running"),
                )
                .await;
                return Flow::Continue;
            }
            return Flow::Close(
                close::DUPLICATE,
                format!("Subscriber for {id} already exists"),
            );
        }
        let limit = self.state.limits.subscriptions_per_connection;
        if self.operations.len() >= limit {
            self.refuse(
                &id,
                codes::TOO_COMPLEX,
                &format!(
                    "at most {limit} subscriptions may run on one connection; complete one first"
                ),
            )
            .await;
            return Flow::Continue;
        }
        if operation_type(&request) == Some(OperationType::Mutation) {
            self.refuse(
                &id,
                codes::METHOD_NOT_ALLOWED,
                "mutations are not accepted over WebSocket; send them with POST",
            )
            .await;
            return Flow::Continue;
        }
        if let Some(budget) = &self.budget
            && let Err(refusal) = budget.limits.check_request(&budget.key)
        {
            self.refuse(&id, codes::RATE_LIMITED, &refusal.message)
                .await;
            return Flow::Continue;
        }
        self.next_task += 1;
        let task = self.next_task;
        let request = match &self.principal {
            Some(principal) => crate::graphql::as_caller(request, principal, self.scoped.as_ref()),
            None => request,
        };
        let request = match &self.budget {
            Some(budget) => request.data(budget.clone()),
            None => request,
        };
        // Every log line of the operation carries the connection's request
        // id and the operation's id.
        // (At ERROR level so no filter drops it; see `http::execute_one`.)
        let span = tracing::error_span!(target: "stratum::request", "operation", request_id = %self.request_id, operation_id = %id);
        let handle = tokio::spawn(tracing::Instrument::instrument(
            operation(
                self.state.clone(),
                self.protocol,
                self.request_id.clone(),
                id.clone(),
                task,
                request,
                self.outbox.clone(),
                self.finished.clone(),
            ),
            span,
        ));
        self.operations.insert(id, (task, handle));
        Flow::Continue
    }
}

/// The bearer token of a `connection_init` payload: `Authorization`
/// (`Bearer …` or the bare token), `authorization`, `token` or `authToken`.
fn init_token(payload: &Value) -> Option<String> {
    let raw = ["Authorization", "authorization", "token", "authToken"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(Value::as_str))?;
    Some(crate::auth::bearer(raw).unwrap_or(raw).trim().to_string())
}

/// Resolves when the connection's token expires; never for anonymous or
/// open access.
async fn token_expiry(expires_at: Option<chrono::DateTime<chrono::Utc>>) {
    let Some(at) = expires_at else {
        return std::future::pending().await;
    };
    let left = (at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left).await;
}

/// The operation type a request would run, if its document parses.
fn operation_type(request: &async_graphql::Request) -> Option<OperationType> {
    let doc = async_graphql::parser::parse_query(&request.query).ok()?;
    let mut operations = doc.operations.iter();
    match &request.operation_name {
        Some(wanted) => operations
            .find(|(name, _)| name.is_some_and(|n| n.as_str() == wanted.as_str()))
            .map(|(_, op)| op.node.ty),
        // Without a name only a single operation is runnable; validation
        // rejects the rest.
        None if operations.len() == 1 => operations.next().map(|(_, op)| op.node.ty),
        None => None,
    }
}

/// Runs one operation, writing its results into the outbox.
#[expect(clippy::too_many_arguments, reason = "one task's whole context")]
async fn operation(
    state: AppState,
    protocol: Protocol,
    request_id: String,
    id: String,
    task: u64,
    request: async_graphql::Request,
    outbox: mpsc::Sender<Message>,
    finished: mpsc::UnboundedSender<(String, u64)>,
) {
    let _running = crate::metrics::Held::new("stratum_subscriptions_active");
    let mut stream = state.graphql.schema.execute_stream(request);
    let mut first = true;
    let mut failed = false;
    while let Some(mut response) = stream.next().await {
        for error in &mut response.errors {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("requestId", request_id.as_str());
        }
        // Nothing ran: the operation was refused (parse, validation, a bad
        // filter or an expired cursor). A lagged notice is a result.
        let refused = first
            && response.data == async_graphql::Value::Null
            && !response.errors.is_empty()
            && !response
                .errors
                .iter()
                .any(|e| code_of(e).as_deref() == Some("LAGGED"));
        first = false;
        let message = if refused {
            failed = true;
            json!({"type": "error", "id": id, "payload": response.errors})
        } else {
            let kind = match protocol {
                Protocol::Transport => "next",
                Protocol::Legacy => "data",
            };
            json!({"type": kind, "id": id, "payload": response})
        };
        if outbox.send(text(message)).await.is_err() {
            return;
        }
        if failed {
            break;
        }
    }
    if !failed {
        let _ = outbox
            .send(text(json!({"type": "complete", "id": id})))
            .await;
    }
    let _ = finished.send((id, task));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_at_the_frame_limit() {
        let Message::Close(Some(frame)) = close_frame(4400, &"é".repeat(100)) else {
            panic!("not a close frame");
        };
        assert!(frame.reason.as_str().len() <= 123);
        assert_eq!(frame.code, 4400);
    }

    #[test]
    fn operation_types_follow_the_operation_name() {
        let both = "query A { a } mutation B { b }";
        let named = |name: &str| async_graphql::Request::new(both).operation_name(name);
        assert_eq!(operation_type(&named("A")), Some(OperationType::Query));
        assert_eq!(operation_type(&named("B")), Some(OperationType::Mutation));
        assert_eq!(operation_type(&named("C")), None);
        assert_eq!(operation_type(&async_graphql::Request::new(both)), None);
        assert_eq!(
            operation_type(&async_graphql::Request::new("mutation { b }")),
            Some(OperationType::Mutation)
        );
        assert_eq!(operation_type(&async_graphql::Request::new("{")), None);
    }
}
