//! The system password file: `/etc/shadow` lines `name:hash:lastchg:min:max:warn:…`
//! (shadow(5)). The user is the local part of the address (system users have no
//! domain: the engine uses this source only for the domains configured for it).
//!
//! Hashes: yescrypt `$y$` (Debian 11+ default), sha512-crypt `$6$`, sha256-crypt `$5$`,
//! bcrypt `$2b$`/`$2y$`, md5-crypt `$1$`. Locked (`!…`, `*`) and empty fields never
//! match; nor do DES crypt, scrypt `$7$` and gost-yescrypt `$gy$`. Account and
//! password expiry fields are not enforced here. The path is configurable (tests use a
//! temp file); reading the real `/etc/shadow` needs root or the `shadow` group.
//! Nothing here refuses `root` or system accounts: configure the domains so they are
//! not reachable, or keep this source off.

use std::path::PathBuf;

use super::crypt::verify_crypt;
use super::passwd_file::{Entry, dummy_check, find_entry};
use super::{AuthResult, Lookup, PasswordSource, ScramVerifier, Secret};
use crate::address::Address;

/// Debian's path.
pub const SHADOW_PATH_DEFAULT: &str = "/etc/shadow";

/// A shadow(5) file.
#[derive(Clone, Debug)]
pub struct ShadowFile {
    path: PathBuf,
}

impl ShadowFile {
    pub fn new(path: impl Into<PathBuf>) -> ShadowFile {
        ShadowFile { path: path.into() }
    }
}

impl Default for ShadowFile {
    fn default() -> ShadowFile {
        ShadowFile::new(SHADOW_PATH_DEFAULT)
    }
}

fn crypt_field(hash: &str, password: &[u8]) -> bool {
    verify_crypt(hash, password)
}

impl PasswordSource for ShadowFile {
    fn verify(&self, user: &Address, password: &[u8]) -> AuthResult {
        match find_entry(&self.path, user.local()) {
            Ok(Entry {
                password: Some(hash),
                ..
            }) => match verify_crypt(&hash, password) {
                true => AuthResult::Ok,
                false => AuthResult::Failed,
            },
            Ok(Entry { dummy, .. }) => {
                dummy_check(dummy.as_deref(), password, crypt_field);
                AuthResult::Failed
            }
            Err(_) => AuthResult::Unavailable,
        }
    }

    /// crypt hashes cannot serve SCRAM.
    fn scram(&self, _user: &Address) -> Lookup<ScramVerifier> {
        Lookup::Missing
    }

    /// crypt hashes cannot serve CRAM-MD5/APOP.
    fn cram_secret(&self, _user: &Address) -> Lookup<Secret> {
        Lookup::Missing
    }
}
