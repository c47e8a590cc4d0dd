//! The HTTP router: GraphQL over HTTP at `/graphql` (POST JSON, GET for
//! queries, GraphiQL for browsers), the SDL at `/schema.graphql`, and the
//! `/healthz` and `/readyz` probes.

use async_graphql::http::GraphiQLSource;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use stratum_domain::Store;

use crate::graphql::{StratumSchema, sdl};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// Shared state of the router.
#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema.
    pub schema: StratumSchema,
    /// The catalog store.
    pub store: Store,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/schema.graphql", get(schema_sdl))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"errors": [{"message": message, "extensions": {"code": code}}]})
}

async fn execute(state: &AppState, request: async_graphql::Request) -> Response {
    let response = state.schema.execute(request).await;
    json_response(StatusCode::OK, &response)
}

async fn graphql_post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Only JSON bodies: a "simple" cross-site form post can never run a mutation.
    if !content_type.starts_with("application/json") {
        return json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &error_body(
                "BAD_REQUEST",
                "POST /graphql requires Content-Type: application/json",
            ),
        );
    }
    match serde_json::from_slice::<async_graphql::Request>(&body) {
        Ok(request) => execute(&state, request).await,
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            &error_body("BAD_REQUEST", &format!("invalid GraphQL request body: {e}")),
        ),
    }
}

#[derive(Deserialize)]
struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
}

async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<GetParams>,
) -> Response {
    let Some(query) = params.query else {
        let wants_html = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if wants_html {
            return Html(GraphiQLSource::build().endpoint("/graphql").finish()).into_response();
        }
        return json_response(
            StatusCode::BAD_REQUEST,
            &error_body("BAD_REQUEST", "missing query parameter"),
        );
    };
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if let Some(vars) = params.variables {
        match serde_json::from_str::<async_graphql::Variables>(&vars) {
            Ok(v) => request = request.variables(v),
            Err(_) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &error_body("BAD_REQUEST", "variables must be a JSON object"),
                );
            }
        }
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
            let mut response = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &error_body("BAD_REQUEST", "only queries may be sent with GET; use POST"),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
    }
    execute(&state, request).await
}

async fn schema_sdl() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], sdl())
}

async fn readyz(State(state): State<AppState>) -> Response {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(1), state.store.ping()).await;
    let db_ok = matches!(ping, Ok(Ok(())));
    let migrations_ok = if db_ok {
        matches!(state.store.migration_status().await, Ok(list) if list.iter().all(|(_, applied)| *applied))
    } else {
        false
    };
    let body = serde_json::json!({"database": db_ok, "migrations": migrations_ok});
    let status = if db_ok && migrations_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}
