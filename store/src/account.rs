//! Accounts: the `profile` file in each user's directory and the account verbs on
//! [`Store`] (DESIGN §5, §10). There is no central list: listing walks the fanout tree.
//!
//! `<user dir>/profile` is text in the line format of the store's small files:
//!
//! ```text
//! msgstore-profile 1                  magic and profile version
//! address alice@example.com           canonical address; must match the directory
//! name Alice Example                  full name, may be empty, no control characters
//! domain example.com                  the account's domain
//! quota_bytes 0                       storage quota in bytes, 0 = unlimited
//! flags imap,pop                      usage flags: imap, pop, manage, disabled (may be empty)
//! password_hash msv1;argon2id=$argon2id$v=19$…;scram-sha-256=…   verifiers, empty = none
//! created_unix 1700000000             creation time, seconds since the Unix epoch
//! crc32 1a2b3c4d                      CRC-32 (IEEE) of every preceding byte, lower hex
//! ```
//!
//! Every key appears exactly once, in this order when written. Values run to the end of
//! the line; none may hold a control character (names are rejected, not escaped), so a
//! value can never inject a line. Version policy: any change an older reader would
//! misread, a new key included, bumps the version; readers reject a wrong magic, an
//! unknown version, a bad checksum, an unknown, missing or repeated key, a file over
//! `PROFILE_BYTES_MAX`, as `Corrupt`.
//!
//! An account exists when its directory holds a `profile`. Creation builds the directory
//! under a dot-name beside its final place and renames it in, so a crash leaves either a
//! whole account or a dot-directory that listing ignores.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{CWD, RenameFlags, renameat_with};
use rustix::io::Errno;

use crate::address::Address;
use crate::durable::{
    create_dir_durable, fit_name, read_bounded, remove_dir_durable, rename_durable, sync_dir,
    unique_suffix, write_atomic,
};
use crate::error::{Result, StoreError};
use crate::hash::Bucket;
use crate::limits::{DOMAIN_BYTES_MAX, NAME_BYTES_MAX, PASSWORD_HASH_BYTES_MAX, PROFILE_BYTES_MAX};
use crate::store::{Store, TRASH_DIR, USERS_DIR};
use crate::textfile;

/// File name of the profile inside a user directory.
pub const PROFILE_FILE: &str = "profile";
/// Magic word on the first line.
pub const PROFILE_MAGIC: &str = "msgstore-profile";
/// The only version this build reads and writes.
pub const PROFILE_VERSION: u32 = 1;

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UsageFlags {
    /// May log in over IMAP.
    pub imap: bool,
    /// May log in over POP3.
    pub pop: bool,
    /// May use the management interfaces (admin API, web management UI).
    pub manage: bool,
    /// Refused everywhere (login and delivery) while set; the data is kept.
    pub disabled: bool,
}

impl UsageFlags {
    /// Flags of a new account when none are given: IMAP and POP.
    pub fn default_new() -> UsageFlags {
        UsageFlags {
            imap: true,
            pop: true,
            ..UsageFlags::default()
        }
    }

    /// Parses a comma list (`imap,pop,manage,disabled`, any order, case-insensitive,
    /// spaces around names allowed); the empty string is no flags.
    pub fn parse(text: &str) -> Result<UsageFlags> {
        let mut flags = UsageFlags::default();
        if text.trim().is_empty() {
            return Ok(flags);
        }
        for name in text.split(',') {
            let flag = match name.trim().to_ascii_lowercase().as_str() {
                "imap" => &mut flags.imap,
                "pop" => &mut flags.pop,
                "manage" => &mut flags.manage,
                "disabled" => &mut flags.disabled,
                _ => {
                    return Err(StoreError::InvalidValue {
                        field: "flags",
                        reason: format!(
                            "unknown flag {:?} (known: imap, pop, manage, disabled)",
                            name.trim()
                        ),
                    });
                }
            };
            *flag = true;
        }
        Ok(flags)
    }
}

impl FromStr for UsageFlags {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<UsageFlags> {
        UsageFlags::parse(text)
    }
}

impl fmt::Display for UsageFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.imap, "imap"),
            (self.pop, "pop"),
            (self.manage, "manage"),
            (self.disabled, "disabled"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&set.join(","))
    }
}

/// An account's profile, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub address: Address,
    pub name: String,
    pub domain: String,
    /// Storage quota in bytes; 0 = unlimited.
    pub quota_bytes: u64,
    pub flags: UsageFlags,
    /// The password's verifiers (`store::auth::Verifiers` line; a bare argon2id PHC
    /// string in profiles written before SCRAM keys were kept, still read); `None`
    /// when the password lives elsewhere (or login is off). Never the password.
    pub password_hash: Option<String>,
    pub created_unix: u64,
}

/// What `Store::create_account` needs; the rest of the profile is derived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    pub address: Address,
    pub name: String,
    pub quota_bytes: u64,
    pub flags: UsageFlags,
    /// Already hashed: a `Verifiers` line (hashing is slow: the caller does it off
    /// the shard thread).
    pub password_hash: Option<String>,
}

impl Profile {
    /// Serialises the profile; a field that could not be read back is `InvalidValue`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.validate()?;
        textfile::encode(
            PROFILE_MAGIC,
            PROFILE_VERSION,
            &[
                ("address", self.address.as_str()),
                ("name", &self.name),
                ("domain", &self.domain),
                ("quota_bytes", &self.quota_bytes.to_string()),
                ("flags", &self.flags.to_string()),
                ("password_hash", self.password_hash.as_deref().unwrap_or("")),
                ("created_unix", &self.created_unix.to_string()),
            ],
        )
    }

    /// Parses a profile file; `path` is for error messages. Anything off is `Corrupt`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Profile> {
        if bytes.len() > PROFILE_BYTES_MAX {
            return Err(StoreError::corrupt(path, "profile is too large"));
        }
        let mut fields = textfile::decode(path, bytes, PROFILE_MAGIC, PROFILE_VERSION)?;
        let mut take = |key: &str| textfile::take(path, &mut fields, key);
        let address = take("address")?;
        let name = take("name")?;
        let domain = take("domain")?;
        let quota_bytes = take("quota_bytes")?;
        let flags = take("flags")?;
        let password_hash = take("password_hash")?;
        let created_unix = take("created_unix")?;
        textfile::no_unknown_keys(path, &fields)?;
        let corrupt = |reason: String| StoreError::corrupt(path, reason);
        let parsed = Address::parse(address).map_err(|e| corrupt(e.to_string()))?;
        if parsed.as_str() != address {
            return Err(corrupt(format!("address {address:?} is not canonical")));
        }
        let profile = Profile {
            address: parsed,
            name: name.to_owned(),
            domain: domain.to_owned(),
            quota_bytes: textfile::number(path, "quota_bytes", quota_bytes)?,
            flags: UsageFlags::parse(flags).map_err(|e| corrupt(e.to_string()))?,
            password_hash: Some(password_hash)
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            created_unix: textfile::number(path, "created_unix", created_unix)?,
        };
        profile.validate().map_err(|e| corrupt(e.to_string()))?;
        Ok(profile)
    }

    /// Checks what the file format cannot hold or a reader would refuse.
    fn validate(&self) -> Result<()> {
        let invalid = |field: &'static str, reason: &str| {
            Err(StoreError::InvalidValue {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.name.len() > NAME_BYTES_MAX {
            return invalid("name", "name is too long");
        }
        if self.name.chars().any(char::is_control) {
            return invalid("name", "name holds a control character");
        }
        if self.domain.is_empty()
            || self.domain.len() > DOMAIN_BYTES_MAX
            || !self.domain.bytes().all(|b| b.is_ascii_graphic())
        {
            return invalid("domain", "domain must be 1 to 253 printable ASCII bytes");
        }
        if let Some(hash) = &self.password_hash
            && (hash.is_empty()
                || hash.len() > PASSWORD_HASH_BYTES_MAX
                || !hash.bytes().all(|b| b.is_ascii_graphic()))
        {
            return invalid("password_hash", "not a password verifiers value");
        }
        Ok(())
    }
}

fn is_not_found(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. }
        if matches!(source.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory))
}

fn not_found(addr: &Address) -> StoreError {
    StoreError::NotFound {
        address: addr.to_string(),
    }
}

fn now() -> std::time::Duration {
    // A clock before 1970 is broken; 0 is a harmless stand-in.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Store {
    /// `<user dir>/profile`.
    pub fn profile_path(&self, addr: &Address) -> PathBuf {
        self.user_dir(addr).join(PROFILE_FILE)
    }

    /// Creates an account with a fresh user directory. `AlreadyExists` when the user
    /// directory is there already (even without a profile).
    pub fn create_account(&self, new: NewAccount) -> Result<Profile> {
        let profile = Profile {
            domain: new.address.domain().to_owned(),
            address: new.address,
            name: new.name,
            quota_bytes: new.quota_bytes,
            flags: new.flags,
            password_hash: new.password_hash,
            created_unix: now().as_secs(),
        };
        let bytes = profile.to_bytes()?;
        let dir = self.user_dir(&profile.address);
        let already = || StoreError::AlreadyExists {
            address: profile.address.to_string(),
        };
        if dir.symlink_metadata().is_ok() {
            return Err(already());
        }
        let parent = parent(&dir)?;
        create_dir_durable(parent)?;
        let tmp = create_temp_dir(parent)?;
        let built = write_atomic(&tmp.join(PROFILE_FILE), &bytes)
            .and_then(|()| rename_no_replace(&tmp, &dir).map_err(|e| e.unwrap_or_else(already)))
            .and_then(|()| sync_dir(parent));
        if built.is_err() {
            // Best effort: the dot-name is ignored by listing if this fails too.
            let _ = fs::remove_dir_all(&tmp);
        }
        built.map(|()| profile)
    }

    /// Reads an account's profile; `NotFound` when there is none.
    pub fn account(&self, addr: &Address) -> Result<Profile> {
        let path = self.profile_path(addr);
        let bytes = match read_bounded(&path, PROFILE_BYTES_MAX) {
            Err(e) if is_not_found(&e) => return Err(not_found(addr)),
            other => other?,
        };
        let profile = Profile::parse(&path, &bytes)?;
        if profile.address != *addr {
            return Err(StoreError::corrupt(
                &path,
                format!("profile is for {}", profile.address),
            ));
        }
        Ok(profile)
    }

    /// Replaces an existing account's profile atomically; `NotFound` when there is none.
    pub fn update_account(&self, profile: &Profile) -> Result<()> {
        let bytes = profile.to_bytes()?;
        let path = self.profile_path(&profile.address);
        if !path.is_file() {
            return Err(not_found(&profile.address));
        }
        write_atomic(&path, &bytes)
    }

    /// Deletes an account and everything in its directory: renamed into
    /// `<root>/trash/<address>.<unix-nanos>` first (so it vanishes from the tree at once
    /// and durably), then removed. `NotFound` when the directory does not exist.
    pub fn delete_account(&self, addr: &Address) -> Result<()> {
        let dir = self.user_dir(addr);
        match dir.symlink_metadata() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(addr)),
            Err(e) => return Err(StoreError::io(&dir, e)),
        }
        let trash = self.root_for(Bucket::of(addr)).join(TRASH_DIR);
        create_dir_durable(&trash)?;
        let name = fit_name(addr.as_str(), &format!(".{}", now().as_nanos()));
        let doomed = trash.join(name);
        rename_durable(&dir, &doomed)?;
        remove_dir_durable(&doomed)
    }

    /// Every account of the store, sorted.
    pub fn list_accounts(&self) -> Result<Vec<Address>> {
        self.list_accounts_where(|_| true)
    }

    /// The accounts whose bucket satisfies `pred` (a shard lists its own), sorted.
    /// Walks `users/` of every root; skips dot-entries (creations in progress), names
    /// that are not canonical addresses, directories without a profile, and entries in
    /// a place where [`Store::user_dir`] would not look for them.
    pub fn list_accounts_where(&self, pred: impl Fn(Bucket) -> bool) -> Result<Vec<Address>> {
        let mut found = Vec::new();
        for root in self.roots() {
            let mut prefix = Vec::new();
            self.walk(&root.join(USERS_DIR), &mut prefix, &pred, &mut found)?;
        }
        found.sort();
        Ok(found)
    }

    fn walk(
        &self,
        dir: &Path,
        prefix: &mut Vec<u8>,
        pred: &dyn Fn(Bucket) -> bool,
        found: &mut Vec<Address>,
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
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if name.starts_with('.') || !is_dir {
                continue;
            }
            if leaf {
                if let Some(addr) = self.account_at(&entry.path(), &name)
                    && pred(Bucket::of(&addr))
                {
                    found.push(addr);
                }
                continue;
            }
            let Some(byte) = hex_byte(&name) else {
                continue;
            };
            prefix.push(byte);
            let bucket_known = prefix.len() == 2;
            if !bucket_known || pred(Bucket(u16::from_be_bytes([prefix[0], prefix[1]]))) {
                self.walk(&entry.path(), prefix, pred, found)?;
            }
            prefix.pop();
        }
        Ok(())
    }

    /// The account whose directory is `path`, if it is a well-placed one with a profile.
    fn account_at(&self, path: &Path, name: &str) -> Option<Address> {
        let addr = Address::parse(name).ok()?;
        let placed = addr.as_str() == name && self.user_dir(&addr) == path;
        (placed && path.join(PROFILE_FILE).is_file()).then_some(addr)
    }
}

/// A two-digit lower-case hex fanout directory name.
fn hex_byte(name: &str) -> Option<u8> {
    let ok = name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u8::from_str_radix(name, 16).ok()).flatten()
}

fn parent(path: &Path) -> Result<&Path> {
    path.parent()
        .ok_or_else(|| StoreError::io(path, io::Error::other("path has no parent directory")))
}

/// A fresh dot-named directory in `parent` (ignored by listing).
fn create_temp_dir(parent: &Path) -> Result<PathBuf> {
    loop {
        let tmp = parent.join(format!(".new.{}", unique_suffix()));
        match fs::create_dir(&tmp) {
            Ok(()) => return Ok(tmp),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StoreError::io(tmp, e)),
        }
    }
}

/// Renames a directory into place unless something is there already: `Err(None)` when
/// the target exists, `Err(Some(e))` on any other failure.
fn rename_no_replace(from: &Path, to: &Path) -> std::result::Result<(), Option<StoreError>> {
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST | Errno::NOTEMPTY) => Err(None),
        // File systems without RENAME_NOREPLACE: a rename onto a non-empty directory
        // fails, and an account directory is never empty, so this is still safe.
        Err(Errno::INVAL | Errno::NOSYS) => match fs::rename(from, to) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Err(None),
            Err(e) => Err(Some(StoreError::io(to, e))),
        },
        Err(e) => Err(Some(StoreError::io(to, e.into()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA";

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn tmp() -> Result<tempfile::TempDir> {
        tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))
    }

    fn alice() -> Profile {
        Profile {
            address: addr("alice@example.com"),
            name: "Alice Example".into(),
            domain: "example.com".into(),
            quota_bytes: 1 << 20,
            flags: UsageFlags::parse("imap,pop,manage").unwrap_or_default(),
            password_hash: Some(PHC.into()),
            created_unix: 1_700_000_000,
        }
    }

    fn new(address: &str) -> NewAccount {
        NewAccount {
            address: addr(address),
            name: format!("User {address}"),
            quota_bytes: 0,
            flags: UsageFlags::default_new(),
            password_hash: None,
        }
    }

    #[test]
    fn flags_parse_and_display() -> Result<()> {
        assert_eq!(UsageFlags::parse("")?, UsageFlags::default());
        assert_eq!(UsageFlags::default().to_string(), "");
        assert_eq!(UsageFlags::default_new().to_string(), "imap,pop");
        let all = UsageFlags::parse("disabled, MANAGE,pop,imap")?;
        assert_eq!(all.to_string(), "imap,pop,manage,disabled");
        assert_eq!("manage".parse::<UsageFlags>()?.to_string(), "manage");
        for bad in ["smtp", "imap,", "imap,,pop"] {
            assert!(
                matches!(
                    UsageFlags::parse(bad),
                    Err(StoreError::InvalidValue { field: "flags", .. })
                ),
                "{bad}"
            );
        }
        Ok(())
    }

    /// A new profile holds the whole verifiers line, even for the longest password
    /// with a sealed CRAM-MD5 secret; the bare PHC of older profiles still reads.
    #[test]
    fn verifiers_of_the_longest_password_fit_the_profile() -> Result<()> {
        use crate::auth::{ServerKey, VerifierOptions, Verifiers};
        let user = addr("alice@example.com");
        let key = ServerKey::from_bytes([7; 32]);
        let password = "p".repeat(crate::limits::PASSWORD_BYTES_MAX);
        let options = VerifierOptions {
            keep_cram_secret: true,
            ..VerifierOptions::default()
        };
        let verifiers = Verifiers::from_password(&password, &user, &options, Some(&key))?;
        let profile = Profile {
            password_hash: Some(verifiers.to_profile_value()),
            ..alice()
        };
        let bytes = profile.to_bytes()?;
        assert!(!String::from_utf8_lossy(&bytes).contains(&password));
        let read = Profile::parse(Path::new("p"), &bytes)?;
        assert_eq!(read, profile);
        let back = Verifiers::parse(read.password_hash.as_deref().unwrap_or(""))?;
        assert!(back.verify(password.as_bytes()));
        assert!(back.scram.is_some());
        assert_eq!(
            back.cram_secret(&user, &key).map(|s| s.expose().to_vec()),
            Some(password.into_bytes())
        );
        let old = Verifiers::parse(&crate::password::hash_password("older")?)?;
        assert!(old.scram.is_none() && old.cram.is_none());
        Ok(())
    }

    // Pins the on-disk bytes; crc from python3 `zlib.crc32` of everything before it.
    #[test]
    fn profile_known_bytes_and_round_trip() -> Result<()> {
        let bytes = alice().to_bytes()?;
        let want = "msgstore-profile 1\n\
            address alice@example.com\n\
            name Alice Example\n\
            domain example.com\n\
            quota_bytes 1048576\n\
            flags imap,pop,manage\n\
            password_hash $argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA\n\
            created_unix 1700000000\n\
            crc32 fb4f04f4\n";
        assert_eq!(String::from_utf8_lossy(&bytes), want);
        assert_eq!(Profile::parse(Path::new("p"), &bytes)?, alice());

        let bare = Profile {
            name: String::new(),
            flags: UsageFlags::default(),
            password_hash: None,
            ..alice()
        };
        assert_eq!(Profile::parse(Path::new("p"), &bare.to_bytes()?)?, bare);
        let spaced = Profile {
            name: " two  spaces ".into(),
            ..alice()
        };
        assert_eq!(Profile::parse(Path::new("p"), &spaced.to_bytes()?)?, spaced);
        Ok(())
    }

    #[test]
    fn profile_rejects_unwritable_values() {
        let bad = [
            Profile {
                name: "Eve\nflags manage".into(),
                ..alice()
            },
            Profile {
                name: "x".repeat(NAME_BYTES_MAX + 1),
                ..alice()
            },
            Profile {
                domain: String::new(),
                ..alice()
            },
            Profile {
                password_hash: Some("has space".into()),
                ..alice()
            },
            Profile {
                password_hash: Some(String::new()),
                ..alice()
            },
        ];
        for p in bad {
            assert!(
                matches!(p.to_bytes(), Err(StoreError::InvalidValue { .. })),
                "{p:?}"
            );
        }
    }

    #[test]
    fn corrupt_profiles_never_panic() -> Result<()> {
        let good = alice().to_bytes()?;
        let is_corrupt = |bytes: &[u8]| {
            matches!(
                Profile::parse(Path::new("p"), bytes),
                Err(StoreError::Corrupt { .. })
            )
        };
        for i in 0..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0x20;
            assert!(is_corrupt(&flipped), "flipped byte {i}");
        }
        for len in 0..good.len() {
            assert!(is_corrupt(&good[..len]), "truncated to {len}");
        }
        let with_body = |body: &str| {
            let crc = crc32fast::hash(body.as_bytes());
            format!("{body}crc32 {crc:08x}\n").into_bytes()
        };
        let text = String::from_utf8_lossy(&good).into_owned();
        let body = &text[..text.rfind("crc32").unwrap_or(0)];
        assert!(!is_corrupt(&with_body(body)));
        assert!(is_corrupt(&with_body(
            &body.replace("msgstore-profile", "msgstore-format")
        )));
        assert!(is_corrupt(&with_body(
            &body.replace("profile 1", "profile 2")
        )));
        assert!(is_corrupt(&with_body(&format!("{body}shoe_size 9\n"))));
        assert!(is_corrupt(&with_body(
            &body.replace("flags imap", "flags smtp")
        )));
        assert!(is_corrupt(&with_body(&body.replace("alice@", "Alice@"))));
        assert!(is_corrupt(&with_body(
            &body.replace("quota_bytes 1048576", "quota_bytes -1")
        )));
        assert!(is_corrupt(&with_body(
            &body.replace("created_unix 1700000000\n", "")
        )));
        assert!(is_corrupt(&vec![b'a'; PROFILE_BYTES_MAX + 1]));
        Ok(())
    }

    #[test]
    fn create_get_update_delete() -> Result<()> {
        let dir = tmp()?;
        let store = Store::open(&[dir.path().join("r0")], 2)?;
        let a = addr("alice@example.com");
        assert!(matches!(
            store.account(&a),
            Err(StoreError::NotFound { .. })
        ));

        let created = store.create_account(NewAccount {
            address: addr("Alice+x@Example.COM"),
            ..new("alice@example.com")
        })?;
        assert_eq!(created.domain, "example.com");
        assert_eq!(created.flags, UsageFlags::default_new());
        assert!(created.created_unix > 1_600_000_000);
        assert_eq!(store.account(&a)?, created);
        // md5("alice@example.com") = c160f8cc…
        let profile = dir.path().join("r0/users/c1/60/alice@example.com/profile");
        assert!(profile.is_file());
        let leaf: Vec<_> = fs::read_dir(dir.path().join("r0/users/c1/60"))
            .map_err(|e| StoreError::io("leaf", e))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(leaf, ["alice@example.com"], "no temp directory left behind");

        match store.create_account(new("alice@example.com")) {
            Err(e @ StoreError::AlreadyExists { .. }) => {
                assert_eq!(e.to_string(), "account already exists: alice@example.com")
            }
            other => panic!("expected AlreadyExists, got {other:?}"),
        }

        let changed = Profile {
            quota_bytes: 5000,
            name: "Alice".into(),
            password_hash: Some(PHC.into()),
            ..created
        };
        store.update_account(&changed)?;
        assert_eq!(store.account(&a)?, changed);

        let bob = Profile {
            address: addr("bob@example.com"),
            ..changed.clone()
        };
        assert!(matches!(
            store.update_account(&bob),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            store.delete_account(&bob.address),
            Err(StoreError::NotFound { .. })
        ));

        store.delete_account(&a)?;
        assert!(matches!(
            store.account(&a),
            Err(StoreError::NotFound { .. })
        ));
        assert!(!profile.exists());
        let trash = fs::read_dir(dir.path().join("r0/trash"))
            .map_err(|e| StoreError::io("trash", e))?
            .count();
        assert_eq!(trash, 0);
        // The address is free again.
        store.create_account(new("alice@example.com"))?;
        Ok(())
    }

    #[test]
    fn profile_for_another_address_is_corrupt() -> Result<()> {
        let dir = tmp()?;
        let store = Store::open(&[dir.path().join("r0")], 1)?;
        store.create_account(new("alice@example.com"))?;
        let bob = addr("bob@example.com");
        let bob_dir = store.user_dir(&bob);
        create_dir_durable(&bob_dir)?;
        let from = store.profile_path(&addr("alice@example.com"));
        fs::copy(&from, bob_dir.join(PROFILE_FILE)).map_err(|e| StoreError::io(&from, e))?;
        assert!(matches!(
            store.account(&bob),
            Err(StoreError::Corrupt { .. })
        ));
        Ok(())
    }

    #[test]
    fn list_across_roots_and_levels() -> Result<()> {
        let dir = tmp()?;
        let roots = [dir.path().join("r0"), dir.path().join("r1")];
        let store = Store::open(&roots, 3)?;
        let mut names: Vec<String> = (0..40).map(|i| format!("user{i}@example.com")).collect();
        names.push("bob@other.org".into());
        for name in &names {
            store.create_account(new(name))?;
        }
        names.sort();
        let listed = store.list_accounts()?;
        let listed_names: Vec<&str> = listed.iter().map(Address::as_str).collect();
        assert_eq!(listed_names, names);
        // Both roots are used.
        for root in &roots {
            assert!(listed.iter().any(|a| store.user_dir(a).starts_with(root)));
        }
        // A shard sees exactly its buckets; together the shards see everything.
        let mut union = Vec::new();
        for shard in 0..3 {
            let mine = store.list_accounts_where(|b| b.shard(3) == shard)?;
            assert!(mine.iter().all(|a| Bucket::of(a).shard(3) == shard));
            union.extend(mine);
        }
        union.sort();
        assert_eq!(union, listed);

        // Junk in the tree is skipped, not an error.
        let alice_dir = store.user_dir(&addr("alice@example.com"));
        create_dir_durable(&alice_dir)?; // no profile
        let leaf = parent(&alice_dir)?.to_path_buf();
        create_dir_durable(&leaf.join(".new.1.2"))?;
        create_dir_durable(&leaf.join("NotCanonical@Example.com"))?;
        create_dir_durable(&leaf.join("carol@example.com"))?; // wrong place
        fs::write(leaf.join("carol@example.com/profile"), b"x")
            .map_err(|e| StoreError::io("carol", e))?;
        create_dir_durable(&roots[0].join("users/zz"))?;
        fs::write(roots[0].join("users/stray-file"), b"").map_err(|e| StoreError::io("f", e))?;
        assert_eq!(store.list_accounts()?, listed);
        Ok(())
    }

    #[test]
    fn list_of_empty_store() -> Result<()> {
        let dir = tmp()?;
        let store = Store::open(&[dir.path().join("r0")], 2)?;
        assert_eq!(store.list_accounts()?, Vec::<Address>::new());
        Ok(())
    }
}
