//! Abuse resistance on top of the request limits (SPEC §12): a request
//! rate per token (per IP for anonymous callers) and a budget of
//! complexity points per minute, both keyed GCRA limiters from `governor`.
//! A refused request is `RATE_LIMITED` with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::auth::Principal;

/// The limits (defaults of SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSettings {
    /// Sustained requests per second per caller.
    pub per_second: u32,
    /// Requests a caller may send at once.
    pub burst: u32,
    /// Complexity points per minute per caller.
    pub points_per_minute: u32,
    /// Open WebSocket connections per caller.
    pub connections: usize,
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings {
            per_second: 20,
            burst: 100,
            points_per_minute: 100_000,
            connections: 20,
        }
    }
}

/// Why a request was refused, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A message naming the limit and the numbers.
    pub message: String,
    /// How long to wait (`Retry-After`, rounded up to whole seconds).
    pub retry_after: Duration,
}

impl Refusal {
    /// The `Retry-After` value: whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// The limiters of one server.
pub struct RateLimits {
    settings: RateSettings,
    requests: DefaultKeyedRateLimiter<String>,
    points: DefaultKeyedRateLimiter<String, StateInformationMiddleware>,
    clock: DefaultClock,
    /// Open WebSocket connections per caller.
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

impl RateLimits {
    /// Limiters with these settings.
    pub fn new(settings: RateSettings) -> Self {
        let requests =
            Quota::per_second(nonzero(settings.per_second)).allow_burst(nonzero(settings.burst));
        let points = Quota::per_minute(nonzero(settings.points_per_minute));
        RateLimits {
            settings,
            requests: DefaultKeyedRateLimiter::keyed(requests),
            points: DefaultKeyedRateLimiter::keyed(points)
                .with_middleware::<StateInformationMiddleware>(),
            clock: DefaultClock::default(),
            open: Default::default(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> RateSettings {
        self.settings
    }

    /// Counts one request of `key`.
    pub fn check_request(&self, key: &str) -> Result<(), Refusal> {
        self.requests
            .check_key(&key.to_string())
            .map_err(|not_until| Refusal {
                message: format!(
                    "more than {} requests per second (burst {}) from this caller",
                    self.settings.per_second, self.settings.burst
                ),
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }

    /// Charges `points` of complexity to `key`; the points left this
    /// minute on success.
    pub fn charge(&self, key: &str, points: usize) -> Result<u32, Refusal> {
        let limit = self.settings.points_per_minute;
        let n = nonzero(u32::try_from(points).unwrap_or(u32::MAX));
        match self.points.check_key_n(&key.to_string(), n) {
            Ok(Ok(snapshot)) => Ok(snapshot.remaining_burst_capacity()),
            Ok(Err(not_until)) => Err(Refusal {
                message: format!(
                    "this query costs {points} points and the budget of {limit} points per minute is spent"
                ),
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
            Err(_) => Err(Refusal {
                message: format!(
                    "this query costs {points} points, more than the budget of {limit} per minute"
                ),
                retry_after: Duration::from_secs(60),
            }),
        }
    }

    /// Takes one of `key`'s WebSocket connection slots; the slot is given
    /// back when the returned guard drops. `None` when all are taken.
    pub fn open_connection(self: &Arc<Self>, key: &str) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(key.to_string()).or_insert(0);
        if *n >= self.settings.connections {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            limits: self.clone(),
            key: key.to_string(),
        })
    }

    /// Drops the state of callers idle long enough to be back at full
    /// allowance.
    pub fn forget_idle(&self) {
        self.requests.retain_recent();
        self.points.retain_recent();
    }
}

/// One open WebSocket connection of a caller (see
/// [`RateLimits::open_connection`]).
pub struct ConnectionSlot {
    limits: Arc<RateLimits>,
    key: String,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.limits.open.lock()
            && let Some(n) = open.get_mut(&self.key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Whose allowance a request draws on: its token, or its address when
/// anonymous.
pub fn caller_key(principal: &Principal, peer: Option<std::net::IpAddr>) -> String {
    match (&principal.token_id, principal.expires_at) {
        (Some(jti), _) => format!("jti:{jti}"),
        (None, Some(_)) => format!("sub:{}", principal.subject),
        (None, None) => match peer {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".into(),
        },
    }
}

/// Request data for the guard: which budget a request's complexity is
/// charged to.
#[derive(Clone)]
pub struct Budget {
    /// The server's limiters.
    pub limits: std::sync::Arc<RateLimits>,
    /// The caller.
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_beyond_the_burst_wait() {
        let limits = RateLimits::new(RateSettings {
            per_second: 1,
            burst: 3,
            points_per_minute: 100,
            connections: 2,
        });
        for _ in 0..3 {
            assert!(limits.check_request("a").is_ok());
        }
        let refusal = limits.check_request("a").expect_err("over the burst");
        assert!(refusal.retry_after <= Duration::from_secs(1));
        assert!(limits.check_request("b").is_ok(), "callers are independent");
    }

    #[test]
    fn points_are_a_budget_with_what_is_left() {
        let limits = RateLimits::new(RateSettings {
            per_second: 10,
            burst: 10,
            points_per_minute: 100,
            connections: 2,
        });
        assert_eq!(limits.charge("a", 60), Ok(40));
        let spent = limits.charge("a", 60).expect_err("spent");
        assert!(spent.message.contains("spent"), "{}", spent.message);
        assert!(
            limits
                .charge("a", 500)
                .expect_err("too big")
                .message
                .contains("more than")
        );
    }
}
