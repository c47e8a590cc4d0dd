//! The mutation root: insights pushed by external analyzers, and the
//! silence and resolve actions on an insight (SPEC §7, §11).

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use stratum_domain::store::ScraperRecord;
use stratum_domain::{InsightObservation, ItemRef, ScrapedInsight, ScraperSource, Store};

use super::filters::{Severity, item_uuid};
use super::types::{Insight, parse_global_id};
use crate::auth::{Role, RoleGuard, UnscopedGuard};
use crate::error::{ApiError, ApiResult, gql};

/// Most insights one `pushInsights` call may carry.
pub const MAX_PUSHED_INSIGHTS: usize = 1_000;

/// The scraper pushed insights are recorded under: they are resolved by
/// age like a scraper's (SPEC §7), by the upkeep loop.
pub const PUSH_SCRAPER: (&str, &str) = ("stratum", "push");

/// One finding pushed by an external analyzer.
#[derive(InputObject, Clone, Debug)]
pub struct InsightInput {
    /// The item, by id (global or UUID); or give `configType` and
    /// `externalId`.
    pub config_id: Option<ID>,
    /// The item's type, with `externalId`.
    pub config_type: Option<String>,
    /// One of the item's external ids, with `configType`.
    pub external_id: Option<String>,
    /// The tool that found it.
    pub analyzer: String,
    /// `availability`, `compliance`, `cost`, `integration`, `other`,
    /// `performance`, `recommendation`, `reliability`, `security` or
    /// `technical_debt`.
    pub analysis_type: String,
    /// How bad it is.
    pub severity: Severity,
    /// One line.
    pub summary: String,
    /// Longer text.
    #[graphql(default)]
    pub message: String,
    /// Structured details.
    pub details: Option<Json<serde_json::Value>>,
    /// Tells apart several findings of one analyzer on one item.
    #[graphql(default)]
    pub key: String,
}

/// What `pushInsights` did.
#[derive(SimpleObject, Clone, Debug)]
pub struct PushInsightsPayload {
    /// New findings.
    pub opened: i64,
    /// Resolved findings observed again.
    pub reopened: i64,
    /// Re-observed findings whose severity, summary or message moved.
    pub updated: i64,
    /// Re-observed findings with nothing new.
    pub unchanged: i64,
    /// Findings about items not in the catalog (dropped).
    pub unknown_target: i64,
}

fn target(n: usize, input: &InsightInput) -> ApiResult<ItemRef> {
    match (&input.config_id, &input.config_type, &input.external_id) {
        (Some(id), None, None) => Ok(ItemRef::Id(item_uuid(id)?)),
        (None, Some(t), Some(e)) if !t.is_empty() && !e.is_empty() => Ok(ItemRef::External {
            item_type: t.clone(),
            external_id: e.to_lowercase(),
        }),
        _ => Err(gql(ApiError::BadUserInput(format!(
            "insights[{n}]: give either configId, or configType with externalId"
        )))),
    }
}

fn store<'a>(ctx: &Context<'a>) -> ApiResult<&'a Store> {
    ctx.data::<Store>().map_err(|_| gql(ApiError::Internal))
}

/// A role a minted token carries.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    /// Queries and subscriptions.
    Viewer,
    /// Plus scrape triggers, pushed results and insight mutations.
    Editor,
    /// Everything.
    Admin,
}

impl From<TokenRole> for Role {
    fn from(role: TokenRole) -> Role {
        match role {
            TokenRole::Viewer => Role::Viewer,
            TokenRole::Editor => Role::Editor,
            TokenRole::Admin => Role::Admin,
        }
    }
}

/// A token minted by `createApiToken`: shown once, never stored.
#[derive(async_graphql::SimpleObject)]
pub struct ApiTokenPayload {
    /// The bearer token.
    pub token: String,
    /// Its id (`jti`), for `revokeApiToken`.
    pub id: String,
    /// Its `sub`.
    pub subject: String,
    /// Its role, lower case.
    pub role: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// The mutation root.
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Records findings of an external analyzer (at most 1,000 per call).
    /// A finding re-pushed updates its insight (ids are deterministic); a
    /// resolved one reopens; a silenced one stays silenced. One invalid
    /// entry rejects the call before anything is written. Needs a token
    /// without a scope.
    #[graphql(guard = "RoleGuard(Role::Editor).and(UnscopedGuard)")]
    async fn push_insights(
        &self,
        ctx: &Context<'_>,
        insights: Vec<InsightInput>,
    ) -> ApiResult<PushInsightsPayload> {
        if insights.len() > MAX_PUSHED_INSIGHTS {
            return Err(gql(ApiError::BadUserInput(format!(
                "at most {MAX_PUSHED_INSIGHTS} insights per call ({} given)",
                insights.len()
            ))));
        }
        let mut observations = Vec::with_capacity(insights.len());
        for (n, input) in insights.into_iter().enumerate() {
            let target = target(n, &input)?;
            let insight = ScrapedInsight {
                analyzer: input.analyzer,
                analysis_type: input.analysis_type,
                severity: input.severity.into(),
                summary: input.summary,
                message: input.message,
                details: input
                    .details
                    .map(|j| j.0)
                    .unwrap_or(serde_json::Value::Null),
                key: input.key,
            };
            insight.validate().map_err(|e| {
                gql(ApiError::BadUserInput(format!(
                    "insights[{n}]: {}",
                    ApiError::from(&e)
                )))
            })?;
            observations.push(InsightObservation { target, insight });
        }
        let store = store(ctx)?;
        let scraper = store
            .upsert_scraper(
                &ScraperRecord {
                    namespace: PUSH_SCRAPER.0.into(),
                    name: PUSH_SCRAPER.1.into(),
                    spec: serde_json::json!({}),
                    source: ScraperSource::Api,
                },
                false,
            )
            .await
            .map_err(gql)?;
        let stats = store
            .observe_insights(scraper, observations)
            .await
            .map_err(gql)?;
        Ok(PushInsightsPayload {
            opened: stats.opened,
            reopened: stats.reopened,
            updated: stats.updated,
            unchanged: stats.unchanged,
            unknown_target: stats.unknown_target,
        })
    }

    /// Silences an insight until `until` (for good when absent). When the
    /// silence ends it is open again if it was re-observed meanwhile, and
    /// resolved otherwise.
    #[graphql(guard = "RoleGuard(Role::Editor)")]
    async fn silence_insight(
        &self,
        ctx: &Context<'_>,
        id: ID,
        until: Option<DateTime<Utc>>,
    ) -> ApiResult<Insight> {
        let id = parse_global_id("Insight", &id).map_err(gql)?;
        Ok(Insight(
            store(ctx)?.silence_insight(id, until).await.map_err(gql)?,
        ))
    }

    /// Signs an API token with this server's key (as `stratum token` does)
    /// and records its id; admins only, and only with a token without a
    /// scope (a scoped admin cannot mint a wider token). `ttl` is `24h`,
    /// `90d`…, at most 365 days; `scope` restricts what the token sees
    /// (SPEC §12).
    #[graphql(guard = "RoleGuard(Role::Admin).and(UnscopedGuard)")]
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        subject: String,
        role: TokenRole,
        #[graphql(default_with = "\"24h\".to_string()")] ttl: String,
        scope: Option<async_graphql::Json<serde_json::Value>>,
    ) -> ApiResult<ApiTokenPayload> {
        let subject = subject.trim().to_string();
        if subject.is_empty() || subject.len() > 200 {
            return Err(gql(ApiError::BadUserInput(
                "subject: 1 to 200 characters".into(),
            )));
        }
        let ttl = humantime::parse_duration(&ttl)
            .map_err(|e| gql(ApiError::BadUserInput(format!("ttl {ttl:?}: {e}"))))?;
        let scope = match scope {
            Some(value) => Some(
                stratum_domain::scope::Scope::parse(&value.0)
                    .map_err(|e| gql(ApiError::from(&e)))?,
            ),
            None => None,
        };
        let auth = ctx
            .data::<std::sync::Arc<crate::auth::Authenticator>>()
            .map_err(|_| gql(ApiError::Internal))?;
        let role = Role::from(role);
        let spec = crate::auth::TokenSpec {
            subject: subject.clone(),
            role,
            ttl,
            scope,
        };
        let (token, id, expires_at) = auth.sign(&spec).map_err(|e| {
            let message = e.to_string();
            if message.contains("TTL") {
                gql(ApiError::BadUserInput(message))
            } else {
                gql(ApiError::FailedPrecondition(message))
            }
        })?;
        store(ctx)?
            .record_token(&stratum_domain::store::TokenRecord {
                jti: id.clone(),
                subject: subject.clone(),
                role: role.as_str().into(),
                expires_at,
            })
            .await
            .map_err(gql)?;
        Ok(ApiTokenPayload {
            token,
            id,
            subject,
            role: role.as_str().into(),
            expires_at,
        })
    }

    /// Revokes a token by id: this replica refuses it at once, others
    /// within 30 s. Admins only.
    #[graphql(guard = "RoleGuard(Role::Admin).and(UnscopedGuard)")]
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: String) -> ApiResult<bool> {
        store(ctx)?.revoke_token(&id).await.map_err(gql)?;
        if let Ok(auth) = ctx.data::<std::sync::Arc<crate::auth::Authenticator>>() {
            auth.revoke_now(&id);
        }
        Ok(true)
    }

    /// Resolves an insight by hand; it reopens if it is observed again.
    #[graphql(guard = "RoleGuard(Role::Editor)")]
    async fn resolve_insight(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Insight> {
        let id = parse_global_id("Insight", &id).map_err(gql)?;
        Ok(Insight(store(ctx)?.resolve_insight(id).await.map_err(gql)?))
    }
}
