//! A passwd-file in Dovecot's format (`doc/wiki/AuthDatabase.PasswdFile`):
//!
//! ```text
//! user:{SCHEME}password:uid:gid:gecos:home:shell:extra_fields
//! alice@example.com:{SHA512-CRYPT}$6$…::::::
//! bob:{PLAIN}secret
//! carol:{SCRAM-SHA-256}4096,<salt>,<stored>,<server>
//! ```
//!
//! Only the first two fields are read; the others may be missing or empty. `#` starts
//! a comment line. The user field is the full address or the local part
//! ([`UserKey`], Dovecot's `username_format = %u` / `%n`). Schemes: see `crypt.rs`.
//! A password without `{SCHEME}` is a crypt string. `{PLAIN}` entries also serve
//! CRAM-MD5/APOP and SCRAM (keys derived on the fly); `{SCRAM-SHA-256}` entries serve
//! SCRAM and, slowly, cleartext logins.
//!
//! The file is read on every call (it is small and edited by hand or by scripts;
//! nothing to invalidate), always to the end so an early and a missing entry cost the
//! same. Overlong lines are skipped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::crypt::{Stored, split_scheme, verify_field};
use super::verifiers::SCRAM_ITERATIONS_DEFAULT;
use super::{AuthResult, Lookup, PasswordSource, ScramVerifier, Secret};
use crate::address::Address;
use crate::limits::{PASSWD_FILE_BYTES_MAX, PASSWD_LINE_BYTES_MAX, SCRAM_SALT_BYTES};

/// What the first field of a line is matched against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKey {
    /// `alice@example.com` (ASCII case ignored).
    Address,
    /// `alice`: the file serves one domain (the engine picks the source per domain).
    LocalPart,
}

impl UserKey {
    pub(super) fn name(self, user: &Address) -> &str {
        match self {
            UserKey::Address => user.as_str(),
            UserKey::LocalPart => user.local(),
        }
    }
}

/// A Dovecot passwd-file.
#[derive(Clone, Debug)]
pub struct PasswdFile {
    path: PathBuf,
    key: UserKey,
}

impl PasswdFile {
    pub fn new(path: impl Into<PathBuf>, key: UserKey) -> PasswdFile {
        PasswdFile {
            path: path.into(),
            key,
        }
    }

    fn entry(&self, user: &Address) -> io::Result<Entry> {
        find_entry(&self.path, self.key.name(user))
    }
}

/// The result of one scan of a `name:password:…` file.
#[derive(Debug, Default)]
pub(super) struct Entry {
    /// The password field of the user's line.
    pub(super) password: Option<String>,
    /// The password field of the first usable line: checked against for an unknown
    /// user, so the work is the same kind of hash.
    pub(super) dummy: Option<String>,
}

/// Scans `path` to the end for the line whose first field is `name`.
pub(super) fn find_entry(path: &Path, name: &str) -> io::Result<Entry> {
    let file = File::open(path)?;
    if file.metadata()?.len() > PASSWD_FILE_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "password file is larger than PASSWD_FILE_BYTES_MAX",
        ));
    }
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut entry = Entry::default();
    let line_max = u64::try_from(PASSWD_LINE_BYTES_MAX).unwrap_or(u64::MAX);
    loop {
        line.clear();
        let read = (&mut reader)
            .take(line_max + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if line.len() > PASSWD_LINE_BYTES_MAX {
            skip_line(&mut reader)?;
            continue;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        let text = text.trim_end_matches(['\n', '\r']);
        if text.starts_with('#') || text.trim().is_empty() {
            continue;
        }
        let mut fields = text.splitn(3, ':');
        let (Some(user), Some(password)) = (fields.next(), fields.next()) else {
            continue;
        };
        if entry.dummy.is_none() && usable(password) {
            entry.dummy = Some(password.to_owned());
        }
        if entry.password.is_none() && user.eq_ignore_ascii_case(name) {
            entry.password = Some(password.to_owned());
        }
    }
    Ok(entry)
}

/// Reads to the end of an overlong line without holding it.
fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        match buffer.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buffer.len();
                reader.consume(n);
            }
        }
    }
}

/// A password field that could match something (not empty, not locked).
fn usable(password: &str) -> bool {
    !password.is_empty() && !password.starts_with('!') && !password.starts_with('*')
}

/// The cost of checking an unknown user: the same kind of work as a known one.
pub(super) fn dummy_check(dummy: Option<&str>, password: &[u8], field: fn(&str, &[u8]) -> bool) {
    if let Some(dummy) = dummy {
        let _ = field(dummy, password);
    }
}

impl PasswordSource for PasswdFile {
    fn verify(&self, user: &Address, password: &[u8]) -> AuthResult {
        match self.entry(user) {
            Ok(Entry {
                password: Some(stored),
                ..
            }) => match verify_field(&stored, password) {
                true => AuthResult::Ok,
                false => AuthResult::Failed,
            },
            Ok(Entry { dummy, .. }) => {
                dummy_check(dummy.as_deref(), password, verify_field);
                AuthResult::Failed
            }
            Err(_) => AuthResult::Unavailable,
        }
    }

    fn scram(&self, user: &Address) -> Lookup<ScramVerifier> {
        let stored = match self.entry(user) {
            Ok(Entry {
                password: Some(stored),
                ..
            }) => stored,
            Ok(_) => return Lookup::Missing,
            Err(_) => return Lookup::Unavailable,
        };
        match split_scheme(&stored) {
            Stored::ScramSha256(value) => match ScramVerifier::parse_dovecot(value) {
                Some(verifier) => Lookup::Found(verifier),
                None => Lookup::Missing,
            },
            Stored::Plain(plain) if !plain.is_empty() => {
                // A salt stable per user, so a client sees the same one each time.
                let digest = Sha256::digest(
                    [
                        b"msgstore passwd-file scram salt\0",
                        user.as_str().as_bytes(),
                    ]
                    .concat(),
                );
                let salt = &digest[..SCRAM_SALT_BYTES];
                Lookup::Found(ScramVerifier::derive(
                    plain.as_bytes(),
                    salt,
                    SCRAM_ITERATIONS_DEFAULT,
                ))
            }
            _ => Lookup::Missing,
        }
    }

    fn cram_secret(&self, user: &Address) -> Lookup<Secret> {
        match self.entry(user) {
            Ok(Entry {
                password: Some(stored),
                ..
            }) => match split_scheme(&stored) {
                Stored::Plain(plain) if !plain.is_empty() => {
                    Lookup::Found(Secret::new(plain.as_bytes().to_vec()))
                }
                _ => Lookup::Missing,
            },
            Ok(_) => Lookup::Missing,
            Err(_) => Lookup::Unavailable,
        }
    }
}
