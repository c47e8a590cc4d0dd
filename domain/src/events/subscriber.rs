//! One subscriber: a replay of stored rows after its cursor, then the live
//! stream, deduplicated by `seq`, filtered, and cut off with a lagged
//! notice when it falls more than [`SUBSCRIBER_BUFFER`] events behind.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{EventCursor, SUBSCRIBER_BUFFER, Sequenced};

/// A subscriber's filter (and, later, its scope).
pub type EventPredicate<E> = Box<dyn Fn(&E) -> bool + Send + Sync>;

/// What a subscriber receives.
#[derive(Debug)]
pub enum Delivery<E> {
    /// An event that passed the filter.
    Event(Arc<E>),
    /// The subscriber fell behind; it resumes with `since` = this cursor.
    /// Nothing follows a lagged notice.
    Lagged(EventCursor),
}

/// A stream of events for one subscription.
pub struct Subscriber<E> {
    live: broadcast::Receiver<Arc<E>>,
    replay: VecDeque<Arc<E>>,
    /// Sequence numbers delivered by the replay, skipped when they come live.
    replayed: HashSet<i64>,
    filter: EventPredicate<E>,
    resume: EventCursor,
    finished: bool,
}

impl<E: Sequenced> Subscriber<E> {
    /// A subscriber that delivers `replay` first, then `live`; `start` is
    /// the resume point until the first event.
    pub(crate) fn new(
        live: broadcast::Receiver<Arc<E>>,
        replay: Vec<Arc<E>>,
        filter: EventPredicate<E>,
        start: EventCursor,
    ) -> Self {
        Subscriber {
            live,
            replayed: replay.iter().map(|e| e.seq()).collect(),
            replay: replay.into(),
            filter,
            resume: start,
            finished: false,
        }
    }

    /// Where this subscriber would resume if it stopped now.
    pub fn resume_cursor(&self) -> EventCursor {
        self.resume
    }

    /// The next delivery; `None` once the bus is gone or after a lagged notice.
    pub async fn next(&mut self) -> Option<Delivery<E>> {
        if self.finished {
            return None;
        }
        while let Some(event) = self.replay.pop_front() {
            self.resume = event.cursor();
            if (self.filter)(&event) {
                return Some(Delivery::Event(event));
            }
        }
        loop {
            if self.live.len() > SUBSCRIBER_BUFFER {
                return Some(self.lagged());
            }
            match self.live.recv().await {
                Ok(event) => {
                    if !self.replayed.is_empty() && self.replayed.remove(&event.seq()) {
                        continue;
                    }
                    self.resume = event.cursor();
                    if (self.filter)(&event) {
                        return Some(Delivery::Event(event));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return Some(self.lagged()),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn lagged(&mut self) -> Delivery<E> {
        self.finished = true;
        Delivery::Lagged(self.resume)
    }

    /// The subscriber as a stream of deliveries.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Delivery<E>> + Send {
        futures_util::stream::unfold(self, |mut s| async move { s.next().await.map(|d| (d, s)) })
    }
}
