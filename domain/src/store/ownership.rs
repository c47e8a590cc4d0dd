//! Which replica runs which scraper (SPEC §2 (b)): PostgreSQL session
//! advisory locks, one per scraper, held on a dedicated connection whose
//! `application_name` is `stratum-owner`. A lock dies with its connection,
//! so a replica that is killed gives its scrapers up at once. On SQLite
//! one process owns the file, and with it every scraper.
//!
//! A lock alone cannot stop a replica that lost it (its connection broke,
//! say) from finishing a batch it had started. So whoever takes a lock
//! claims the scraper with a fresh token in `scraper_owners`
//! ([`Store::claim_scraper`]), and the scraper's writes go through a
//! [`Store::fenced`] handle, whose every write transaction first reads the
//! token with `FOR SHARE` and fails with [`DomainError::Fenced`] when it
//! has moved on. The claim's update waits for the old owner's open
//! transactions and every later one sees the new token.

use std::collections::HashSet;
use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use uuid::Uuid;

use super::{Store, stmt};
use crate::error::{DomainError, Result};

/// The first key of every ownership lock (`pg_try_advisory_lock(space, key)`).
pub const LOCK_SPACE: i32 = 0x5354_5241;

/// The `application_name` of ownership connections, counted to learn how
/// many replicas share the work.
pub const OWNER_APPLICATION: &str = "stratum-owner";

/// A scraper's lock key: 31 bits of its id.
pub fn lock_key(scraper_id: Uuid) -> i32 {
    let b = scraper_id.as_bytes();
    (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) >> 1) as i32
}

/// A replica's claim on one scraper: writes through [`Store::fenced`]
/// succeed only while it is the latest claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The scraper claimed.
    pub scraper_id: Uuid,
    /// This claim's token.
    pub token: String,
}

impl Fence {
    /// Fails unless this is still the scraper's latest claim; on
    /// PostgreSQL it holds the claim row until `txn` ends, so a takeover
    /// waits for the transaction.
    pub(crate) async fn check(&self, txn: &sea_orm::DatabaseTransaction) -> Result<()> {
        let backend = txn.get_database_backend();
        let lock = if backend == DbBackend::Postgres {
            " FOR SHARE"
        } else {
            ""
        };
        let row = txn
            .query_one_raw(stmt(
                backend,
                &format!("SELECT token FROM scraper_owners WHERE scraper_id = ?{lock}"),
                vec![self.scraper_id.into()],
            ))
            .await?;
        let current: Option<String> = row.map(|r| r.try_get("", "token")).transpose()?;
        if current.as_deref() == Some(self.token.as_str()) {
            Ok(())
        } else {
            Err(DomainError::Fenced(self.scraper_id))
        }
    }
}

/// The dedicated connection that holds a replica's ownership locks.
pub struct OwnerLocks {
    db: DatabaseConnection,
}

impl Store {
    /// Claims `scraper_id` for the caller, who has just taken its lock:
    /// a new token fences every earlier claim out, and runs the earlier
    /// owner left `running` are closed as failed.
    pub async fn claim_scraper(&self, scraper_id: Uuid) -> Result<Fence> {
        let fence = Fence {
            scraper_id,
            token: Uuid::new_v4().to_string(),
        };
        let now = super::now();
        let mut unfenced = self.clone();
        unfenced.fence = None;
        let (_guard, txn) = unfenced.write_txn().await?;
        txn.execute_raw(stmt(
            self.backend(),
            "INSERT INTO scraper_owners (scraper_id, token, claimed_at) VALUES (?, ?, ?) \
             ON CONFLICT (scraper_id) DO UPDATE SET token = excluded.token, claimed_at = excluded.claimed_at",
            vec![scraper_id.into(), fence.token.clone().into(), now.into()],
        ))
        .await?;
        txn.execute_raw(stmt(
            self.backend(),
            "UPDATE scrape_runs SET status = ?, finished_at = ?, errors = ? WHERE scraper_id = ? AND status = ?",
            vec![
                crate::RunStatus::Failed.as_str().into(),
                now.into(),
                serde_json::json!(["abandoned: another replica took the scraper over"]).into(),
                scraper_id.into(),
                crate::RunStatus::Running.as_str().into(),
            ],
        ))
        .await?;
        txn.commit().await?;
        Ok(fence)
    }

    /// This handle with its writes fenced by `fence`: each fails with
    /// [`DomainError::Fenced`] once a later claim exists.
    pub fn fenced(&self, fence: Fence) -> Store {
        let mut store = self.clone();
        store.fence = Some(std::sync::Arc::new(fence));
        store
    }

    /// Opens this replica's ownership connection: `None` on SQLite, where
    /// the process owns every scraper.
    pub async fn owner_locks(&self) -> Result<Option<OwnerLocks>> {
        let Some(options) = &self.owner_options else {
            return Ok(None);
        };
        let mut options: ConnectOptions = options.clone();
        options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(5))
            .map_sqlx_postgres_opts(|o| o.application_name(OWNER_APPLICATION));
        Ok(Some(OwnerLocks {
            db: Database::connect(options).await?,
        }))
    }
}

impl OwnerLocks {
    async fn keys(&self, sql: &str, values: Vec<sea_orm::Value>) -> Result<HashSet<i32>> {
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await?;
        rows.iter()
            .map(|r| {
                r.try_get::<i64>("", "k")
                    .map(|k| k as i32)
                    .map_err(Into::into)
            })
            .collect()
    }

    /// The keys this connection holds now (empty after it was replaced).
    pub async fn held(&self) -> Result<HashSet<i32>> {
        self.keys(
            "SELECT objid::bigint AS k FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 \
             AND classid::bigint = $1 AND pid = pg_backend_pid() AND granted",
            vec![i64::from(LOCK_SPACE).into()],
        )
        .await
    }

    /// How many replicas hold ownership connections to this database.
    pub async fn replicas(&self) -> Result<i64> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
                [OWNER_APPLICATION.into()],
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(1)
            .max(1))
    }

    /// Takes `key` unless another replica holds it.
    pub async fn try_acquire(&self, key: i32) -> Result<bool> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_try_advisory_lock($1, $2) AS ok",
                [LOCK_SPACE.into(), key.into()],
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get::<bool>("", "ok"))
            .transpose()?
            .unwrap_or(false))
    }

    /// Gives `key` up.
    pub async fn release(&self, key: i32) -> Result<()> {
        self.db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_unlock($1, $2)",
                [LOCK_SPACE.into(), key.into()],
            ))
            .await?;
        Ok(())
    }
}
