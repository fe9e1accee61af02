//! Where passwords live (DESIGN §5, issue 7): one trait, four sources.
//!
//! * [`ProfileSource`] — the account profile: argon2id plus SCRAM keys and, where
//!   enabled, a sealed CRAM-MD5/APOP secret ([`verifiers`]).
//! * [`PasswdFile`] — a passwd-file in Dovecot's format.
//! * [`ShadowFile`] — the system password file (`/etc/shadow`).
//! * [`LdapSource`] — LDAP, binding as the user (DN template or search + bind).
//!
//! Every call is synchronous and may be slow (hashing, file reads, network): the
//! engine runs them on helper threads, never on a shard. An unknown user and a wrong
//! password give the same [`AuthResult::Failed`] after similar work (the password is
//! checked against a dummy hash of the same kind).

mod crypt;
pub mod ldap;
pub mod passwd_file;
pub mod profile;
mod secret;
pub mod server_key;
pub mod shadow;
pub mod verifiers;

pub use ldap::{LdapConfig, LdapMode, LdapSource};
pub use passwd_file::{PasswdFile, UserKey};
pub use profile::ProfileSource;
pub use secret::Secret;
pub use server_key::{SealedSecret, ServerKey};
pub use shadow::ShadowFile;
pub use verifiers::{ScramVerifier, VerifierOptions, Verifiers};

use crate::address::Address;

/// The outcome of a cleartext password check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthResult {
    /// The password is right.
    Ok,
    /// Wrong password or unknown user: never told apart.
    Failed,
    /// The source cannot answer now (file unreadable, LDAP down): a temporary failure
    /// (`NO [UNAVAILABLE]`, `-ERR [SYS/TEMP]`), not counted as a failed login.
    Unavailable,
}

/// The outcome of a stored-secret lookup (SCRAM keys, CRAM-MD5 secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    /// Unknown user, or no secret of that kind for the user: SASL goes on with a decoy
    /// (SCRAM) or fails (CRAM-MD5) — the same answer as a wrong password.
    Missing,
    /// The source cannot answer now.
    Unavailable,
}

impl<T> Lookup<T> {
    /// `Some` when found.
    pub fn found(self) -> Option<T> {
        match self {
            Lookup::Found(value) => Some(value),
            Lookup::Missing | Lookup::Unavailable => None,
        }
    }
}

/// A place passwords are checked against. `Send + Sync`: one value is shared by the
/// engine's helper threads.
pub trait PasswordSource: Send + Sync {
    /// Checks a cleartext password (LOGIN, USER/PASS, PLAIN, LOGIN mechanism).
    fn verify(&self, user: &Address, password: &[u8]) -> AuthResult;

    /// The SCRAM-SHA-256 keys of `user`, for the SCRAM mechanism.
    fn scram(&self, user: &Address) -> Lookup<ScramVerifier>;

    /// The plaintext-equivalent secret of `user`, for CRAM-MD5 and APOP.
    fn cram_secret(&self, user: &Address) -> Lookup<Secret>;
}

impl<S: PasswordSource + ?Sized> PasswordSource for std::sync::Arc<S> {
    fn verify(&self, user: &Address, password: &[u8]) -> AuthResult {
        (**self).verify(user, password)
    }
    fn scram(&self, user: &Address) -> Lookup<ScramVerifier> {
        (**self).scram(user)
    }
    fn cram_secret(&self, user: &Address) -> Lookup<Secret> {
        (**self).cram_secret(user)
    }
}

impl<S: PasswordSource + ?Sized> PasswordSource for Box<S> {
    fn verify(&self, user: &Address, password: &[u8]) -> AuthResult {
        (**self).verify(user, password)
    }
    fn scram(&self, user: &Address) -> Lookup<ScramVerifier> {
        (**self).scram(user)
    }
    fn cram_secret(&self, user: &Address) -> Lookup<Secret> {
        (**self).cram_secret(user)
    }
}

/// An argon2id hash of a password nobody has, made once per process: unknown users
/// are checked against it so they cost what a known user costs.
pub fn dummy_argon2_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        crate::password::hash_password("msgstore dummy password for unknown users")
            .unwrap_or_default()
    })
}
