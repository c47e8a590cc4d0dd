//! Opening subscriptions: the live receiver is taken first, then the rows
//! after the client's cursor are replayed from the tables (SPEC §13), so no
//! event falls between the two and the subscriber drops the overlap by `seq`.

use std::sync::Arc;

use sea_orm::{ConnectionTrait, Value};

use super::{Store, now, stmt};
use crate::error::{DomainError, Result};
use crate::events::bus::{load_changes, load_component_health, load_insights};
use crate::events::subscriber::EventPredicate;
use crate::events::{
    CURSOR_MAX_AGE, ChangeEvent, ComponentHealthEvent, EventCursor, InsightEvent, REPLAY_LIMIT,
    Subscriber,
};

impl Store {
    /// Changes after `since` (health transitions only when `health_only`),
    /// then live ones, passed through `filter`.
    pub async fn subscribe_changes(
        &self,
        since: Option<EventCursor>,
        health_only: bool,
        filter: EventPredicate<ChangeEvent>,
    ) -> Result<Subscriber<ChangeEvent>> {
        let filter = match self.item_gate().await? {
            Some(gate) => Box::new(move |e: &ChangeEvent| gate.allows(&e.item) && filter(e)),
            None => filter,
        };
        let live = self.events().changes();
        let (start, replay) = match since {
            None => (self.current_cursor().await?, Vec::new()),
            Some(cursor) => {
                let condition = if health_only {
                    " AND source = 'health'"
                } else {
                    ""
                };
                let seqs = self.seqs_after("config_changes", condition, cursor).await?;
                (cursor, load_changes(self.reads(), &seqs).await?)
            }
        };
        Ok(Subscriber::new(live, arcs(replay), filter, start))
    }

    /// Insight transitions after `since`, then live ones.
    pub async fn subscribe_insights(
        &self,
        since: Option<EventCursor>,
        filter: EventPredicate<InsightEvent>,
    ) -> Result<Subscriber<InsightEvent>> {
        let filter = match self.item_gate().await? {
            Some(gate) => Box::new(move |e: &InsightEvent| gate.allows(&e.item) && filter(e)),
            None => filter,
        };
        let live = self.events().insights();
        let (start, replay) = match since {
            None => (self.current_cursor().await?, Vec::new()),
            Some(cursor) => {
                let seqs = self.seqs_after("insights", "", cursor).await?;
                (cursor, load_insights(self.reads(), &seqs).await?)
            }
        };
        Ok(Subscriber::new(live, arcs(replay), filter, start))
    }

    /// Component health transitions after `since`, then live ones.
    pub async fn subscribe_component_health(
        &self,
        since: Option<EventCursor>,
        filter: EventPredicate<ComponentHealthEvent>,
    ) -> Result<Subscriber<ComponentHealthEvent>> {
        let filter = match self.visible_component_ids().await? {
            Some(visible) => Box::new(move |e: &ComponentHealthEvent| {
                visible.contains(&e.component.id) && filter(e)
            }),
            None => filter,
        };
        let live = self.events().component_health();
        let (start, replay) = match since {
            None => (self.current_cursor().await?, Vec::new()),
            Some(cursor) => {
                let seqs = self
                    .seqs_after("component_health_history", "", cursor)
                    .await?;
                (cursor, load_component_health(self.reads(), &seqs).await?)
            }
        };
        Ok(Subscriber::new(live, arcs(replay), filter, start))
    }

    /// A cursor at the newest event: where a subscriber without `since`
    /// resumes if it lags before its first event.
    async fn current_cursor(&self) -> Result<EventCursor> {
        let seq = super::current_seq(self.reads()).await?;
        Ok(EventCursor::new(seq.max(self.events().last_seq()), now()))
    }

    /// Sequence numbers after `cursor` in `table`, oldest first; an error
    /// when the cursor is older than a day or more than
    /// [`REPLAY_LIMIT`] rows behind.
    async fn seqs_after(
        &self,
        table: &str,
        condition: &str,
        cursor: EventCursor,
    ) -> Result<Vec<i64>> {
        if now() - cursor.at > CURSOR_MAX_AGE {
            return Err(DomainError::CursorExpired(format!(
                "the cursor is from {}, more than {} hours ago; subscribe without `since` and reload",
                cursor.at.to_rfc3339(),
                CURSOR_MAX_AGE.num_hours()
            )));
        }
        let backend = self.backend();
        let sql = format!("SELECT seq FROM {table} WHERE seq > ?{condition} ORDER BY seq LIMIT ?");
        let rows = self
            .reads()
            .query_all_raw(stmt(
                backend,
                &sql,
                vec![
                    Value::from(cursor.seq),
                    Value::from(REPLAY_LIMIT as i64 + 1),
                ],
            ))
            .await?;
        if rows.len() > REPLAY_LIMIT {
            return Err(DomainError::CursorExpired(format!(
                "more than {REPLAY_LIMIT} events happened after the cursor; subscribe without `since` and reload"
            )));
        }
        rows.iter()
            .map(|r| r.try_get::<i64>("", "seq").map_err(DomainError::from))
            .collect()
    }
}

fn arcs<E>(events: Vec<E>) -> Vec<Arc<E>> {
    events.into_iter().map(Arc::new).collect()
}
