//! Memory of a server process and all its descendants, read from /proc, and the ramp that
//! turns it into a cost per idle connection. Summing the tree is fair to servers that fork a
//! process per connection (Dovecot) and to those that serve everything from one (msgstore).
//!
//! The cost per connection is the least-squares slope of memory over several connection
//! counts held at once, after a warm-up batch was opened and closed: one-time costs (the
//! first password hashes' working memory, caches, pages touched for the first time) land in
//! the warm-up or the intercept instead of being divided among the connections.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::idle::IdleControl;

/// Memory of a process tree at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TreeMemory {
    /// Resident set size summed over the processes: a page shared by k of them counts k times.
    pub rss_bytes: u64,
    /// Proportional set size summed: a page shared by k processes counts 1/k in each, the fair
    /// measure for a server that forks per connection.
    pub pss_bytes: u64,
    pub processes: u64,
}

/// Rss and Pss of `pid` and every descendant, both from /proc/PID/smaps_rollup (one read
/// per process, so the two describe the same moment).
pub fn tree_memory(pid: u32) -> std::io::Result<TreeMemory> {
    let tree = descendants(pid)?;
    let mut total = TreeMemory::default();
    for p in tree {
        // A process may exit between listing and reading; that is not an error.
        if let Ok(rollup) = fs::read_to_string(format!("/proc/{p}/smaps_rollup")) {
            total.rss_bytes += field_kb(&rollup, "Rss:").unwrap_or(0) * 1024;
            total.pss_bytes += field_kb(&rollup, "Pss:").unwrap_or(0) * 1024;
            total.processes += 1;
        }
    }
    Ok(total)
}

/// One point of the ramp: the server's memory with `held` connections idling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryPoint {
    pub held: u64,
    #[serde(flatten)]
    pub memory: TreeMemory,
}

/// How the ramp goes: open and close `warmup` connections, then hold `top * k / steps`
/// connections for k = 1..=steps, measuring at each.
#[derive(Debug, Clone, Copy)]
pub struct Ramp {
    pub warmup: u64,
    pub steps: u64,
    pub top: u64,
}

/// What the ramp measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RampResult {
    /// After the warm-up batch was closed, before the first step.
    pub baseline: Option<MemoryPoint>,
    pub points: Vec<MemoryPoint>,
    /// Why the ramp ended early, if it did.
    pub incomplete: Option<String>,
}

impl RampResult {
    /// Least-squares bytes per connection of RSS and of PSS over the points; `None` with fewer
    /// than two distinct connection counts.
    pub fn slopes(&self) -> Option<(f64, f64)> {
        let xs: Vec<f64> = self.points.iter().map(|p| p.held as f64).collect();
        let rss: Vec<f64> = self
            .points
            .iter()
            .map(|p| p.memory.rss_bytes as f64)
            .collect();
        let pss: Vec<f64> = self
            .points
            .iter()
            .map(|p| p.memory.pss_bytes as f64)
            .collect();
        Some((slope(&xs, &rss)?, slope(&xs, &pss)?))
    }

    /// Says so when memory fell from one step to the next although more connections were
    /// held: the allocator gave memory back in the middle of the ramp (mimalloc purges
    /// freed pages late, e.g. the warm-up's password-hashing buffers), and the slope then
    /// understates the cost; run again.
    pub fn warning(&self) -> Option<String> {
        let fell = self.points.windows(2).find(|w| {
            w[1].memory.rss_bytes < w[0].memory.rss_bytes
                || w[1].memory.pss_bytes < w[0].memory.pss_bytes
        })?;
        Some(format!(
            "memory fell from {} to {} held connections (RSS {} -> {} KiB): the server \
             gave memory back during the ramp, so the slope is unreliable; run again",
            fell[0].held,
            fell[1].held,
            fell[0].memory.rss_bytes / 1024,
            fell[1].memory.rss_bytes / 1024
        ))
    }
}

/// Time for a server to finish what the last connections started (page faults, deferred
/// frees, a forked process settling) before memory is read.
const SETTLE: Duration = Duration::from_secs(2);
/// Readings per point, this far apart; their median is the point.
const READINGS: usize = 3;
const READING_GAP: Duration = Duration::from_millis(300);
/// How often the ramp looks at the held count while it waits for a step.
const HELD_POLL: Duration = Duration::from_millis(50);

/// Runs the ramp on the main thread while the workers hold connections as `control` says;
/// ends the run (`control.finish()`) when done or at `deadline`.
pub fn run_ramp(pid: u32, ramp: Ramp, control: &IdleControl, deadline: Instant) -> RampResult {
    let mut result = RampResult::default();
    let outcome = (|| -> Result<(), String> {
        if ramp.warmup > 0 {
            control.set_level(ramp.warmup);
            wait_held(control, deadline, "warm-up", |h| h >= ramp.warmup)?;
            control.set_level(0);
            wait_held(control, deadline, "closing the warm-up", |h| h == 0)?;
        }
        result.baseline = Some(measure(pid, 0, deadline)?);
        for k in 1..=ramp.steps {
            let level = ramp.top * k / ramp.steps;
            control.set_level(level);
            wait_held(control, deadline, "ramp step", |h| h >= level)?;
            let point = measure(pid, level, deadline)?;
            eprintln!(
                "loadgen idle: {level} held: server RSS {:.1} MiB PSS {:.1} MiB ({} processes)",
                point.memory.rss_bytes as f64 / (1 << 20) as f64,
                point.memory.pss_bytes as f64 / (1 << 20) as f64,
                point.memory.processes
            );
            result.points.push(point);
        }
        Ok(())
    })();
    result.incomplete = outcome.err();
    control.finish();
    result
}

fn wait_held(
    control: &IdleControl,
    deadline: Instant,
    what: &str,
    done: impl Fn(u64) -> bool,
) -> Result<(), String> {
    loop {
        let held = control.held();
        if done(held) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{what} unfinished at the deadline ({held} held)"));
        }
        std::thread::sleep(HELD_POLL);
    }
}

/// Median of a few readings after the settle time.
fn measure(pid: u32, held: u64, deadline: Instant) -> Result<MemoryPoint, String> {
    std::thread::sleep(SETTLE);
    let mut readings = Vec::with_capacity(READINGS);
    for i in 0..READINGS {
        if i > 0 {
            std::thread::sleep(READING_GAP);
        }
        readings.push(tree_memory(pid).map_err(|e| format!("reading /proc/{pid}: {e}"))?);
    }
    if Instant::now() >= deadline {
        return Err(format!("measuring {held} held unfinished at the deadline"));
    }
    let median = |f: fn(&TreeMemory) -> u64| {
        let mut v: Vec<u64> = readings.iter().map(f).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    Ok(MemoryPoint {
        held,
        memory: TreeMemory {
            rss_bytes: median(|m| m.rss_bytes),
            pss_bytes: median(|m| m.pss_bytes),
            processes: median(|m| m.processes),
        },
    })
}

/// Least-squares slope of `ys` over `xs`; `None` unless there are two distinct xs.
pub fn slope(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return None;
    }
    let mx = xs[..n].iter().sum::<f64>() / n as f64;
    let my = ys[..n].iter().sum::<f64>() / n as f64;
    let sxx: f64 = xs[..n].iter().map(|x| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xs[..n]
        .iter()
        .zip(&ys[..n])
        .map(|(x, y)| (x - mx) * (y - my))
        .sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// `pid` and all processes below it.
pub fn descendants(pid: u32) -> std::io::Result<BTreeSet<u32>> {
    fs::metadata(format!("/proc/{pid}"))?;
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat"))
            && let Some(ppid) = parent_of(&stat)
        {
            children.entry(ppid).or_default().push(p);
        }
    }
    let mut out = BTreeSet::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if out.insert(p)
            && let Some(kids) = children.get(&p)
        {
            todo.extend(kids);
        }
    }
    Ok(out)
}

/// The ppid field of /proc/PID/stat; the command name may contain spaces and parentheses,
/// so fields are counted from the last `)`.
fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

fn field_kb(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_smaps_rollup() {
        assert_eq!(parent_of("123 (imap (x) y) S 45 123 123 0"), Some(45));
        assert_eq!(
            field_kb("Rss:  12 kB\nPss:\t   2048 kB\n", "Pss:"),
            Some(2048)
        );
    }

    #[test]
    fn slope_is_least_squares() {
        assert_eq!(slope(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(10.0));
        // Noise around y = 2x + 5.
        let s = slope(&[100.0, 200.0, 300.0], &[206.0, 404.0, 606.0]).expect("slope");
        assert!((s - 2.0).abs() < 1e-9, "{s}");
        assert_eq!(slope(&[1.0], &[1.0]), None);
        assert_eq!(slope(&[2.0, 2.0], &[1.0, 5.0]), None);
    }

    #[test]
    fn memory_falling_mid_ramp_is_a_warning() {
        let point = |held, kib: u64| MemoryPoint {
            held,
            memory: TreeMemory {
                rss_bytes: kib * 1024,
                pss_bytes: kib * 1024,
                processes: 1,
            },
        };
        let mut r = RampResult {
            points: vec![point(100, 1000), point(200, 1100), point(300, 1200)],
            ..RampResult::default()
        };
        assert_eq!(r.warning(), None);
        assert_eq!(r.slopes(), Some((1024.0, 1024.0)));
        r.points[2] = point(300, 900);
        let w = r.warning().expect("warning");
        assert!(w.contains("from 200 to 300"), "{w}");
    }

    #[test]
    fn own_process_has_memory() {
        let me = std::process::id();
        assert!(descendants(me).expect("proc").contains(&me));
        let m = tree_memory(me).expect("proc");
        assert!(m.rss_bytes >= m.pss_bytes && m.pss_bytes > 0 && m.processes >= 1);
    }
}
