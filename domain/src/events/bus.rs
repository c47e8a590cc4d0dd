//! The in-process side of the bus: one broadcast channel per stream, fed by
//! a publisher task that loads committed rows once per batch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use super::{
    CHANNEL_CAPACITY, ChangeEvent, ComponentHealthEvent, EventRef, EventStream, InsightEvent,
};
use crate::entities::{component, component_health_history, config_change, config_item, insight};
use crate::error::Result;

/// Sequence numbers remembered to drop a second publication of one row
/// (a replay after a reconnect overlaps what was already delivered).
const RECENT_SEQS: usize = 65_536;

/// Rows loaded per statement.
const LOAD_CHUNK: usize = 1_000;

/// The bus of one process. Cheap to clone; the publisher task stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    replica: Uuid,
    changes: broadcast::Sender<Arc<ChangeEvent>>,
    insights: broadcast::Sender<Arc<InsightEvent>>,
    components: broadcast::Sender<Arc<ComponentHealthEvent>>,
    feed: mpsc::UnboundedSender<(std::time::Instant, Vec<EventRef>)>,
    /// Highest sequence number published (or seen from another replica).
    last_seq: AtomicI64,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("replica", &self.inner.replica)
            .finish()
    }
}

impl EventBus {
    /// Starts the publisher task, which loads rows through `db`.
    pub(crate) fn start(db: DatabaseConnection) -> EventBus {
        let (feed, feed_rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let inner = Arc::new(BusInner {
            replica: Uuid::new_v4(),
            changes: broadcast::channel(CHANNEL_CAPACITY).0,
            insights: broadcast::channel(CHANNEL_CAPACITY).0,
            components: broadcast::channel(CHANNEL_CAPACITY).0,
            feed,
            last_seq: AtomicI64::new(0),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
        });
        let publisher = Publisher {
            db,
            bus: Arc::downgrade(&inner),
            recent: HashSet::new(),
            order: VecDeque::new(),
        };
        tokio::spawn(publisher.run(feed_rx));
        EventBus { inner }
    }

    /// This process's id in notifications (its own are skipped on receipt).
    pub fn replica(&self) -> Uuid {
        self.inner.replica
    }

    /// Hands committed rows to the publisher.
    pub(crate) fn committed(&self, refs: Vec<EventRef>) {
        if refs.is_empty() {
            return;
        }
        if let Some(max) = refs.iter().map(|r| r.seq).max() {
            self.inner.last_seq.fetch_max(max, Ordering::Relaxed);
        }
        // Fails only when the publisher has stopped, i.e. the bus is going away.
        let _ = self.inner.feed.send((std::time::Instant::now(), refs));
    }

    /// The highest sequence number this process has announced or heard of.
    pub fn last_seq(&self) -> i64 {
        self.inner.last_seq.load(Ordering::Relaxed)
    }

    pub(crate) fn note_seq(&self, seq: i64) {
        self.inner.last_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// Cancelled when the last clone of the bus is dropped.
    pub(crate) fn stopped(&self) -> CancellationToken {
        self.inner.stop.clone()
    }

    /// A handle that does not keep the bus alive.
    pub(crate) fn downgrade(&self) -> WeakEventBus {
        WeakEventBus(Arc::downgrade(&self.inner))
    }

    /// Live changes (health transitions included).
    pub fn changes(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.inner.changes.subscribe()
    }

    /// Live insight transitions.
    pub fn insights(&self) -> broadcast::Receiver<Arc<InsightEvent>> {
        self.inner.insights.subscribe()
    }

    /// Live component health transitions.
    pub fn component_health(&self) -> broadcast::Receiver<Arc<ComponentHealthEvent>> {
        self.inner.components.subscribe()
    }

    /// Subscribers across all streams.
    pub fn subscriber_count(&self) -> usize {
        self.inner.changes.receiver_count()
            + self.inner.insights.receiver_count()
            + self.inner.components.receiver_count()
    }
}

/// A [`EventBus`] handle for its own background tasks.
pub(crate) struct WeakEventBus(std::sync::Weak<BusInner>);

impl WeakEventBus {
    /// The bus, unless it is gone.
    pub(crate) fn upgrade(&self) -> Option<EventBus> {
        self.0.upgrade().map(|inner| EventBus { inner })
    }
}

struct Publisher {
    db: DatabaseConnection,
    bus: std::sync::Weak<BusInner>,
    recent: HashSet<i64>,
    order: VecDeque<i64>,
}

impl Publisher {
    async fn run(mut self, mut feed: mpsc::UnboundedReceiver<(std::time::Instant, Vec<EventRef>)>) {
        while let Some((oldest, first)) = feed.recv().await {
            let mut refs = first;
            while let Ok((_, more)) = feed.try_recv() {
                refs.extend(more);
            }
            let Some(bus) = self.bus.upgrade() else {
                return;
            };
            if let Err(e) = self.publish(&bus, refs).await {
                tracing::warn!(error = %e, "event publication failed; subscribers resume with their cursor");
            }
            // From the oldest commit in this round to its last broadcast.
            metrics::histogram!("stratum_event_bus_lag_seconds")
                .record(oldest.elapsed().as_secs_f64());
        }
    }

    /// True the first time `seq` is seen.
    fn fresh(&mut self, seq: i64) -> bool {
        if !self.recent.insert(seq) {
            return false;
        }
        self.order.push_back(seq);
        if self.order.len() > RECENT_SEQS
            && let Some(old) = self.order.pop_front()
        {
            self.recent.remove(&old);
        }
        true
    }

    async fn publish(&mut self, bus: &BusInner, refs: Vec<EventRef>) -> Result<()> {
        let mut by_stream: HashMap<EventStream, Vec<i64>> = HashMap::new();
        for r in refs {
            if self.fresh(r.seq) {
                by_stream.entry(r.stream).or_default().push(r.seq);
            }
        }
        for (stream, mut seqs) in by_stream {
            seqs.sort_unstable();
            match stream {
                EventStream::Changes if bus.changes.receiver_count() > 0 => {
                    let events = load_changes(&self.db, &seqs).await?;
                    send_all(&bus.changes, events).await;
                }
                EventStream::Insights if bus.insights.receiver_count() > 0 => {
                    let events = load_insights(&self.db, &seqs).await?;
                    send_all(&bus.insights, events).await;
                }
                EventStream::ComponentHealth if bus.components.receiver_count() > 0 => {
                    let events = load_component_health(&self.db, &seqs).await?;
                    send_all(&bus.components, events).await;
                }
                // Nobody listens here: a later subscriber replays with `since`.
                _ => {}
            }
        }
        Ok(())
    }
}

/// Events sent before the publisher yields, so subscribers drain a large
/// batch as it goes out instead of finding all of it queued at once (which
/// would count against their buffer).
const SEND_BURST: usize = 32;

async fn send_all<E>(channel: &broadcast::Sender<Arc<E>>, events: Vec<E>) {
    for (n, event) in events.into_iter().enumerate() {
        if n > 0 && n.is_multiple_of(SEND_BURST) {
            tokio::task::yield_now().await;
        }
        let _ = channel.send(Arc::new(event));
    }
}

async fn items_by_id(
    db: &DatabaseConnection,
    ids: impl Iterator<Item = Uuid>,
) -> Result<HashMap<Uuid, Arc<config_item::Model>>> {
    let ids: Vec<Uuid> = ids.collect::<HashSet<_>>().into_iter().collect();
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(LOAD_CHUNK) {
        for item in config_item::Entity::find()
            .filter(config_item::Column::Id.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            out.insert(item.id, Arc::new(item));
        }
    }
    Ok(out)
}

/// Rows of `E` whose `seq` column is one of `seqs`, in `seq` order.
async fn rows_by_seq<E: EntityTrait>(
    db: &DatabaseConnection,
    seq: E::Column,
    seqs: &[i64],
) -> Result<Vec<E::Model>> {
    let mut rows = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(LOAD_CHUNK) {
        rows.extend(
            E::find()
                .filter(seq.is_in(chunk.to_vec()))
                .order_by_asc(seq)
                .all(db)
                .await?,
        );
    }
    Ok(rows)
}

/// Committed changes with these sequence numbers, in `seq` order.
pub(crate) async fn load_changes(
    db: &DatabaseConnection,
    seqs: &[i64],
) -> Result<Vec<ChangeEvent>> {
    let rows = rows_by_seq::<config_change::Entity>(db, config_change::Column::Seq, seqs).await?;
    let items = items_by_id(db, rows.iter().map(|c| c.config_id)).await?;
    Ok(rows
        .into_iter()
        .filter_map(|change| {
            let item = items.get(&change.config_id)?.clone();
            Some(ChangeEvent { change, item })
        })
        .collect())
}

/// Insights whose current `seq` is one of these, in `seq` order.
pub(crate) async fn load_insights(
    db: &DatabaseConnection,
    seqs: &[i64],
) -> Result<Vec<InsightEvent>> {
    let rows = rows_by_seq::<insight::Entity>(db, insight::Column::Seq, seqs).await?;
    let items = items_by_id(db, rows.iter().map(|i| i.config_id)).await?;
    Ok(rows
        .into_iter()
        .filter_map(|insight| {
            let item = items.get(&insight.config_id)?.clone();
            Some(InsightEvent { insight, item })
        })
        .collect())
}

/// Component health transitions with these sequence numbers, in `seq` order.
pub(crate) async fn load_component_health(
    db: &DatabaseConnection,
    seqs: &[i64],
) -> Result<Vec<ComponentHealthEvent>> {
    let rows = rows_by_seq::<component_health_history::Entity>(
        db,
        component_health_history::Column::Seq,
        seqs,
    )
    .await?;
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.component_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut components = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(LOAD_CHUNK) {
        for c in component::Entity::find()
            .filter(component::Column::Id.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            components.insert(c.id, Arc::new(c));
        }
    }
    Ok(rows
        .into_iter()
        .filter_map(|transition| {
            let component = components.get(&transition.component_id)?.clone();
            Some(ComponentHealthEvent {
                transition,
                component,
            })
        })
        .collect())
}
