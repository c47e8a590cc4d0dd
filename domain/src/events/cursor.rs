//! Opaque resume cursors: a sequence number and the event's time, so an
//! expired cursor is recognised without a database round trip.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use crate::error::{DomainError, Result};

/// Where a subscriber resumes: after the event with this `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    /// Sequence number of the last event seen.
    pub seq: i64,
    /// When that event happened.
    pub at: DateTime<Utc>,
}

impl EventCursor {
    /// A cursor after `seq`, an event at `at`.
    pub fn new(seq: i64, at: DateTime<Utc>) -> Self {
        EventCursor { seq, at }
    }

    /// The opaque text form clients hold.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("ev1:{}:{}", self.seq, self.at.timestamp_micros()))
    }

    /// Parses [`EventCursor::encode`]'s output.
    pub fn decode(text: &str) -> Result<Self> {
        let bad = || DomainError::invalid("cursor", format!("'{text}' is not an event cursor"));
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.split(':');
        let (Some("ev1"), Some(seq), Some(micros), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        if seq < 0 {
            return Err(bad());
        }
        Ok(EventCursor { seq, at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::from_timestamp_micros(1_764_600_000_123_456).expect("time");
        let cursor = EventCursor::new(42, at);
        assert_eq!(
            EventCursor::decode(&cursor.encode()).expect("decode"),
            cursor
        );
    }

    #[test]
    fn garbage_is_an_invalid_cursor() {
        for text in ["", "abc", "ZXYxOng6eQ", &URL_SAFE_NO_PAD.encode("ev1:-1:0")] {
            let err = EventCursor::decode(text).expect_err(text);
            assert!(
                matches!(err, DomainError::Invalid { what: "cursor", .. }),
                "{text}: {err}"
            );
        }
    }
}
