//! Resident memory of a server process and all its descendants, read from /proc. Summing the
//! tree is fair to servers that fork a process per connection (Dovecot) and to those that
//! serve everything from one (msgstore).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

/// VmRSS of `pid` and every descendant, in bytes.
pub fn tree_rss_bytes(pid: u32) -> std::io::Result<u64> {
    let tree = descendants(pid)?;
    let mut total = 0;
    for p in tree {
        // A process may exit between listing and reading; that is not an error.
        if let Ok(status) = fs::read_to_string(format!("/proc/{p}/status")) {
            total += vm_rss_bytes(&status).unwrap_or(0);
        }
    }
    Ok(total)
}

/// Proportional set size (shared pages divided among their users) of `pid` and every
/// descendant, in bytes: fairer than RSS to a process-per-connection server, whose processes
/// share most of their pages.
pub fn tree_pss_bytes(pid: u32) -> std::io::Result<u64> {
    let tree = descendants(pid)?;
    let mut total = 0;
    for p in tree {
        if let Ok(rollup) = fs::read_to_string(format!("/proc/{p}/smaps_rollup")) {
            total += field_kb(&rollup, "Pss:").unwrap_or(0) * 1024;
        }
    }
    Ok(total)
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

fn vm_rss_bytes(status: &str) -> Option<u64> {
    field_kb(status, "VmRSS:").map(|kb| kb * 1024)
}

fn field_kb(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_status() {
        assert_eq!(parent_of("123 (imap (x) y) S 45 123 123 0"), Some(45));
        assert_eq!(
            vm_rss_bytes("Name:\tx\nVmRSS:\t   2048 kB\n"),
            Some(2048 * 1024)
        );
    }

    #[test]
    fn own_process_has_memory() {
        let me = std::process::id();
        assert!(descendants(me).expect("proc").contains(&me));
        assert!(tree_rss_bytes(me).expect("proc") > 0);
        assert!(tree_pss_bytes(me).expect("proc") > 0);
    }
}
