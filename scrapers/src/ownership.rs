//! Which scrapers this replica runs (SPEC §2 (b)). Every interval the
//! replica counts the replicas holding ownership connections (R), keeps at
//! most `ceil(N/R)+1` of the N scrapers, and tries the advisory locks of
//! unowned ones in a random order until it has that many. Each lock it
//! takes it also claims in the store, and the scraper's writes go through
//! a handle fenced by that claim ([`Ownership::store_for`]), so a replica
//! that lost a lock without noticing cannot write over its successor. On
//! SQLite, and for one-off runs, it owns everything, unfenced.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use stratum_domain::Store;
use stratum_domain::store::ownership::{Fence, OwnerLocks, lock_key};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// How often ownership is rebalanced unless configured otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// What this replica owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// Every scraper.
    All,
    /// These scrapers, each with this replica's claim on it.
    Some(HashMap<Uuid, Fence>),
}

/// A view of this replica's ownership that follows its changes.
#[derive(Debug, Clone)]
pub struct Ownership {
    rx: watch::Receiver<Owned>,
}

impl Ownership {
    /// Owns every scraper (SQLite, or a single process).
    pub fn everything() -> Ownership {
        let (tx, rx) = watch::channel(Owned::All);
        // Keep the sender alive so waits never end early.
        std::mem::forget(tx);
        Ownership { rx }
    }

    /// The store handle to write `scraper_id`'s data through: fenced by
    /// this replica's claim when ownership is shared.
    pub fn store_for(&self, store: &Store, scraper_id: Uuid) -> Store {
        let fence = match &*self.rx.borrow() {
            Owned::All => None,
            Owned::Some(claims) => claims.get(&scraper_id).cloned(),
        };
        match fence {
            Some(fence) => store.fenced(fence),
            None => store.clone(),
        }
    }

    /// Whether this replica owns `scraper_id` now.
    pub fn owns(&self, scraper_id: Uuid) -> bool {
        match &*self.rx.borrow() {
            Owned::All => true,
            Owned::Some(claims) => claims.contains_key(&scraper_id),
        }
    }

    /// Waits until this replica owns `scraper_id` (forever if the
    /// ownership loop stopped).
    pub async fn until_owned(&mut self, scraper_id: Uuid) {
        self.until(scraper_id, true).await
    }

    /// Waits until this replica no longer owns `scraper_id`.
    pub async fn until_lost(&mut self, scraper_id: Uuid) {
        self.until(scraper_id, false).await
    }

    async fn until(&mut self, scraper_id: Uuid, owned: bool) {
        loop {
            if self.owns(scraper_id) == owned {
                return;
            }
            if self.rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The scrapers ownership is shared out over: the configs loaded from files
/// at start, plus those that ScrapeConfig resources add and remove while
/// the server runs ([`crate::crd_controller`]).
#[derive(Debug, Clone, Default)]
pub struct ScraperSet(std::sync::Arc<std::sync::RwLock<HashSet<Uuid>>>);

impl ScraperSet {
    /// A set of these scrapers.
    pub fn new(ids: impl IntoIterator<Item = Uuid>) -> ScraperSet {
        ScraperSet(std::sync::Arc::new(std::sync::RwLock::new(
            ids.into_iter().collect(),
        )))
    }

    /// Adds a scraper; it is shared out at the next rebalance.
    pub fn insert(&self, id: Uuid) {
        if let Ok(mut set) = self.0.write() {
            set.insert(id);
        }
    }

    /// Removes a scraper; its lock is released at the next rebalance.
    pub fn remove(&self, id: Uuid) {
        if let Ok(mut set) = self.0.write() {
            set.remove(&id);
        }
    }

    /// The scrapers now, sorted.
    pub fn snapshot(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .0
            .read()
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

/// One rebalancing step: returns what is owned afterwards, with the claims
/// on it. Locks held since an earlier step keep their claim (from
/// `claims`); a lock taken is claimed at once (its fence replaces any
/// earlier owner's), or given back when the claim fails.
async fn rebalance(
    store: &Store,
    locks: &OwnerLocks,
    scrapers: &[Uuid],
    claims: &HashMap<Uuid, Fence>,
) -> stratum_domain::error::Result<HashMap<Uuid, Fence>> {
    let mut held = locks.held().await?;
    // Locks of scrapers that are gone (a deleted resource) are given back.
    let current: HashSet<i32> = scrapers.iter().map(|s| lock_key(*s)).collect();
    for stale in held
        .iter()
        .copied()
        .filter(|k| !current.contains(k))
        .collect::<Vec<_>>()
    {
        locks.release(stale).await?;
        held.remove(&stale);
    }
    let replicas = locks.replicas().await? as usize;
    let target = (scrapers.len().div_ceil(replicas) + 1).min(scrapers.len());
    let mut mine: Vec<Uuid> = scrapers
        .iter()
        .copied()
        .filter(|s| held.contains(&lock_key(*s)))
        .collect();
    // Give up the surplus when replicas joined, so they get work.
    while mine.len() > target {
        if let Some(extra) = mine.pop() {
            locks.release(lock_key(extra)).await?;
        }
    }
    let mut owned: HashMap<Uuid, Fence> = HashMap::new();
    for scraper in mine {
        match claims.get(&scraper) {
            Some(fence) => {
                owned.insert(scraper, fence.clone());
            }
            None => claim(store, locks, scraper, &mut owned).await?,
        }
    }
    let mut candidates: Vec<Uuid> = scrapers
        .iter()
        .copied()
        .filter(|s| !owned.contains_key(s))
        .collect();
    // A random order per replica and round, so replicas starting together
    // do not all reach for the same locks.
    candidates.sort_by_key(|_| Uuid::new_v4());
    for scraper in candidates {
        if owned.len() >= target {
            break;
        }
        if locks.try_acquire(lock_key(scraper)).await? {
            claim(store, locks, scraper, &mut owned).await?;
        }
    }
    Ok(owned)
}

/// Claims a scraper whose lock this replica holds, adding it to `owned`,
/// or gives the lock back when the claim fails.
async fn claim(
    store: &Store,
    locks: &OwnerLocks,
    scraper: Uuid,
    owned: &mut HashMap<Uuid, Fence>,
) -> stratum_domain::error::Result<()> {
    match store.claim_scraper(scraper).await {
        Ok(fence) => {
            owned.insert(scraper, fence);
        }
        Err(error) => {
            tracing::warn!(%scraper, %error, "claiming a scraper failed; giving its lock back");
            locks.release(lock_key(scraper)).await?;
        }
    }
    Ok(())
}

/// Starts the ownership loop for `scrapers` on `tracker`; it stops (and the
/// locks go with its connection) when `cancel` fires.
pub async fn start(
    store: &Store,
    scrapers: ScraperSet,
    interval: Duration,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> Ownership {
    let locks = match store.owner_locks().await {
        Ok(None) => return Ownership::everything(),
        Ok(Some(locks)) => Some(locks),
        Err(error) => {
            tracing::warn!(%error, "ownership connection failed; owning nothing until it connects");
            None
        }
    };
    let (tx, rx) = watch::channel(Owned::Some(HashMap::new()));
    let store = store.clone();
    tracker.spawn(async move {
        let mut locks = locks;
        loop {
            if locks.is_none() {
                locks = store.owner_locks().await.ok().flatten();
            }
            let ids = scrapers.snapshot();
            let claims = match &*tx.borrow() {
                Owned::Some(claims) => claims.clone(),
                Owned::All => HashMap::new(),
            };
            let owned = match &locks {
                Some(l) => match rebalance(&store, l, &ids, &claims).await {
                    Ok(owned) => owned,
                    Err(error) => {
                        // The connection (and with it every lock) may be gone.
                        tracing::warn!(%error, "ownership check failed; giving up every scraper until it recovers");
                        locks = None;
                        HashMap::new()
                    }
                },
                None => HashMap::new(),
            };
            tx.send_if_modified(|current| {
                let next = Owned::Some(owned);
                if *current == next {
                    false
                } else {
                    if let Owned::Some(ids) = &next {
                        tracing::info!(owned = ids.len(), of = scrapers.snapshot().len(), "scraper ownership changed");
                    }
                    *current = next;
                    true
                }
            });
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    });
    Ownership { rx }
}
