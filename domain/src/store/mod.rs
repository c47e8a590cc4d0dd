//! The catalog store: one handle over SQLite or PostgreSQL through SeaORM.
//!
//! Reads go straight to the pool. On SQLite all writes are serialized
//! through one in-process writer lock (WAL mode), as SPEC §2 requires.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    Statement, Value,
};
use stratum_migrations::{Migrate, Migrator};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::{DomainError, Result};
use crate::events::{EventBus, EventRef, EventStream, NOTIFY_CHANNEL};

pub mod batch;
pub mod changes;
pub mod components;
pub mod costs;
pub mod external;
pub mod graph;
pub mod ingest;
pub mod insights;
pub mod items;
pub mod ownership;
pub mod page;
pub mod retention;
pub mod rollup;
pub mod scope;
pub mod scrapers;
pub mod search;
pub mod selectors;
pub mod subscriptions;
pub mod summary;
pub mod tokens;
pub mod topology;

pub use batch::InsightCounts;
pub use changes::{ChangeFilter, latest_page};
pub use components::{ComponentFilter, ComponentScope};
pub use external::{ExternalChange, ExternalChangeStats};
pub use graph::{Direction, GraphNode, RelationKind, TraversalQuery, TraversalResult};
pub use ingest::{BatchStats, IngestSession, PreparedBatch, RunCompletion, RunOutcome};
pub use insights::{InsightFilter, InsightStats, InsightUpkeep};
pub use items::{ChangeRow, ItemColumns, ItemFilter, ItemOrder, ItemSort};
pub use page::{MAX_PAGE, Page, PageRequest};
pub use rollup::{RollupDrift, RollupTransition};
pub use scrapers::{RunSummary, ScraperRecord};
pub use summary::{Facet, GroupKey, HealthTally, SummaryGroup, ValueCount};
pub use tokens::TokenRecord;

/// Largest number of bound parameters per statement (below SQLite's and
/// Postgres's limits).
pub(crate) const MAX_PARAMS: usize = 30_000;

/// One connection pool's usage ([`Store::pool_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// `writes`, `reads` or `main`.
    pub name: &'static str,
    /// Open connections.
    pub size: u32,
    /// Of which idle.
    pub idle: usize,
    /// The pool's limit.
    pub max: u32,
}

/// A handle on the catalog database.
#[derive(Clone)]
pub struct Store {
    /// Writes, migrations and ingest reads.
    db: DatabaseConnection,
    /// Request reads (the same pool on SQLite).
    reads: DatabaseConnection,
    writer: Arc<Mutex<()>>,
    /// How to open the ownership connection (PostgreSQL only).
    owner_options: Option<ConnectOptions>,
    /// Where committed writes are announced.
    events: EventBus,
    /// What reads may see ([`Store::scoped`]); everything when `None`.
    scope: Option<Arc<crate::scope::Scope>>,
    /// The ownership claim every write checks ([`Store::fenced`]).
    fence: Option<Arc<ownership::Fence>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish()
    }
}

/// The current time truncated to microseconds, the precision both backends keep.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). SQLite files are
    /// created when missing and run in WAL mode. On PostgreSQL, writes and
    /// request reads get pools of their own, tuned for each (see
    /// [`Store::reads`]).
    pub async fn connect(url: &str) -> Result<Store> {
        let is_sqlite = url.starts_with("sqlite:");
        // The SQL scraper links the MySQL driver too; the catalog is not
        // for it.
        if !is_sqlite && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(crate::DomainError::invalid(
                "database URL",
                "expected sqlite://… or postgres://…",
            ));
        }
        let url = if is_sqlite && !url.contains("mode=") && !url.contains(":memory:") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let mut options = ConnectOptions::new(url);
        options
            .sqlx_logging(false)
            .max_connections(if is_sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10));
        if is_sqlite {
            options.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(false)
                    // 64 MiB page cache and memory-mapped reads: random-key
                    // upserts into a large catalog otherwise thrash the
                    // default 2 MiB cache.
                    .pragma("cache_size", "-65536")
                    .pragma("mmap_size", "268435456")
                    .pragma("temp_store", "memory")
            });
            let db = Database::connect(options).await?;
            return Ok(Store {
                events: EventBus::start(db.clone()),
                reads: db.clone(),
                db,
                writer: Arc::new(Mutex::new(())),
                owner_options: None,
                scope: None,
                fence: None,
            });
        }
        let mut read_options = options.clone();
        let owner_options = Some(options.clone());
        options.map_sqlx_postgres_opts(|o| o.application_name("stratum"));
        // Request reads are short, indexed statements. A parallel worker's
        // start-up alone (4–6 ms) is several times their cost, and under
        // load the workers only compete with other requests for the cores;
        // aggregates opt back in (`Store::analytic_rows`). JIT compiling a
        // statement whose estimate crosses `jit_above_cost` takes 50–800 ms.
        // And their prepared statements keep one generic plan per
        // connection: with id arrays PostgreSQL otherwise re-plans every
        // execution, and planning (0.3–1.6 ms) cost more than running
        // them. Writes keep the server's defaults: an ingest's statements
        // run against tables that grow under them.
        read_options.map_sqlx_postgres_opts(|o| {
            o.application_name("stratum-reads").options([
                ("max_parallel_workers_per_gather", "0"),
                ("jit", "off"),
                ("plan_cache_mode", "force_generic_plan"),
            ])
        });
        let listen_url = {
            let url = options.get_url();
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}application_name=stratum-events")
        };
        let reads = Database::connect(read_options).await?;
        let events = EventBus::start(reads.clone());
        crate::events::listener::spawn(&events, listen_url, reads.clone());
        Ok(Store {
            db: Database::connect(options).await?,
            reads,
            writer: Arc::new(Mutex::new(())),
            owner_options,
            events,
            scope: None,
            fence: None,
        })
    }

    /// The pool request reads go through: on PostgreSQL, connections with
    /// generic plans, no parallel workers and no JIT (see
    /// [`Store::connect`]); the one pool on SQLite.
    pub(crate) fn reads(&self) -> &DatabaseConnection {
        &self.reads
    }

    /// Calls `observer` with the SQL text of every statement this handle
    /// (and its clones made afterwards) runs: for metrics, and for tests
    /// that count statements.
    pub fn observe_statements(&mut self, observer: impl Fn(&str) + Send + Sync + 'static) {
        let observer = Arc::new(observer);
        let on_reads = observer.clone();
        self.db
            .set_metric_callback(move |info| observer(&info.statement.sql));
        self.reads
            .set_metric_callback(move |info| on_reads(&info.statement.sql));
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Names of applied and pending migrations.
    pub async fn migration_status(&self) -> Result<Vec<(String, bool)>> {
        let applied: Vec<String> = Migrator::get_applied_migrations(&self.db)
            .await?
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        let pending: Vec<String> = Migrator::get_pending_migrations(&self.db)
            .await?
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        Ok(applied
            .into_iter()
            .map(|n| (n, true))
            .chain(pending.into_iter().map(|n| (n, false)))
            .collect())
    }

    /// Rolls back the last `n` migrations.
    pub async fn migrate_down(&self, n: u32) -> Result<()> {
        Migrator::down(&self.db, Some(n)).await?;
        Ok(())
    }

    /// The underlying connection (for read-only callers in this crate's tests).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Size, idle connections and limit of each connection pool: `writes`
    /// and `reads` on PostgreSQL, one `main` pool on SQLite (for metrics).
    pub fn pool_usage(&self) -> Vec<PoolUsage> {
        fn usage<DB: sea_orm::sqlx::Database>(
            name: &'static str,
            pool: &sea_orm::sqlx::Pool<DB>,
        ) -> PoolUsage {
            PoolUsage {
                name,
                size: pool.size(),
                idle: pool.num_idle(),
                max: pool.options().get_max_connections(),
            }
        }
        match self.backend() {
            DbBackend::Postgres => vec![
                usage("writes", self.db.get_postgres_connection_pool()),
                usage("reads", self.reads.get_postgres_connection_pool()),
            ],
            _ => vec![usage("main", self.db.get_sqlite_connection_pool())],
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await?;
        Ok(())
    }

    /// The event bus committed writes are announced on.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Takes the writer lock (SQLite) and opens a transaction.
    pub(crate) async fn write_txn(&self) -> Result<(Option<MutexGuard<'_, ()>>, WriteTxn)> {
        use sea_orm::TransactionTrait;
        let guard = if self.backend() == DbBackend::Sqlite {
            Some(self.writer.lock().await)
        } else {
            None
        };
        let txn = self.db.begin().await?;
        if let Some(fence) = &self.fence {
            fence.check(&txn).await?;
        }
        Ok((
            guard,
            WriteTxn {
                txn,
                bus: self.events.clone(),
                announced: std::sync::Mutex::new(Vec::new()),
            },
        ))
    }

    /// Allocates `n` event sequence numbers for rows of `stream` inside
    /// `txn`; the rows are announced when `txn` commits.
    pub(crate) async fn allocate_seq(
        txn: &WriteTxn,
        stream: EventStream,
        n: usize,
    ) -> Result<Vec<i64>> {
        let seqs = Self::next_seqs(txn, n).await?;
        txn.announce(stream, &seqs);
        Ok(seqs)
    }

    async fn next_seqs(txn: &DatabaseTransaction, n: usize) -> Result<Vec<i64>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let backend = txn.get_database_backend();
        if backend == DbBackend::Postgres {
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT nextval('stratum_event_seq') AS seq FROM generate_series(1, $1)",
                    [Value::from(n as i64)],
                ))
                .await?;
            rows.iter()
                .map(|r| r.try_get::<i64>("", "seq").map_err(DomainError::from))
                .collect()
        } else {
            txn.execute_unprepared(
                "INSERT INTO sequences (name, value) VALUES ('events', 0) ON CONFLICT (name) DO NOTHING",
            )
            .await?;
            let row = txn
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    "UPDATE sequences SET value = value + ? WHERE name = 'events' RETURNING value",
                    [Value::from(n as i64)],
                ))
                .await?
                .ok_or_else(|| DomainError::Corrupt("sequence row missing".into()))?;
            let last: i64 = row.try_get("", "value")?;
            Ok(((last - n as i64 + 1)..=last).collect())
        }
    }
}

/// The event sequence's current value: the newest `seq` handed out.
pub(crate) async fn current_seq(db: &impl ConnectionTrait) -> Result<i64> {
    let backend = db.get_database_backend();
    let sql = if backend == DbBackend::Postgres {
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS seq FROM stratum_event_seq"
    } else {
        "SELECT COALESCE((SELECT value FROM sequences WHERE name = 'events'), 0) AS seq"
    };
    match db.query_one_raw(stmt(backend, sql, vec![])).await? {
        Some(row) => Ok(row.try_get::<i64>("", "seq")?),
        None => Ok(0),
    }
}

/// A write transaction that announces the event rows it wrote once, and
/// only if, it commits. Dereferences to the SeaORM transaction.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    bus: EventBus,
    announced: std::sync::Mutex<Vec<EventRef>>,
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTxn {
    fn announce(&self, stream: EventStream, seqs: &[i64]) {
        if let Ok(mut announced) = self.announced.lock() {
            announced.extend(seqs.iter().map(|&seq| EventRef { stream, seq }));
        }
    }

    /// Commits, then hands the announced rows to the bus. On PostgreSQL
    /// the transaction also notifies other replicas, delivered only on commit.
    pub async fn commit(self) -> Result<()> {
        let announced = self
            .announced
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let backend = self.txn.get_database_backend();
        if backend == DbBackend::Postgres && !announced.is_empty() {
            for payload in crate::events::listener::payloads(self.bus.replica(), &announced) {
                self.txn
                    .execute_raw(Statement::from_sql_and_values(
                        backend,
                        "SELECT pg_notify($1, $2)",
                        [Value::from(NOTIFY_CHANNEL), Value::from(payload)],
                    ))
                    .await?;
            }
        }
        self.txn.commit().await?;
        self.bus.committed(announced);
        Ok(())
    }
}

/// Rewrites `?` placeholders into the backend's syntax.
pub(crate) fn placeholders(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Postgres {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// `?, ?, ?` with `n` placeholders.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The right-hand side of an id membership test, to follow a column name:
/// ` IN (?, …)` on SQLite, ` = ANY(?::uuid[])` with one array parameter on
/// Postgres (one cached plan that uses the index, not thousands of binds).
pub(crate) fn in_ids(backend: DbBackend, ids: &[uuid::Uuid]) -> (String, Vec<Value>) {
    if backend == DbBackend::Postgres {
        let mut literal = String::with_capacity(ids.len() * 37 + 2);
        literal.push('{');
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                literal.push(',');
            }
            literal.push_str(&id.to_string());
        }
        literal.push('}');
        (
            " = ANY(CAST(? AS uuid[]))".to_string(),
            vec![Value::from(literal)],
        )
    } else {
        (
            format!(" IN ({})", marks(ids.len())),
            ids.iter().map(|u| Value::from(*u)).collect(),
        )
    }
}

/// A custom SQL expression with `?` placeholders for `values`. sea-query
/// numbers a custom expression's own values `$1…` on Postgres and takes
/// `?` elsewhere, so the text is adapted to the backend.
pub(crate) fn cust(backend: DbBackend, text: &str, values: Vec<Value>) -> sea_orm::sea_query::Expr {
    let text = if backend == DbBackend::Postgres {
        let mut n = 0;
        text.split('?')
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part.to_string()
                } else {
                    n += 1;
                    format!("${n}{part}")
                }
            })
            .collect()
    } else {
        text.to_string()
    };
    sea_orm::sea_query::Expr::cust_with_values(text, values)
}

/// `severity` in `severities` (all when empty) and at least `min`: `None`
/// when that allows every severity.
pub(crate) fn severity_condition(
    column: impl sea_orm::ColumnTrait,
    severities: &[crate::model::Severity],
    min: Option<crate::model::Severity>,
) -> Option<sea_orm::sea_query::Expr> {
    use crate::model::Severity;
    let allowed: Vec<&str> = Severity::ALL
        .iter()
        .filter(|s| severities.is_empty() || severities.contains(s))
        .filter(|s| min.is_none_or(|min| **s >= min))
        .map(|s| s.as_str())
        .collect();
    (allowed.len() < Severity::ALL.len()).then(|| column.is_in(allowed))
}

/// `column IN ids` as a filter: one array parameter on Postgres, so the
/// statement text (and its cached plan) does not change with the number of
/// ids; a list on SQLite.
pub(crate) fn id_in(
    backend: DbBackend,
    column: &str,
    ids: &[uuid::Uuid],
) -> sea_orm::sea_query::Expr {
    let (list, values) = in_ids(backend, ids);
    cust(backend, &format!("{column}{list}"), values)
}

/// The `id` column of the rows a statement with `?` placeholders returns.
pub(crate) async fn ids_where(
    db: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> crate::error::Result<Vec<uuid::Uuid>> {
    let rows = db
        .query_all_raw(stmt(db.get_database_backend(), sql, values))
        .await?;
    rows.iter()
        .map(|r| {
            r.try_get::<uuid::Uuid>("", "id")
                .map_err(crate::DomainError::from)
        })
        .collect()
}

/// A statement with `?` placeholders adapted to `backend`.
pub(crate) fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, placeholders(backend, sql), values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            placeholders(DbBackend::Postgres, "a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(placeholders(DbBackend::Sqlite, "a = ?"), "a = ?");
    }
}
