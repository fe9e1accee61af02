//! Open-loop schedule: with `--rate R` over `C` clients, client `i` sends its `k`-th request at
//! `start + (i + k·C) / R` seconds — the clients interleave into one evenly spaced stream of `R`
//! requests per second. Latency is measured from this intended time, not from when the request
//! actually left, so a server stall shows up in every request it delayed (no coordinated
//! omission). A client that falls behind sends at once and keeps its schedule.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    rate_per_s: f64,
    clients: u64,
}

impl Schedule {
    pub fn new(rate_per_s: f64, clients: u64) -> Option<Schedule> {
        (rate_per_s.is_finite() && rate_per_s > 0.0 && clients > 0).then_some(Schedule {
            rate_per_s,
            clients,
        })
    }

    /// Offset from the run's start of client `client`'s `k`-th request.
    pub fn intended_offset(&self, client: u64, k: u64) -> Duration {
        let slot = client as f64 + k as f64 * self.clients as f64;
        Duration::from_secs_f64(slot / self.rate_per_s)
    }

    /// Requests client `client` is scheduled to send within `duration`.
    pub fn requests_within(&self, client: u64, duration: Duration) -> u64 {
        let slots = duration.as_secs_f64() * self.rate_per_s;
        let first = client as f64;
        if first >= slots {
            return 0;
        }
        ((slots - first) / self.clients as f64).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_interleave_evenly() {
        let s = Schedule::new(1000.0, 4).expect("valid");
        assert_eq!(s.intended_offset(0, 0), Duration::ZERO);
        assert_eq!(s.intended_offset(1, 0), Duration::from_millis(1));
        assert_eq!(s.intended_offset(3, 0), Duration::from_millis(3));
        assert_eq!(s.intended_offset(0, 1), Duration::from_millis(4));
        assert_eq!(s.intended_offset(2, 10), Duration::from_millis(42));
    }

    #[test]
    fn total_requests_match_rate_times_duration() {
        let s = Schedule::new(250.0, 7).expect("valid");
        let d = Duration::from_secs(10);
        let total: u64 = (0..7).map(|c| s.requests_within(c, d)).sum();
        assert_eq!(total, 2500);
        for c in 0..7 {
            let n = s.requests_within(c, d);
            assert!(s.intended_offset(c, n - 1) < d);
            assert!(s.intended_offset(c, n) >= d);
        }
    }

    #[test]
    fn more_clients_than_requests() {
        let s = Schedule::new(2.0, 10).expect("valid");
        let d = Duration::from_secs(1);
        assert_eq!(s.requests_within(0, d), 1);
        assert_eq!(s.requests_within(1, d), 1);
        assert_eq!(s.requests_within(2, d), 0);
    }

    #[test]
    fn invalid_rates() {
        assert!(Schedule::new(0.0, 1).is_none());
        assert!(Schedule::new(f64::NAN, 1).is_none());
        assert!(Schedule::new(10.0, 0).is_none());
    }
}
