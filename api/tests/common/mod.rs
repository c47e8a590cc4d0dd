//! Shared by the API test binaries that serve an in-process `AppState`.

use std::net::SocketAddr;

use stratum_api::http::{AppState, router};

/// Serves `state` on a fresh loopback port, with peer addresses (for the
/// per-IP limits), through the same listener as `stratum serve`.
pub async fn spawn(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            stratum_api::http::listener(listener),
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}
