//! API tokens (SPEC §12): the record `stratum token` writes for each token
//! it signs, revocation, and the revoked set replicas reload.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};

use super::{Store, now, stmt};
use crate::error::{DomainError, Result};

/// A signed token's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's `jti`.
    pub jti: String,
    /// Its `sub`.
    pub subject: String,
    /// Its role.
    pub role: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Records a token that was just signed.
    pub async fn record_token(&self, token: &TokenRecord) -> Result<()> {
        let backend = self.backend();
        self.connection()
            .execute_raw(stmt(
                backend,
                "INSERT INTO api_tokens (jti, subject, role, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL)",
                vec![
                    Value::from(token.jti.clone()),
                    Value::from(token.subject.clone()),
                    Value::from(token.role.clone()),
                    Value::from(now()),
                    Value::from(token.expires_at),
                ],
            ))
            .await?;
        Ok(())
    }

    /// Revokes the token `jti`; `NotFound` when no such token was recorded.
    /// Revoking twice keeps the first time.
    pub async fn revoke_token(&self, jti: &str) -> Result<()> {
        let backend = self.backend();
        let done = self
            .connection()
            .execute_raw(stmt(
                backend,
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE jti = ?",
                vec![Value::from(now()), Value::from(jti.to_string())],
            ))
            .await?;
        if done.rows_affected() == 0 {
            return Err(DomainError::NotFound("token"));
        }
        Ok(())
    }

    /// The ids of revoked tokens that have not expired yet.
    pub async fn revoked_tokens(&self) -> Result<Vec<String>> {
        let backend = self.backend();
        let rows = self
            .reads()
            .query_all_raw(stmt(
                backend,
                "SELECT jti FROM api_tokens WHERE revoked_at IS NOT NULL AND expires_at > ?",
                vec![Value::from(now())],
            ))
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String>("", "jti").map_err(DomainError::from))
            .collect()
    }
}
