//! Failed-login throttling (issue 7's abuse limits): per client IP on the shard
//! that accepted the connection, and per account on the shard that owns it. Past
//! `failures_before_delay` failures each answer waits longer (doubling); at
//! `failures_before_block` the key is refused whatever it sends, for
//! `block_seconds`. Shard-local: plain data, no locks.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::config::AuthConfig;
use crate::limits::{LOGIN_DELAY_BASE_MS, LOGIN_DELAY_MAX_MS, THROTTLE_KEYS_MAX};

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

pub struct Throttle<K> {
    records: HashMap<K, Record, ahash::RandomState>,
    failures_before_delay: u32,
    failures_before_block: u32,
    block: Duration,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    pub fn new(cfg: &AuthConfig) -> Throttle<K> {
        Throttle {
            records: HashMap::default(),
            failures_before_delay: cfg.failures_before_delay,
            failures_before_block: cfg.failures_before_block,
            block: Duration::from_secs(cfg.block_seconds),
        }
    }

    /// Whether `key` is refused now.
    pub fn is_blocked(&mut self, key: &K, now: Instant) -> bool {
        self.forget_stale(key, now);
        self.records
            .get(key)
            .and_then(|r| r.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Records a failure; returns how long to wait before answering it.
    pub fn failure(&mut self, key: &K, now: Instant) -> Duration {
        self.forget_stale(key, now);
        if !self.records.contains_key(key) && self.records.len() >= THROTTLE_KEYS_MAX {
            self.evict(now);
            if self.records.len() >= THROTTLE_KEYS_MAX {
                // Full of live records: the other throttle (account or IP) still holds.
                return Duration::from_millis(LOGIN_DELAY_BASE_MS);
            }
        }
        let r = self.records.entry(key.clone()).or_insert(Record {
            failures: 0,
            last: now,
            blocked_until: None,
        });
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        if r.failures >= self.failures_before_block {
            r.blocked_until = Some(now + self.block);
        }
        delay_for(r.failures, self.failures_before_delay)
    }

    pub fn success(&mut self, key: &K) {
        self.records.remove(key);
    }

    /// A record with no failure for a whole block period starts over.
    fn forget_stale(&mut self, key: &K, now: Instant) {
        if let Some(r) = self.records.get(key)
            && now.saturating_duration_since(r.last) >= self.block
            && r.blocked_until.is_none_or(|u| now >= u)
        {
            self.records.remove(key);
        }
    }

    fn evict(&mut self, now: Instant) {
        let block = self.block;
        self.records.retain(|_, r| {
            now.saturating_duration_since(r.last) < block
                || r.blocked_until.is_some_and(|u| now < u)
        });
    }
}

/// No delay up to `free` failures, then 2×, 4×… the base, up to the maximum.
fn delay_for(failures: u32, free: u32) -> Duration {
    if failures <= free {
        return Duration::ZERO;
    }
    let doublings = (failures - free - 1).min(16);
    let ms = LOGIN_DELAY_BASE_MS.saturating_mul(1 << doublings);
    Duration::from_millis(ms.min(LOGIN_DELAY_MAX_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        AuthConfig {
            plaintext_without_tls: None,
            failures_before_delay: 2,
            failures_before_block: 5,
            block_seconds: 60,
            password_min_length: 8,
            ..crate::config::Config::default().auth
        }
    }

    #[test]
    fn delays_grow_then_block_then_expire() {
        let mut t: Throttle<u32> = Throttle::new(&cfg());
        let now = Instant::now();
        let delays: Vec<Duration> = (0..4).map(|_| t.failure(&7, now)).collect();
        assert_eq!(delays[0], Duration::ZERO);
        assert_eq!(delays[1], Duration::ZERO);
        assert!(
            delays[2] > Duration::ZERO && delays[3] > delays[2],
            "{delays:?}"
        );
        assert!(!t.is_blocked(&7, now));
        t.failure(&7, now);
        assert!(t.is_blocked(&7, now));
        assert!(!t.is_blocked(&8, now), "other keys unaffected");
        let later = now + Duration::from_secs(61);
        assert!(!t.is_blocked(&7, later), "block expires");
        assert_eq!(
            t.failure(&7, later),
            Duration::ZERO,
            "and the count starts over"
        );
    }

    #[test]
    fn success_resets() {
        let mut t: Throttle<u32> = Throttle::new(&cfg());
        let now = Instant::now();
        for _ in 0..4 {
            t.failure(&1, now);
        }
        t.success(&1);
        assert_eq!(t.failure(&1, now), Duration::ZERO);
    }

    #[test]
    fn delay_is_capped() {
        assert_eq!(
            delay_for(1000, 0),
            Duration::from_millis(LOGIN_DELAY_MAX_MS)
        );
    }
}
