//! Passwords in the account profile: the `password_hash` value is either a bare
//! argon2id PHC string (older profiles) or the [`Verifiers`] line.

use std::sync::Arc;

use super::crypt::verify_argon2;
use super::dummy_argon2_hash;
use super::{AuthResult, Lookup, PasswordSource, ScramVerifier, Secret, ServerKey, Verifiers};
use crate::address::Address;
use crate::error::StoreError;
use crate::store::Store;

/// The account profile as a password source.
#[derive(Debug, Clone)]
pub struct ProfileSource {
    store: Arc<Store>,
    /// Opens sealed CRAM-MD5/APOP secrets; `None`: CRAM-MD5 is off everywhere.
    key: Option<Arc<ServerKey>>,
}

impl ProfileSource {
    pub fn new(store: Arc<Store>, key: Option<Arc<ServerKey>>) -> ProfileSource {
        ProfileSource { store, key }
    }

    /// The user's verifiers; `Ok(None)` for an unknown user, an account without a
    /// password, or a damaged value (which logs in nobody).
    fn verifiers(&self, user: &Address) -> Result<Option<Verifiers>, ()> {
        match self.store.account(user) {
            Ok(profile) => Ok(profile
                .password_hash
                .as_deref()
                .and_then(|value| Verifiers::parse(value).ok())),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(_) => Err(()),
        }
    }
}

impl PasswordSource for ProfileSource {
    fn verify(&self, user: &Address, password: &[u8]) -> AuthResult {
        match self.verifiers(user) {
            Ok(Some(verifiers)) if verifiers.verify(password) => AuthResult::Ok,
            Ok(Some(_)) => AuthResult::Failed,
            Ok(None) => {
                let _ = verify_argon2(dummy_argon2_hash(), password);
                AuthResult::Failed
            }
            Err(()) => AuthResult::Unavailable,
        }
    }

    fn scram(&self, user: &Address) -> Lookup<ScramVerifier> {
        match self.verifiers(user) {
            Ok(Some(Verifiers {
                scram: Some(scram), ..
            })) => Lookup::Found(scram),
            Ok(_) => Lookup::Missing,
            Err(()) => Lookup::Unavailable,
        }
    }

    fn cram_secret(&self, user: &Address) -> Lookup<Secret> {
        let Some(key) = &self.key else {
            return Lookup::Missing;
        };
        match self.verifiers(user) {
            Ok(Some(verifiers)) => match verifiers.cram_secret(user, key) {
                Some(secret) => Lookup::Found(secret),
                None => Lookup::Missing,
            },
            Ok(None) => Lookup::Missing,
            Err(()) => Lookup::Unavailable,
        }
    }
}
