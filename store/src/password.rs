//! Password hashes kept in profiles (DESIGN §5): argon2id in PHC string form, so the
//! parameters travel with the hash and can be raised later without a migration.
//!
//! Hashing is CPU-heavy (tens of milliseconds): callers run it off the shard thread.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Result, StoreError};
use crate::limits::PASSWORD_BYTES_MAX;

/// Memory cost in KiB (OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane).
const MEMORY_KIB: u32 = 19_456;
/// Passes over memory.
const TIME_COST: u32 = 2;
/// Lanes.
const PARALLELISM: u32 = 1;

fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, TIME_COST, PARALLELISM, None).map_err(|e| {
        StoreError::InvalidValue {
            field: "password",
            reason: format!("argon2 parameters: {e}"),
        }
    })?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with argon2id and a fresh random salt; returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$…`). Rejects an empty or over-long password.
pub fn hash_password(plain: &str) -> Result<String> {
    if plain.is_empty() {
        return Err(StoreError::InvalidValue {
            field: "password",
            reason: "password is empty".into(),
        });
    }
    if plain.len() > PASSWORD_BYTES_MAX {
        return Err(StoreError::InvalidValue {
            field: "password",
            reason: format!("password is longer than {PASSWORD_BYTES_MAX} bytes"),
        });
    }
    let salt = SaltString::generate(&mut OsRng);
    hasher()?
        .hash_password(plain.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::InvalidValue {
            field: "password",
            reason: format!("hashing failed: {e}"),
        })
}

/// Checks a password against a PHC string (constant-time comparison inside argon2).
/// `false` for a wrong password, a malformed hash, or a password over the limit.
/// The parameters are taken from the hash itself, so older hashes keep verifying.
pub fn verify_password(phc: &str, plain: &str) -> bool {
    if plain.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(plain.as_bytes(), &hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() -> Result<()> {
        let phc = hash_password("correct horse")?;
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "correct hors"));
        assert!(!verify_password(&phc, ""));
        // Random salt: the same password hashes differently.
        assert_ne!(hash_password("correct horse")?, phc);
        Ok(())
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            hash_password(""),
            Err(StoreError::InvalidValue {
                field: "password",
                ..
            })
        ));
        let long = "x".repeat(PASSWORD_BYTES_MAX + 1);
        assert!(hash_password(&long).is_err());
        assert!(!verify_password("", "x"));
        assert!(!verify_password("$argon2id$garbage", "x"));
        assert!(!verify_password("plaintext", "plaintext"));
    }
}
