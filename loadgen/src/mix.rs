//! Weighted command mixes and the `--mix FILE` format.
//!
//! A mix file is TOML; the simplest one is lines of `name = weight`:
//! ```text
//! # more reading, no deletes
//! fetch_body = 40
//! expunge = 0
//! ```
//! Names not in the file keep their default weight. A section named after the protocol
//! (`[imap]`, `[pop3]`) may be used instead, so one file can hold the mixes of several runs.

use anyhow::{Context, bail};

use crate::rng::Rng;

/// Default IMAP mix: (name, weight, what it does). Shown by `--help`.
pub const IMAP_DEFAULT: &[(&str, u32, &str)] = &[
    (
        "fetch_envelope",
        20,
        "FETCH a:b (FLAGS ENVELOPE) over up to 20 messages",
    ),
    (
        "fetch_body",
        20,
        "FETCH n (RFC822.SIZE BODY.PEEK[]), literal length checked against RFC822.SIZE",
    ),
    ("store_seen", 15, "STORE n +FLAGS (\\Seen)"),
    (
        "search",
        10,
        "UID SEARCH UNSEEN or UID SEARCH FROM <sender>",
    ),
    ("append", 10, "APPEND a generated message to INBOX"),
    ("expunge", 3, "STORE n +FLAGS (\\Deleted) then EXPUNGE"),
    ("noop", 20, "NOOP"),
    ("relogin", 2, "LOGOUT, reconnect, LOGIN, SELECT INBOX"),
];

/// Default POP3 mix.
pub const POP3_DEFAULT: &[(&str, u32, &str)] = &[
    ("retr", 90, "RETR n, byte count checked against LIST"),
    ("stat", 5, "STAT"),
    ("dele", 1, "DELE n (committed at the next QUIT)"),
    ("relogin", 4, "QUIT, reconnect, USER/PASS, STAT, LIST"),
];

#[derive(Debug, Clone)]
pub struct Mix {
    names: Vec<&'static str>,
    /// Cumulative weights, same order as `names`.
    cumulative: Vec<u64>,
}

impl Mix {
    pub fn from_defaults(defaults: &[(&'static str, u32, &str)]) -> Mix {
        let weights: Vec<(&'static str, u32)> = defaults.iter().map(|(n, w, _)| (*n, *w)).collect();
        Mix::from_weights(&weights)
    }

    fn from_weights(weights: &[(&'static str, u32)]) -> Mix {
        let mut total = 0u64;
        let mut names = Vec::new();
        let mut cumulative = Vec::new();
        for (name, w) in weights {
            total += u64::from(*w);
            names.push(*name);
            cumulative.push(total);
        }
        Mix { names, cumulative }
    }

    /// Defaults overridden by the mix file text; `section` is the protocol name.
    pub fn parse(
        text: &str,
        section: &str,
        defaults: &[(&'static str, u32, &str)],
    ) -> anyhow::Result<Mix> {
        let table: toml::Table = text
            .parse()
            .context("mix file is not `name = weight` TOML")?;
        let table = match table.get(section) {
            Some(toml::Value::Table(t)) => t.clone(),
            _ => table,
        };
        let mut weights: Vec<(&'static str, u32)> =
            defaults.iter().map(|(n, w, _)| (*n, *w)).collect();
        for (key, value) in &table {
            if value.is_table() {
                continue; // another protocol's section
            }
            let Some(slot) = weights.iter_mut().find(|(n, _)| *n == key.as_str()) else {
                let known: Vec<&str> = defaults.iter().map(|(n, _, _)| *n).collect();
                bail!(
                    "unknown command {key:?} in mix; known: {}",
                    known.join(", ")
                );
            };
            let w = match value {
                toml::Value::Integer(i) if (0..=1_000_000).contains(i) => *i as u32,
                toml::Value::Float(f) if (0.0..=1_000_000.0).contains(f) => f.round() as u32,
                _ => bail!("weight of {key} must be a number from 0 to 1000000"),
            };
            slot.1 = w;
        }
        let mix = Mix::from_weights(&weights);
        if mix.total() == 0 {
            bail!("all weights in the mix are zero");
        }
        Ok(mix)
    }

    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    pub fn weight(&self, name: &str) -> u64 {
        let i = self.names.iter().position(|n| *n == name);
        i.map_or(0, |i| {
            self.cumulative[i] - if i == 0 { 0 } else { self.cumulative[i - 1] }
        })
    }

    pub fn pick(&self, rng: &mut Rng) -> &'static str {
        let x = rng.below(self.total().max(1));
        let i = self.cumulative.partition_point(|c| *c <= x);
        self.names[i.min(self.names.len() - 1)]
    }
}

/// The `--help` text describing a default mix.
pub fn describe(defaults: &[(&str, u32, &str)]) -> String {
    let total: u32 = defaults.iter().map(|(_, w, _)| w).sum();
    defaults
        .iter()
        .map(|(n, w, what)| format!("  {n:<15} {w:>3}/{total}  {what}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_override_defaults() {
        let mix = Mix::parse(
            "# comment\nfetch_body = 50\nexpunge = 0\n",
            "imap",
            IMAP_DEFAULT,
        )
        .expect("valid");
        assert_eq!(mix.weight("fetch_body"), 50);
        assert_eq!(mix.weight("expunge"), 0);
        assert_eq!(mix.weight("noop"), 20);
    }

    #[test]
    fn protocol_sections() {
        let text = "[imap]\nnoop = 1\n[pop3]\ndele = 0\nretr = 10\n";
        let pop = Mix::parse(text, "pop3", POP3_DEFAULT).expect("valid");
        assert_eq!(pop.weight("dele"), 0);
        assert_eq!(pop.weight("retr"), 10);
        let imap = Mix::parse(text, "imap", IMAP_DEFAULT).expect("valid");
        assert_eq!(imap.weight("noop"), 1);
    }

    #[test]
    fn bad_files_are_rejected() {
        assert!(Mix::parse("fetch_bdoy = 5", "imap", IMAP_DEFAULT).is_err());
        assert!(Mix::parse("noop = -1", "imap", IMAP_DEFAULT).is_err());
        assert!(Mix::parse("noop = \"x\"", "imap", IMAP_DEFAULT).is_err());
        assert!(Mix::parse("noop 5", "imap", IMAP_DEFAULT).is_err());
        let zeros = "retr = 0\nstat = 0\ndele = 0\nrelogin = 0\n";
        assert!(Mix::parse(zeros, "pop3", POP3_DEFAULT).is_err());
    }

    #[test]
    fn pick_follows_weights() {
        let mix = Mix::parse(
            "retr = 3\nstat = 1\ndele = 0\nrelogin = 0",
            "pop3",
            POP3_DEFAULT,
        )
        .expect("valid");
        let mut rng = Rng::new(3);
        let mut retr = 0;
        for _ in 0..10_000 {
            match mix.pick(&mut rng) {
                "retr" => retr += 1,
                "stat" => {}
                other => panic!("zero-weight command picked: {other}"),
            }
        }
        assert!((7_000..8_000).contains(&retr), "{retr}");
    }
}
