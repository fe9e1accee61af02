//! Latency histograms per command, error reasons, and the final report (text table and JSON).
//!
//! Each worker owns a `Snapshot` for the current interval and ships it to the main thread once
//! per `SNAPSHOT_INTERVAL` (no shared state in the hot loop); the main thread merges them into
//! the totals, the live progress line and the timeline used by the plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::limits::{ERROR_REASON_BYTES_MAX, ERROR_REASONS_MAX, LATENCY_US_MAX};

pub type Hist = Histogram<u64>;

/// Where errors go once `ERROR_REASONS_MAX - 1` distinct reasons are known.
const OTHER_REASON: &str = "other (too many distinct reasons)";

pub fn new_hist() -> Hist {
    // 3 significant digits from 1 µs to an hour: ~0.1% error, a few tens of KB per histogram.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("static histogram bounds are valid")
}

/// What one worker measured during one interval (or, merged, during the whole run).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub commands: BTreeMap<&'static str, Hist>,
    pub errors: BTreeMap<String, u64>,
    /// Additive counters (recipients delivered, bytes fetched...).
    pub counters: BTreeMap<&'static str, u64>,
    /// Levels reported as their latest value (connections held); summed over workers.
    pub gauges: BTreeMap<&'static str, u64>,
}

impl Snapshot {
    pub fn record(&mut self, command: &'static str, latency_us: u64) {
        self.commands
            .entry(command)
            .or_insert_with(new_hist)
            .saturating_record(latency_us.max(1));
    }

    pub fn error(&mut self, reason: &str) {
        let mut reason = reason.to_string();
        if reason.len() > ERROR_REASON_BYTES_MAX {
            let mut cut = ERROR_REASON_BYTES_MAX;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        if !self.errors.contains_key(&reason) && self.errors.len() >= ERROR_REASONS_MAX - 1 {
            reason = OTHER_REASON.to_string();
        }
        *self.errors.entry(reason).or_insert(0) += 1;
    }

    pub fn count(&mut self, counter: &'static str, n: u64) {
        *self.counters.entry(counter).or_insert(0) += n;
    }

    pub fn ops(&self) -> u64 {
        self.commands.values().map(Hist::len).sum()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other` into `self`; gauges are summed (each worker reports its own level).
    pub fn merge(&mut self, other: &Snapshot) {
        for (name, h) in &other.commands {
            let mine = self.commands.entry(name).or_insert_with(new_hist);
            // Same bounds everywhere, so adding cannot fail; saturate if it ever did.
            if mine.add(h).is_err() {
                for v in h.iter_recorded() {
                    mine.saturating_record_n(v.value_iterated_to(), v.count_at_value());
                }
            }
        }
        for (reason, n) in &other.errors {
            let key =
                if self.errors.contains_key(reason) || self.errors.len() < ERROR_REASONS_MAX - 1 {
                    reason.clone()
                } else {
                    OTHER_REASON.to_string()
                };
            *self.errors.entry(key).or_insert(0) += n;
        }
        for (name, n) in &other.counters {
            *self.counters.entry(name).or_insert(0) += n;
        }
        for (name, n) in &other.gauges {
            *self.gauges.entry(name).or_insert(0) += n;
        }
    }

    /// p99 over all commands together, for the progress line.
    pub fn p99_us_all(&self) -> u64 {
        let mut all = new_hist();
        for h in self.commands.values() {
            let _ = all.add(h);
        }
        if all.is_empty() {
            0
        } else {
            all.value_at_quantile(0.99)
        }
    }
}

/// One point of the throughput timeline.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub t_s: f64,
    pub ops_per_s: f64,
    pub errors: u64,
    pub p99_us: u64,
}

#[derive(Debug)]
pub struct Report {
    pub mode: String,
    /// Seconds over which throughput is computed (the measured window).
    pub elapsed_s: f64,
    pub totals: Snapshot,
    pub timeline: Vec<Sample>,
    /// Requests still outstanding when the grace period ran out.
    pub abandoned: u64,
    /// Extra top-level JSON keys (RSS figures, run parameters).
    pub extra: serde_json::Map<String, Value>,
}

impl Report {
    pub fn ops(&self) -> u64 {
        self.totals.ops()
    }

    pub fn errors(&self) -> u64 {
        self.totals.error_count()
    }

    pub fn ops_per_sec(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.ops() as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// errors / ops; infinite when nothing succeeded.
    pub fn error_ratio(&self) -> f64 {
        match (self.errors(), self.ops()) {
            (0, _) => 0.0,
            (_, 0) => f64::INFINITY,
            (e, o) => e as f64 / o as f64,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut commands = serde_json::Map::new();
        for (name, h) in &self.totals.commands {
            commands.insert(
                name.to_string(),
                json!({
                    "count": h.len(),
                    "ops_per_sec": if self.elapsed_s > 0.0 { h.len() as f64 / self.elapsed_s } else { 0.0 },
                    "mean_us": h.mean(),
                    "p50_us": h.value_at_quantile(0.50) as f64,
                    "p90_us": h.value_at_quantile(0.90) as f64,
                    "p99_us": h.value_at_quantile(0.99) as f64,
                    "p999_us": h.value_at_quantile(0.999) as f64,
                    "max_us": h.max() as f64,
                }),
            );
        }
        let mut out = serde_json::Map::new();
        out.insert("ops_per_sec".into(), json!(self.ops_per_sec()));
        out.insert("errors".into(), json!(self.errors()));
        out.insert("commands".into(), Value::Object(commands));
        let mut all = new_hist();
        for h in self.totals.commands.values() {
            let _ = all.add(h);
        }
        out.insert(
            "latency_all".into(),
            json!({
                "count": all.len(),
                "p50_us": all.value_at_quantile(0.50) as f64,
                "p99_us": all.value_at_quantile(0.99) as f64,
                "p999_us": all.value_at_quantile(0.999) as f64,
                "max_us": all.max() as f64,
            }),
        );
        out.insert("mode".into(), json!(self.mode));
        out.insert("ops".into(), json!(self.ops()));
        out.insert("elapsed_s".into(), json!(self.elapsed_s));
        out.insert("abandoned".into(), json!(self.abandoned));
        out.insert("error_reasons".into(), json!(self.totals.errors));
        out.insert("counters".into(), json!(self.totals.counters));
        out.insert(
            "timeline".into(),
            Value::Array(
                self.timeline
                    .iter()
                    .map(|s| json!({"t_s": s.t_s, "ops_per_sec": s.ops_per_s, "errors": s.errors, "p99_us": s.p99_us}))
                    .collect(),
            ),
        );
        for (k, v) in &self.extra {
            out.insert(k.clone(), v.clone());
        }
        Value::Object(out)
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<16} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "command", "count", "ops/s", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, h) in &self.totals.commands {
            let _ = writeln!(
                s,
                "{:<16} {:>9} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name,
                h.len(),
                if self.elapsed_s > 0.0 {
                    h.len() as f64 / self.elapsed_s
                } else {
                    0.0
                },
                human_us(h.value_at_quantile(0.50)),
                human_us(h.value_at_quantile(0.90)),
                human_us(h.value_at_quantile(0.99)),
                human_us(h.value_at_quantile(0.999)),
                human_us(h.max()),
            );
        }
        let _ = writeln!(
            s,
            "{:<16} {:>9} {:>10.1}   errors {} ({:.4}% of ops){}",
            "total",
            self.ops(),
            self.ops_per_sec(),
            self.errors(),
            if self.ops() > 0 {
                100.0 * self.errors() as f64 / self.ops() as f64
            } else {
                0.0
            },
            if self.abandoned > 0 {
                format!(", {} abandoned at exit", self.abandoned)
            } else {
                String::new()
            }
        );
        for (reason, n) in &self.totals.errors {
            let _ = writeln!(s, "  error x{n}: {reason}");
        }
        for (name, n) in &self.totals.counters {
            let _ = writeln!(s, "  {name}: {n}");
        }
        s
    }
}

/// `850µs`, `12.3ms`, `1.25s`.
pub fn human_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut a = Snapshot::default();
        for us in 1..=100 {
            a.record("noop", us * 10);
        }
        a.error("timeout: FETCH");
        let mut b = Snapshot::default();
        b.record("fetch_body", 2_500);
        b.record("noop", 5);
        b.error("timeout: FETCH");
        b.count("recipients", 3);
        let mut totals = Snapshot::default();
        totals.merge(&a);
        totals.merge(&b);
        Report {
            mode: "imap".into(),
            elapsed_s: 2.0,
            totals,
            timeline: vec![],
            abandoned: 0,
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn json_shape() {
        let v = report().to_json();
        assert_eq!(v["ops_per_sec"].as_f64(), Some(51.0));
        assert_eq!(v["errors"].as_u64(), Some(2));
        let noop = &v["commands"]["noop"];
        assert_eq!(noop["count"].as_u64(), Some(101));
        for key in ["p50_us", "p99_us", "p999_us", "max_us"] {
            assert!(noop[key].is_f64(), "{key} must be a number: {noop}");
        }
        assert!((noop["p50_us"].as_f64().expect("f64") - 500.0).abs() < 5.0);
        assert_eq!(noop["max_us"].as_f64(), Some(1000.0));
        assert_eq!(v["commands"]["fetch_body"]["count"].as_u64(), Some(1));
        assert_eq!(v["error_reasons"]["timeout: FETCH"].as_u64(), Some(2));
        assert_eq!(v["counters"]["recipients"].as_u64(), Some(3));
        assert_eq!(v["latency_all"]["count"].as_u64(), Some(102));
        let max = v["latency_all"]["max_us"].as_f64().expect("max");
        assert!((max - 2500.0).abs() < 5.0, "{max}");
    }

    #[test]
    fn table_lists_commands_and_errors() {
        let t = report().table();
        assert!(t.contains("noop"), "{t}");
        assert!(t.contains("fetch_body"), "{t}");
        assert!(t.contains("error x2: timeout: FETCH"), "{t}");
    }

    #[test]
    fn error_ratio() {
        let mut r = report();
        assert!((r.error_ratio() - 2.0 / 102.0).abs() < 1e-9);
        r.totals = Snapshot::default();
        assert_eq!(r.error_ratio(), 0.0);
        r.totals.error("x");
        assert!(r.error_ratio().is_infinite());
    }

    #[test]
    fn error_reasons_are_bounded() {
        let mut s = Snapshot::default();
        for i in 0..1000 {
            s.error(&format!("garbage {i} {}", "x".repeat(500)));
        }
        assert!(s.errors.len() <= ERROR_REASONS_MAX);
        assert_eq!(s.error_count(), 1000);
        assert!(
            s.errors
                .keys()
                .all(|k| k.len() <= ERROR_REASON_BYTES_MAX + 40)
        );
    }

    #[test]
    fn readable_units() {
        assert_eq!(human_us(850), "850µs");
        assert_eq!(human_us(12_345), "12.3ms");
        assert_eq!(human_us(1_250_000), "1.25s");
    }
}
