//! Cross-replica fan-out on PostgreSQL: each write transaction
//! `pg_notify`s the sequence numbers it committed; every replica LISTENs,
//! skips its own notices, collects the rest for 50 ms and hands them to its
//! publisher. After a lost connection it replays from its last `seq`.

use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::bus::WeakEventBus;
use super::{EventBus, EventRef, EventStream, NOTIFY_CHANNEL, REPLAY_LIMIT};

/// How long notices are collected before their rows are loaded.
const COLLECT_WINDOW: Duration = Duration::from_millis(50);
/// Largest notification payload written (PostgreSQL's limit is 8,000 bytes).
const MAX_PAYLOAD: usize = 7_000;

/// One notification: the origin replica and the rows it committed.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Notice {
    /// Origin replica.
    pub r: Uuid,
    /// Committed rows.
    pub e: Vec<(EventStream, i64)>,
}

/// The payloads announcing `refs`, each under PostgreSQL's size limit.
pub(crate) fn payloads(replica: Uuid, refs: &[EventRef]) -> Vec<String> {
    // A stream tag and a 19-digit number take at most 27 bytes.
    let per_payload = (MAX_PAYLOAD - 64) / 27;
    refs.chunks(per_payload)
        .map(|chunk| {
            serde_json::to_string(&Notice {
                r: replica,
                e: chunk.iter().map(|r| (r.stream, r.seq)).collect(),
            })
            .unwrap_or_default()
        })
        .collect()
}

/// Starts listening for other replicas' notices on `url`.
pub(crate) fn spawn(bus: &EventBus, url: String, db: DatabaseConnection) {
    let weak = bus.downgrade();
    let stop = bus.stopped();
    let replica = bus.replica();
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = listen(weak, replica, url, db) => {}
        }
    });
}

async fn connect(url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

async fn listen(weak: WeakEventBus, replica: Uuid, url: String, db: DatabaseConnection) {
    let mut listener: Option<PgListener> = None;
    let mut backoff = Duration::from_millis(250);
    let mut lost = false;
    loop {
        let Some(active) = listener.as_mut() else {
            match connect(&url).await {
                Ok(l) => {
                    listener = Some(l);
                    backoff = Duration::from_millis(250);
                    let Some(bus) = weak.upgrade() else { return };
                    if lost {
                        tracing::info!("event listener reconnected; replaying from the last seq");
                        replay(&bus, &db).await;
                        lost = false;
                    } else {
                        // Where a new listener starts; nothing before it is replayed.
                        bus.note_seq(crate::store::current_seq(&db).await.unwrap_or(0));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event listener cannot connect; retrying");
                    lost = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            continue;
        };
        match active.try_recv().await {
            Ok(Some(first)) => {
                let mut refs = Vec::new();
                let mut take = |payload: &str| match serde_json::from_str::<Notice>(payload) {
                    Ok(notice) if notice.r != replica => refs.extend(
                        notice
                            .e
                            .into_iter()
                            .map(|(stream, seq)| EventRef { stream, seq }),
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "ignoring a malformed event notice"),
                };
                take(first.payload());
                let deadline = tokio::time::Instant::now() + COLLECT_WINDOW;
                while let Ok(Ok(Some(more))) =
                    tokio::time::timeout_at(deadline, active.try_recv()).await
                {
                    take(more.payload());
                }
                let Some(bus) = weak.upgrade() else { return };
                bus.committed(refs);
            }
            Ok(None) => {
                tracing::warn!("event listener lost its connection");
                lost = true;
                listener = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "event listener failed; reconnecting");
                lost = true;
                listener = None;
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// Announces every row committed after the bus's last seq (the publisher
/// drops those it already delivered).
async fn replay(bus: &EventBus, db: &DatabaseConnection) {
    let since = bus.last_seq();
    let mut refs = Vec::new();
    for (stream, table) in [
        (EventStream::Changes, "config_changes"),
        (EventStream::Insights, "insights"),
        (EventStream::ComponentHealth, "component_health_history"),
    ] {
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT seq FROM {table} WHERE seq > $1 ORDER BY seq LIMIT $2"),
            [Value::from(since), Value::from(REPLAY_LIMIT as i64)],
        );
        match db.query_all_raw(stmt).await {
            Ok(rows) => refs.extend(
                rows.iter()
                    .filter_map(|r| r.try_get::<i64>("", "seq").ok())
                    .map(|seq| EventRef { stream, seq }),
            ),
            Err(e) => tracing::warn!(error = %e, table, "event replay failed"),
        }
    }
    bus.committed(refs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_notify_limit() {
        let refs: Vec<EventRef> = (0..2_000)
            .map(|i| EventRef {
                stream: EventStream::Changes,
                seq: i64::MAX - i,
            })
            .collect();
        let out = payloads(Uuid::new_v4(), &refs);
        assert!(out.len() > 1);
        let mut seen = 0;
        for p in &out {
            assert!(p.len() <= MAX_PAYLOAD, "{} bytes", p.len());
            seen += serde_json::from_str::<Notice>(p).expect("parses").e.len();
        }
        assert_eq!(seen, refs.len());
    }
}
