//! The forwarding database (DESIGN §3, issue 4): hashed in the fanout tree like the
//! accounts, with no central list, so an entry belongs to the shard that owns its
//! address and a listing walks the tree.
//!
//! ```text
//! <root>/forward/<ab>/<cd>/<canonical address>     one file per forwarded address
//! ```
//!
//! The root and the fanout directories are those of the address's bucket, exactly as for
//! `users/` (`printf %s ADDRESS | md5sum` gives them). An address may have a forwarding
//! entry without having an account. Each file is text in the line format of the store's
//! small files:
//!
//! ```text
//! msgstore-forward 1                                magic and version
//! address alice@example.com                         canonical address; must match the file name
//! keep_copy no                                      yes: deliver to the local account too
//! targets bob@example.com Carol+news@example.org    1..=FORWARD_TARGETS_MAX targets, one space apart
//! crc32 1a2b3c4d                                    CRC-32 (IEEE) of every preceding byte
//! ```
//!
//! Targets are addresses, local or external; which is which is decided when mail is
//! routed ([`resolve`]), not stored, so a target that later gets an account becomes
//! local without a rewrite. A target is kept as given (local part case and `+detail`
//! matter to a remote host) except that its domain is lower-cased; it is looked up in
//! this database by its canonical form. Version policy as for `profile`: any change an
//! older reader would misread bumps the version; a reader rejects a wrong magic, an
//! unknown version, a bad checksum, an unknown, missing or repeated key, as `Corrupt`.
//!
//! Writes go through `write_atomic` (temp file, fdatasync, rename, directory fsync): a
//! reader sees the old entry or the new one, never half of one.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::address::Address;
use crate::durable::{create_dir_durable, read_bounded, sync_dir, write_atomic};
use crate::error::{Result, StoreError};
use crate::hash::{Bucket, digest, fanout_dirs};
use crate::limits::{
    FORWARD_FILE_BYTES_MAX, FORWARD_HOPS_MAX, FORWARD_RESOLVED_MAX, FORWARD_TARGETS_MAX,
};
use crate::store::Store;
use crate::textfile;

/// Directory of forwarding entries inside a root.
pub const FORWARD_DIR: &str = "forward";
/// Magic word on the first line.
pub const FORWARD_MAGIC: &str = "msgstore-forward";
/// The only version this build reads and writes.
pub const FORWARD_VERSION: u32 = 1;

/// One forwarding target: a valid address, kept as given except for the domain's case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    text: String,
    canonical: Address,
}

impl Target {
    /// Checks a target address. It must parse as an address (see [`Address`]) and may
    /// not hold a comma: targets are listed comma-separated to the MTA (socketmap
    /// `virtual`), where a comma would split one address in two.
    pub fn parse(input: &str) -> Result<Target> {
        let invalid = |reason: &'static str| StoreError::InvalidAddress {
            input: input.to_owned(),
            reason,
        };
        if input.contains(',') {
            return Err(invalid("comma in a forwarding target"));
        }
        let (canonical, _detail) = Address::parse_recipient(input)?;
        let (local, domain) = input
            .rsplit_once('@')
            .ok_or_else(|| invalid("missing '@'"))?;
        Ok(Target {
            text: format!("{local}@{}", domain.to_ascii_lowercase()),
            canonical,
        })
    }

    /// The target as it is sent on (`Carol+news@example.org`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The canonical address: what the target is looked up as here (`carol@example.org`).
    pub fn canonical(&self) -> &Address {
        &self.canonical
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where mail for a forwarded address goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// 1..=`FORWARD_TARGETS_MAX` targets, no two with the same canonical address.
    pub targets: Vec<Target>,
    /// Also deliver to the forwarded address's own account (when it is local).
    pub keep_copy: bool,
}

impl Forward {
    /// Validates targets for `addr`: at least one, at most `FORWARD_TARGETS_MAX`, each an
    /// address, none twice, none the address itself (that is what `keep_copy` is for).
    pub fn new(addr: &Address, targets: &[impl AsRef<str>], keep_copy: bool) -> Result<Forward> {
        let targets = targets
            .iter()
            .map(|t| Target::parse(t.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let forward = Forward { targets, keep_copy };
        forward.validate(addr)?;
        Ok(forward)
    }

    fn validate(&self, addr: &Address) -> Result<()> {
        let invalid = |reason: String| {
            Err(StoreError::InvalidValue {
                field: "targets",
                reason,
            })
        };
        if self.targets.is_empty() {
            return invalid("a forward needs at least one target".into());
        }
        if self.targets.len() > FORWARD_TARGETS_MAX {
            return invalid(format!(
                "{} targets, at most {FORWARD_TARGETS_MAX} allowed",
                self.targets.len()
            ));
        }
        let mut seen = HashSet::new();
        for target in &self.targets {
            let canonical = target.canonical();
            if canonical == addr {
                return invalid(format!(
                    "{target} forwards to itself (use keep_copy to keep a copy)"
                ));
            }
            if !seen.insert(canonical.clone()) {
                return invalid(format!("{target} is given twice"));
            }
        }
        Ok(())
    }

    /// Serialises the entry of `addr`.
    pub fn to_bytes(&self, addr: &Address) -> Result<Vec<u8>> {
        self.validate(addr)?;
        let targets: Vec<&str> = self.targets.iter().map(Target::as_str).collect();
        textfile::encode(
            FORWARD_MAGIC,
            FORWARD_VERSION,
            &[
                ("address", addr.as_str()),
                ("keep_copy", if self.keep_copy { "yes" } else { "no" }),
                ("targets", &targets.join(" ")),
            ],
        )
    }

    /// Parses an entry file; `path` is for error messages. Anything off is `Corrupt`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Address, Forward)> {
        if bytes.len() > FORWARD_FILE_BYTES_MAX {
            return Err(StoreError::corrupt(path, "forward entry is too large"));
        }
        let mut fields = textfile::decode(path, bytes, FORWARD_MAGIC, FORWARD_VERSION)?;
        let mut take = |key: &str| textfile::take(path, &mut fields, key);
        let address = take("address")?;
        let keep_copy = take("keep_copy")?;
        let targets = take("targets")?;
        textfile::no_unknown_keys(path, &fields)?;
        let corrupt = |reason: String| StoreError::corrupt(path, reason);
        let addr = Address::parse(address).map_err(|e| corrupt(e.to_string()))?;
        if addr.as_str() != address {
            return Err(corrupt(format!("address {address:?} is not canonical")));
        }
        let keep_copy = match keep_copy {
            "yes" => true,
            "no" => false,
            other => return Err(corrupt(format!("keep_copy is {other:?}, not yes or no"))),
        };
        let targets: Vec<&str> = targets.split(' ').collect();
        let forward =
            Forward::new(&addr, &targets, keep_copy).map_err(|e| corrupt(e.to_string()))?;
        Ok((addr, forward))
    }
}

/// Where mail for one recipient goes once the forwarding database is followed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Resolution {
    /// Local accounts to deliver to (canonical, no `+detail`), first-seen order, no repeats.
    pub local: Vec<Address>,
    /// The same local deliveries with the `+detail` the forward entry named
    /// (`bob+lists@example.com` files into bob's folder `lists`); `None` for the
    /// address itself (keep-copy) and targets without one. No repeats of a pair.
    pub local_targets: Vec<(Address, Option<String>)>,
    /// External addresses for the outbound queue, as given in the entries, no repeats.
    pub external: Vec<String>,
    /// A loop (a→b→a), a chain past `FORWARD_HOPS_MAX` hops or a fan-out past
    /// `FORWARD_RESOLVED_MAX` addresses: the engine bounces instead of delivering.
    pub loop_detected: bool,
    /// Why `loop_detected` is set, for the bounce text (`forwarding loop: a -> b -> a`).
    pub problem: Option<String>,
    /// The recipient itself has a forwarding entry.
    pub forwarded: bool,
}

impl Store {
    /// `<root>/forward/<ab>/<cd>/<address>`: where `addr`'s entry lives (it may not exist).
    pub fn forward_path(&self, addr: &Address) -> PathBuf {
        let digest = digest(addr);
        let mut path = self.root_for(Bucket::of_digest(&digest)).join(FORWARD_DIR);
        path.extend(fanout_dirs(&digest, self.fanout_levels()));
        path.push(addr.as_str());
        path
    }

    /// Creates or replaces the forwarding entry of `addr` (validated, durable).
    pub fn set_forward(
        &self,
        addr: &Address,
        targets: &[impl AsRef<str>],
        keep_copy: bool,
    ) -> Result<Forward> {
        let forward = Forward::new(addr, targets, keep_copy)?;
        self.put_forward(addr, &forward)?;
        Ok(forward)
    }

    /// Writes an already built entry.
    pub fn put_forward(&self, addr: &Address, forward: &Forward) -> Result<()> {
        let bytes = forward.to_bytes(addr)?;
        let path = self.forward_path(addr);
        if let Some(dir) = path.parent() {
            create_dir_durable(dir)?;
        }
        write_atomic(&path, &bytes)
    }

    /// The forwarding entry of `addr`, `None` when there is none; a damaged file is
    /// `Corrupt` (the caller answers "try later", it does not deliver around it).
    pub fn forward(&self, addr: &Address) -> Result<Option<Forward>> {
        let path = self.forward_path(addr);
        let bytes = match read_bounded(&path, FORWARD_FILE_BYTES_MAX) {
            Ok(bytes) => bytes,
            Err(StoreError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let (found, forward) = Forward::parse(&path, &bytes)?;
        if found != *addr {
            return Err(StoreError::corrupt(&path, format!("entry is for {found}")));
        }
        Ok(Some(forward))
    }

    /// Removes the entry of `addr`; `NoSuchForward` when there is none.
    pub fn delete_forward(&self, addr: &Address) -> Result<()> {
        let path = self.forward_path(addr);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(StoreError::NoSuchForward {
                    address: addr.to_string(),
                });
            }
            Err(e) => return Err(StoreError::io(&path, e)),
        }
        match path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }

    /// Every readable forwarding entry, sorted by address; damaged entries are left out
    /// (see [`Store::list_forwards_where`] to see them).
    pub fn list_forwards(&self) -> Result<Vec<(Address, Forward)>> {
        Ok(self.list_forwards_where(|_| true)?.entries)
    }

    /// The entries whose bucket satisfies `pred` (a shard lists its own), sorted, and the
    /// damaged ones. Skips dot-files (writes in progress) and files that are not where
    /// [`Store::forward_path`] would look for them.
    pub fn list_forwards_where(&self, pred: impl Fn(Bucket) -> bool) -> Result<ForwardListing> {
        let mut listing = ForwardListing::default();
        for root in self.roots() {
            let mut prefix = Vec::new();
            self.walk_forwards(&root.join(FORWARD_DIR), &mut prefix, &pred, &mut listing)?;
        }
        listing.entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(listing)
    }

    fn walk_forwards(
        &self,
        dir: &Path,
        prefix: &mut Vec<u8>,
        pred: &dyn Fn(Bucket) -> bool,
        listing: &mut ForwardListing,
    ) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io(dir, e)),
        };
        let leaf = prefix.len() == usize::from(self.fanout_levels());
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if leaf {
                if kind.is_file() {
                    self.list_one(&entry.path(), &name, pred, listing);
                }
                continue;
            }
            let Some(byte) = hex_byte(&name).filter(|_| kind.is_dir()) else {
                continue;
            };
            prefix.push(byte);
            let bucket_known = prefix.len() >= 2;
            if !bucket_known || pred(Bucket(u16::from_be_bytes([prefix[0], prefix[1]]))) {
                self.walk_forwards(&entry.path(), prefix, pred, listing)?;
            }
            prefix.pop();
        }
        Ok(())
    }

    fn list_one(
        &self,
        path: &Path,
        name: &str,
        pred: &dyn Fn(Bucket) -> bool,
        listing: &mut ForwardListing,
    ) {
        let Ok(addr) = Address::parse(name) else {
            return;
        };
        if addr.as_str() != name || self.forward_path(&addr) != path || !pred(Bucket::of(&addr)) {
            return;
        }
        match self.forward(&addr) {
            Ok(Some(forward)) => listing.entries.push((addr, forward)),
            // Removed while we walked.
            Ok(None) => {}
            Err(e) => listing.damaged.push((addr, e)),
        }
    }
}

/// What [`Store::list_forwards_where`] found.
#[derive(Debug, Default)]
pub struct ForwardListing {
    /// Readable entries, sorted by address.
    pub entries: Vec<(Address, Forward)>,
    /// Entries that could not be read, with the reason (an operator repairs or deletes them).
    pub damaged: Vec<(Address, StoreError)>,
}

/// Follows the forwarding database from `addr`: chains (a→b→c) are followed, `keep_copy`
/// adds the forwarded address itself, an address without an entry is a destination —
/// local when `is_local` says so (an account here), external otherwise. A loop, a chain
/// past `FORWARD_HOPS_MAX` hops or more than `FORWARD_RESOLVED_MAX` addresses set
/// `loop_detected` (the engine bounces). A damaged entry on the way is an error: the
/// caller answers with a temporary failure rather than deliver around it.
pub fn resolve(
    store: &Store,
    addr: &Address,
    is_local: impl Fn(&Address) -> bool,
) -> Result<Resolution> {
    let mut walk = Walk {
        store,
        is_local: &is_local,
        resolution: Resolution::default(),
        expanded: HashSet::new(),
        seen_external: HashSet::new(),
        visits: 0,
    };
    walk.resolution.forwarded = store.forward(addr)?.is_some();
    let mut path = Vec::new();
    walk.visit(addr, addr.as_str(), &mut path)?;
    Ok(walk.resolution)
}

struct Walk<'a> {
    store: &'a Store,
    is_local: &'a dyn Fn(&Address) -> bool,
    resolution: Resolution,
    /// Addresses whose entry was already followed (a diamond a→b,c; b,c→d reaches d twice).
    expanded: HashSet<Address>,
    seen_external: HashSet<String>,
    visits: usize,
}

impl Walk<'_> {
    /// `canonical` is reached by the chain `path`; `text` is how the last hop named it.
    fn visit(&mut self, canonical: &Address, text: &str, path: &mut Vec<Address>) -> Result<()> {
        if self.resolution.loop_detected {
            return Ok(());
        }
        if path.contains(canonical) {
            let chain: Vec<&str> = path.iter().map(Address::as_str).collect();
            self.fail(format!(
                "forwarding loop: {} -> {canonical}",
                chain.join(" -> ")
            ));
            return Ok(());
        }
        if path.len() > FORWARD_HOPS_MAX {
            self.fail(format!(
                "forwarding chain from {} is longer than {FORWARD_HOPS_MAX} hops",
                path.first().map_or("?", Address::as_str)
            ));
            return Ok(());
        }
        self.visits += 1;
        if self.visits > FORWARD_RESOLVED_MAX {
            self.fail(format!(
                "forwarding expands to more than {FORWARD_RESOLVED_MAX} addresses"
            ));
            return Ok(());
        }
        let Some(forward) = self.store.forward(canonical)? else {
            self.destination(canonical, text);
            return Ok(());
        };
        if !self.expanded.insert(canonical.clone()) {
            return Ok(());
        }
        if forward.keep_copy && (self.is_local)(canonical) {
            self.add_local(canonical, None);
        }
        path.push(canonical.clone());
        for target in &forward.targets {
            self.visit(target.canonical(), target.as_str(), path)?;
        }
        path.pop();
        Ok(())
    }

    fn destination(&mut self, canonical: &Address, text: &str) {
        if (self.is_local)(canonical) {
            let detail = Address::parse_recipient(text)
                .ok()
                .and_then(|(_, detail)| detail);
            self.add_local(canonical, detail);
        } else if self.seen_external.insert(text.to_ascii_lowercase()) {
            self.resolution.external.push(text.to_owned());
        }
    }

    fn add_local(&mut self, addr: &Address, detail: Option<String>) {
        if !self.resolution.local.contains(addr) {
            self.resolution.local.push(addr.clone());
        }
        let pair = (addr.clone(), detail);
        if !self.resolution.local_targets.contains(&pair) {
            self.resolution.local_targets.push(pair);
        }
    }

    fn fail(&mut self, problem: String) {
        self.resolution.loop_detected = true;
        self.resolution.problem = Some(problem);
    }
}

/// A two-digit lower-case hex fanout directory name.
fn hex_byte(name: &str) -> Option<u8> {
    let ok = name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u8::from_str_radix(name, 16).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn store() -> Result<(tempfile::TempDir, Store)> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let roots = vec![dir.path().join("r0"), dir.path().join("r1")];
        let store = Store::open(&roots, 2)?;
        Ok((dir, store))
    }

    fn local_domain(a: &Address) -> bool {
        a.domain() == "example.com"
    }

    fn locals(list: &[&str]) -> Vec<Address> {
        list.iter().map(|s| addr(s)).collect()
    }

    #[test]
    fn known_bytes_and_layout() -> Result<()> {
        let (dir, store) = store()?;
        let a = addr("alice@example.com");
        let f = store.set_forward(&a, &["bob@example.com", "Carol+News@Example.ORG"], false)?;
        // md5("alice@example.com") = c160f8cc…, bucket 0xc160 is even: root 0.
        let path = dir.path().join("r0/forward/c1/60/alice@example.com");
        assert_eq!(store.forward_path(&a), path);
        let text = fs::read_to_string(&path).map_err(|e| StoreError::io(&path, e))?;
        let body = "msgstore-forward 1\naddress alice@example.com\nkeep_copy no\n\
                    targets bob@example.com Carol+News@example.org\n";
        assert_eq!(
            text,
            format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()))
        );
        assert_eq!(store.forward(&a)?, Some(f.clone()));
        assert_eq!(f.targets[1].canonical(), &addr("carol@example.org"));
        assert_eq!(store.list_forwards()?, vec![(a.clone(), f)]);
        store.delete_forward(&a)?;
        assert_eq!(store.forward(&a)?, None);
        assert!(matches!(
            store.delete_forward(&a),
            Err(StoreError::NoSuchForward { .. })
        ));
        assert!(store.list_forwards()?.is_empty());
        Ok(())
    }

    #[test]
    fn rejects_bad_targets() -> Result<()> {
        let (_dir, store) = store()?;
        let a = addr("alice@example.com");
        let none: [&str; 0] = [];
        let too_many: Vec<String> = (0..=FORWARD_TARGETS_MAX)
            .map(|i| format!("u{i}@example.net"))
            .collect();
        let bad: Vec<Vec<String>> = vec![
            vec![],
            vec!["not an address".into()],
            vec!["a,b@example.net".into()],
            vec!["x@exa_mple.net".into()],
            vec!["Alice+copy@Example.com".into()],
            vec!["b@example.net".into(), "B@EXAMPLE.NET".into()],
            too_many,
        ];
        for targets in bad {
            assert!(
                store.set_forward(&a, &targets, false).is_err(),
                "{targets:?}"
            );
        }
        assert!(store.set_forward(&a, &none, true).is_err());
        assert_eq!(store.forward(&a)?, None);
        Ok(())
    }

    #[test]
    fn corrupt_entries_are_reported() -> Result<()> {
        let (_dir, store) = store()?;
        let a = addr("alice@example.com");
        let b = addr("bob@example.com");
        store.set_forward(&a, &["x@example.net"], false)?;
        store.set_forward(&b, &["y@example.net"], false)?;
        let path = store.forward_path(&a);
        let mut bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        for len in 0..bytes.len() {
            assert!(
                Forward::parse(&path, &bytes[..len]).is_err(),
                "cut at {len}"
            );
        }
        bytes[30] ^= 0x20;
        fs::write(&path, &bytes).map_err(|e| StoreError::io(&path, e))?;
        assert!(matches!(store.forward(&a), Err(StoreError::Corrupt { .. })));
        assert!(matches!(
            resolve(&store, &a, local_domain),
            Err(StoreError::Corrupt { .. })
        ));
        let listing = store.list_forwards_where(|_| true)?;
        assert_eq!(listing.entries.len(), 1);
        assert_eq!(listing.damaged.len(), 1);
        assert_eq!(listing.damaged[0].0, a);
        // An entry copied under another address's name is not served for it.
        let other = store.forward_path(&b);
        fs::copy(&other, &path).map_err(|e| StoreError::io(&path, e))?;
        assert!(matches!(store.forward(&a), Err(StoreError::Corrupt { .. })));
        // A leftover temp file is not an entry.
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        fs::write(dir.join(".alice@example.com.tmp.1.2"), b"junk")
            .map_err(|e| StoreError::io(&dir, e))?;
        assert_eq!(store.list_forwards_where(|_| true)?.damaged.len(), 1);
        Ok(())
    }

    #[test]
    fn plain_addresses_resolve_to_themselves() -> Result<()> {
        let (_dir, store) = store()?;
        let r = resolve(&store, &addr("alice@example.com"), local_domain)?;
        assert_eq!(r.local, locals(&["alice@example.com"]));
        assert!(r.external.is_empty() && !r.loop_detected && !r.forwarded);
        let r = resolve(&store, &addr("x@example.net"), local_domain)?;
        assert_eq!(r.external, ["x@example.net"]);
        Ok(())
    }

    #[test]
    fn chains_keep_copy_and_external() -> Result<()> {
        let (_dir, store) = store()?;
        // a -> b -> c (local), a -> Ext+Tag@Example.NET, b keeps a copy.
        store.set_forward(
            &addr("a@example.com"),
            &["b@example.com", "Ext+Tag@Example.NET"],
            false,
        )?;
        store.set_forward(&addr("b@example.com"), &["c@example.com"], true)?;
        let r = resolve(&store, &addr("a@example.com"), local_domain)?;
        assert!(r.forwarded && !r.loop_detected);
        assert_eq!(r.local, locals(&["b@example.com", "c@example.com"]));
        assert_eq!(r.external, ["Ext+Tag@example.net"]);
        // keep_copy on the first address; an address with a forward and no account
        // (is_local false) keeps nothing.
        store.set_forward(&addr("a@example.com"), &["x@example.net"], true)?;
        let r = resolve(&store, &addr("a@example.com"), local_domain)?;
        assert_eq!(r.local, locals(&["a@example.com"]));
        let r = resolve(&store, &addr("a@example.com"), |_| false)?;
        assert!(r.local.is_empty());
        assert_eq!(r.external, ["x@example.net"]);
        Ok(())
    }

    #[test]
    fn local_targets_keep_their_detail() -> Result<()> {
        let (_dir, store) = store()?;
        store.set_forward(
            &addr("list@example.com"),
            &["Bob+Lists@example.com", "carol@example.com"],
            true,
        )?;
        let r = resolve(&store, &addr("list@example.com"), local_domain)?;
        assert_eq!(
            r.local,
            locals(&["list@example.com", "bob@example.com", "carol@example.com"])
        );
        assert_eq!(
            r.local_targets,
            vec![
                (addr("list@example.com"), None),
                (addr("bob@example.com"), Some("Lists".to_owned())),
                (addr("carol@example.com"), None),
            ]
        );
        Ok(())
    }

    #[test]
    fn diamonds_are_not_loops() -> Result<()> {
        let (_dir, store) = store()?;
        store.set_forward(
            &addr("a@example.com"),
            &["b@example.com", "c@example.com"],
            false,
        )?;
        store.set_forward(&addr("b@example.com"), &["d@example.com"], false)?;
        store.set_forward(
            &addr("c@example.com"),
            &["d@example.com", "X@example.net"],
            false,
        )?;
        store.set_forward(&addr("d@example.com"), &["x@example.net"], true)?;
        let r = resolve(&store, &addr("a@example.com"), local_domain)?;
        assert!(!r.loop_detected, "{:?}", r.problem);
        assert_eq!(r.local, locals(&["d@example.com"]));
        assert_eq!(r.external, ["x@example.net"]);
        Ok(())
    }

    #[test]
    fn loops_are_detected() -> Result<()> {
        let (_dir, store) = store()?;
        store.set_forward(&addr("a@example.com"), &["b@example.com"], false)?;
        store.set_forward(&addr("b@example.com"), &["a@example.com"], true)?;
        let r = resolve(&store, &addr("a@example.com"), local_domain)?;
        assert!(r.loop_detected);
        assert_eq!(
            r.problem.as_deref(),
            Some("forwarding loop: a@example.com -> b@example.com -> a@example.com")
        );
        // Entered from the middle too.
        assert!(resolve(&store, &addr("b@example.com"), local_domain)?.loop_detected);
        // A longer ring, through a sub-address and case change.
        store.set_forward(&addr("b@example.com"), &["c@example.com"], false)?;
        store.set_forward(&addr("c@example.com"), &["A+x@EXAMPLE.com"], false)?;
        assert!(resolve(&store, &addr("a@example.com"), local_domain)?.loop_detected);
        Ok(())
    }

    #[test]
    fn chains_past_the_hop_limit_are_refused() -> Result<()> {
        let (_dir, store) = store()?;
        let name = |i: usize| format!("u{i}@example.com");
        for i in 0..FORWARD_HOPS_MAX {
            store.set_forward(&addr(&name(i)), &[name(i + 1)], false)?;
        }
        // u0 -> … -> u10 is exactly FORWARD_HOPS_MAX hops.
        let r = resolve(&store, &addr(&name(0)), local_domain)?;
        assert!(!r.loop_detected, "{:?}", r.problem);
        assert_eq!(r.local, locals(&[&name(FORWARD_HOPS_MAX)]));
        let last = FORWARD_HOPS_MAX;
        store.set_forward(&addr(&name(last)), &[name(last + 1)], false)?;
        let r = resolve(&store, &addr(&name(0)), local_domain)?;
        assert!(r.loop_detected);
        assert!(r.problem.as_deref().is_some_and(|p| p.contains("hops")));
        Ok(())
    }

    #[test]
    fn listing_by_bucket() -> Result<()> {
        let (_dir, store) = store()?;
        for name in ["alice@example.com", "bob@example.com", "x@y"] {
            store.set_forward(&addr(name), &["t@example.net"], false)?;
        }
        let all: Vec<String> = store
            .list_forwards()?
            .into_iter()
            .map(|(a, _)| a.to_string())
            .collect();
        assert_eq!(all, ["alice@example.com", "bob@example.com", "x@y"]);
        // bob's bucket 0x4b9b is odd.
        let odd = store.list_forwards_where(|b| b.0 % 2 == 1)?;
        let odd: Vec<String> = odd.entries.iter().map(|(a, _)| a.to_string()).collect();
        assert_eq!(odd, ["bob@example.com", "x@y"]);
        Ok(())
    }
}
