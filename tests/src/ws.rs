//! A GraphQL-over-WebSocket test client (both subprotocols) for the
//! subscription tests and benchmarks: real sockets, keepalives answered,
//! messages of other operations stashed while waiting for one.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
pub use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a client waits for one message.
pub const WAIT: Duration = Duration::from_secs(20);

/// What a client reads off the socket.
#[derive(Debug)]
pub enum Incoming {
    /// A JSON protocol message.
    Json(Value),
    /// A close frame: code and reason (1006 when the socket just ended).
    Closed(u16, String),
}

pub struct Client {
    /// The socket.
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Messages read while waiting for another operation's.
    pub stash: Vec<Value>,
}

/// The upgrade request for `/graphql` offering `protocol`.
pub fn request(
    addr: SocketAddr,
    protocol: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        protocol.parse().expect("protocol header"),
    );
    request
}

impl Client {
    pub async fn connect(addr: SocketAddr, protocol: &str) -> Client {
        let (socket, response) = tokio_tungstenite::connect_async(request(addr, protocol))
            .await
            .expect("connect");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol)
        );
        Client {
            socket,
            stash: Vec::new(),
        }
    }

    /// A client for a prepared upgrade request (extra headers, say).
    pub async fn connect_request(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Client {
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        Client {
            socket,
            stash: Vec::new(),
        }
    }

    /// A client whose socket receive buffer is tiny, so it stalls the
    /// server quickly when it stops reading.
    pub async fn connect_small(addr: SocketAddr, protocol: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let stream = socket.connect(addr).await.expect("tcp connect");
        let (socket, _) =
            tokio_tungstenite::client_async(request(addr, protocol), MaybeTlsStream::Plain(stream))
                .await
                .expect("handshake");
        Client {
            socket,
            stash: Vec::new(),
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("send");
    }

    /// The next message that is not a keepalive.
    pub async fn recv(&mut self) -> Incoming {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a message in time");
            match next {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON message");

                    match value["type"].as_str() {
                        Some("ka") | Some("pong") => continue,
                        Some("ping") => {
                            self.send(json!({"type": "pong"})).await;
                            continue;
                        }
                        _ => return Incoming::Json(value),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return frame
                        .map(|f| Incoming::Closed(f.code.into(), f.reason.to_string()))
                        .unwrap_or(Incoming::Closed(1005, String::new()));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Incoming::Closed(1006, e.to_string()),
                None => return Incoming::Closed(1006, "eof".into()),
            }
        }
    }

    pub async fn recv_json(&mut self) -> Value {
        match self.recv().await {
            Incoming::Json(v) => v,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The next message for operation `id`, stashing others.
    pub async fn recv_for(&mut self, id: &str) -> Value {
        if let Some(pos) = self.stash.iter().position(|m| m["id"] == id) {
            return self.stash.remove(pos);
        }
        loop {
            let message = self.recv_json().await;
            if message["id"] == id {
                return message;
            }
            self.stash.push(message);
        }
    }

    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.recv().await {
                Incoming::Closed(code, reason) => return (code, reason),
                Incoming::Json(_) => continue,
            }
        }
    }

    pub async fn init(&mut self) {
        self.send(json!({"type": "connection_init", "payload": {}}))
            .await;
        assert_eq!(self.recv_json().await["type"], "connection_ack");
    }

    pub async fn subscribe(&mut self, protocol: &str, id: &str, query: &str, variables: Value) {
        let kind = if protocol == "graphql-ws" {
            "start"
        } else {
            "subscribe"
        };
        self.send(
            json!({"type": kind, "id": id, "payload": {"query": query, "variables": variables}}),
        )
        .await;
    }
}
