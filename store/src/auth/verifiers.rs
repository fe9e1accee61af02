//! What the store keeps when a password is set (DESIGN §5): the argon2id hash for
//! cleartext logins, SCRAM-SHA-256 keys (RFC 5802 §3: StoredKey and ServerKey are not
//! plaintext-equivalent — a thief can neither log in with them nor recover the
//! password faster than by guessing against PBKDF2), and — only for accounts that
//! enable CRAM-MD5/APOP — the password itself, sealed with the server key
//! ([`ServerKey`], ChaCha20-Poly1305, associated data = the canonical address).
//!
//! # Serialisation (one profile value, ASCII graphic, no spaces)
//!
//! ```text
//! msv1;argon2id=<PHC>;scram-sha-256=<iter>,<salt>,<stored>,<server>[;cram=<nonce>,<ct>]
//! ```
//!
//! * `msv1` — magic and version; a reader rejects anything else, except a bare PHC
//!   string (`$argon2id$…`: a profile from before this format, no SCRAM/CRAM part).
//! * `argon2id=` — the PHC string of [`crate::password::hash_password`].
//! * `scram-sha-256=` — iteration count (decimal), then standard base64 (with padding)
//!   of salt, StoredKey (32 bytes), ServerKey (32 bytes): Dovecot's `{SCRAM-SHA-256}`
//!   layout, so these can be exported to or imported from a Dovecot passwd-file.
//! * `cram=` — base64 of the 12-byte nonce and of the ciphertext+tag; present only
//!   while the account enables CRAM-MD5/APOP.
//!
//! Fields are separated by `;`, in this order; none of the encodings above can hold a
//! `;`, a space or a control character, so the value fits the profile's line format.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::crypt::verify_argon2;
use super::secret::Secret;
use super::server_key::{SEAL_NONCE_BYTES, SealedSecret, ServerKey};
use crate::address::Address;
use crate::error::{Result, StoreError};
use crate::limits::{
    SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN, SCRAM_SALT_BYTES, VERIFIERS_BYTES_MAX,
};
use crate::password::hash_password;

/// Magic and version of the serialised form.
pub const VERIFIERS_MAGIC: &str = "msv1";
/// SHA-256 output: StoredKey, ServerKey.
pub const SCRAM_KEY_BYTES: usize = 32;
/// Iteration count for new SCRAM keys: RFC 7677 §4's minimum and what clients expect
/// (Dovecot's default too). Each login costs the client this many HMACs.
pub const SCRAM_ITERATIONS_DEFAULT: u32 = 4096;

/// SCRAM-SHA-256 server-side keys (RFC 5802 §3).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; SCRAM_KEY_BYTES],
    pub server_key: [u8; SCRAM_KEY_BYTES],
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramVerifier {
    /// SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, i); StoredKey =
    /// H(HMAC(SaltedPassword, "Client Key")); ServerKey = HMAC(SaltedPassword,
    /// "Server Key"). CPU-heavy: off the shard thread.
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ScramVerifier {
        let mut salted = [0u8; SCRAM_KEY_BYTES];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let server_key = hmac_sha256(&salted, b"Server Key");
        salted.fill(0);
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key,
        }
    }

    /// Whether a cleartext password gives these keys (a PLAIN login against an entry
    /// that only has SCRAM keys).
    pub fn matches_password(&self, password: &[u8]) -> bool {
        let other = ScramVerifier::derive(password, &self.salt, self.iterations);
        bool::from(other.stored_key.ct_eq(&self.stored_key))
    }

    /// `iter,salt,stored,server` (base64), Dovecot's `{SCRAM-SHA-256}` value.
    pub fn to_dovecot(&self) -> String {
        format!(
            "{},{},{},{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }

    /// Parses [`ScramVerifier::to_dovecot`]'s form; `None` if malformed or if the
    /// iteration count is outside `SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX`.
    pub fn parse_dovecot(text: &str) -> Option<ScramVerifier> {
        let mut parts = text.split(',');
        let (Some(iterations), Some(salt), Some(stored), Some(server), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if !iterations.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let iterations: u32 = iterations.parse().ok()?;
        if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&iterations) {
            return None;
        }
        let salt = STANDARD.decode(salt).ok().filter(|s| !s.is_empty())?;
        Some(ScramVerifier {
            iterations,
            salt,
            stored_key: STANDARD.decode(stored).ok()?.try_into().ok()?,
            server_key: STANDARD.decode(server).ok()?.try_into().ok()?,
        })
    }
}

/// Choices made when a password is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifierOptions {
    /// PBKDF2 iterations of the SCRAM keys.
    pub scram_iterations: u32,
    /// Keep the password sealed for CRAM-MD5 and APOP (plaintext-equivalent: only for
    /// accounts that enable those mechanisms).
    pub keep_cram_secret: bool,
}

impl Default for VerifierOptions {
    fn default() -> VerifierOptions {
        VerifierOptions {
            scram_iterations: SCRAM_ITERATIONS_DEFAULT,
            keep_cram_secret: false,
        }
    }
}

/// Everything stored for one password.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifiers {
    /// argon2id PHC string.
    pub password_hash: String,
    /// `None` only for profiles written before SCRAM keys were kept.
    pub scram: Option<ScramVerifier>,
    /// The sealed password, only where CRAM-MD5/APOP is enabled.
    pub cram: Option<SealedSecret>,
}

impl fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifiers")
            .field("scram", &self.scram)
            .field("cram", &self.cram.is_some())
            .finish_non_exhaustive()
    }
}

impl Verifiers {
    /// Computes the verifiers of a new password (argon2id + PBKDF2: tens of
    /// milliseconds, off the shard thread). `key` is needed only with
    /// `keep_cram_secret`; pass `ServerKey::load_or_create(root0)`.
    pub fn from_password(
        plain: &str,
        user: &Address,
        options: &VerifierOptions,
        key: Option<&ServerKey>,
    ) -> Result<Verifiers> {
        if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&options.scram_iterations) {
            return Err(StoreError::InvalidValue {
                field: "scram_iterations",
                reason: format!(
                    "must be {SCRAM_ITERATIONS_MIN} to {SCRAM_ITERATIONS_MAX}, not {}",
                    options.scram_iterations
                ),
            });
        }
        // Checks emptiness and length too.
        let password_hash = hash_password(plain)?;
        let mut salt = [0u8; SCRAM_SALT_BYTES];
        getrandom::fill(&mut salt).map_err(|e| StoreError::InvalidValue {
            field: "password",
            reason: format!("no randomness for the salt: {e}"),
        })?;
        let scram = ScramVerifier::derive(plain.as_bytes(), &salt, options.scram_iterations);
        let cram = match (options.keep_cram_secret, key) {
            (false, _) => None,
            (true, Some(key)) => Some(key.seal(user, plain.as_bytes())?),
            (true, None) => {
                return Err(StoreError::InvalidValue {
                    field: "password",
                    reason: "a CRAM-MD5/APOP secret needs the server key".into(),
                });
            }
        };
        Ok(Verifiers {
            password_hash,
            scram: Some(scram),
            cram,
        })
    }

    /// Checks a cleartext password against the argon2id hash.
    pub fn verify(&self, password: &[u8]) -> bool {
        verify_argon2(&self.password_hash, password)
    }

    /// The CRAM-MD5/APOP secret, if kept and if it opens with `key` for `user`.
    pub fn cram_secret(&self, user: &Address, key: &ServerKey) -> Option<Secret> {
        self.cram.as_ref().and_then(|sealed| key.open(user, sealed))
    }

    /// Drops the sealed secret (CRAM-MD5/APOP turned off for the account).
    pub fn without_cram(mut self) -> Verifiers {
        self.cram = None;
        self
    }

    /// The one-line form documented in the module header.
    pub fn to_profile_value(&self) -> String {
        let mut value = format!("{VERIFIERS_MAGIC};argon2id={}", self.password_hash);
        if let Some(scram) = &self.scram {
            value.push_str(";scram-sha-256=");
            value.push_str(&scram.to_dovecot());
        }
        if let Some(cram) = &self.cram {
            value.push_str(&format!(
                ";cram={},{}",
                STANDARD.encode(cram.nonce),
                STANDARD.encode(&cram.ciphertext)
            ));
        }
        value
    }

    /// Parses [`Verifiers::to_profile_value`]'s form, or a bare argon2 PHC string.
    pub fn parse(value: &str) -> Result<Verifiers> {
        let invalid = |reason: &str| StoreError::InvalidValue {
            field: "password_hash",
            reason: reason.to_owned(),
        };
        if value.len() > VERIFIERS_BYTES_MAX {
            return Err(invalid("verifiers are too long"));
        }
        if value.starts_with("$argon2") {
            check_phc(value).map_err(invalid)?;
            return Ok(Verifiers {
                password_hash: value.to_owned(),
                scram: None,
                cram: None,
            });
        }
        let mut fields = value.split(';').peekable();
        if fields.next() != Some(VERIFIERS_MAGIC) {
            return Err(invalid("unknown verifiers format or version"));
        }
        let mut take = |key: &str| {
            let found = fields
                .peek()
                .and_then(|f| f.strip_prefix(key))
                .and_then(|f| f.strip_prefix('='));
            if found.is_some() {
                fields.next();
            }
            found
        };
        let password_hash = take("argon2id").ok_or_else(|| invalid("missing argon2id"))?;
        check_phc(password_hash).map_err(invalid)?;
        let scram = take("scram-sha-256")
            .map(|s| ScramVerifier::parse_dovecot(s).ok_or_else(|| invalid("bad scram-sha-256")))
            .transpose()?;
        let cram = take("cram")
            .map(|c| parse_sealed(c).ok_or_else(|| invalid("bad cram")))
            .transpose()?;
        if value.split(';').count()
            != 2 + usize::from(scram.is_some()) + usize::from(cram.is_some())
        {
            return Err(invalid("unknown or misplaced field in verifiers"));
        }
        Ok(Verifiers {
            password_hash: password_hash.to_owned(),
            scram,
            cram,
        })
    }
}

fn check_phc(phc: &str) -> std::result::Result<(), &'static str> {
    match argon2::password_hash::PasswordHash::new(phc) {
        Ok(_) => Ok(()),
        Err(_) => Err("not a PHC argon2 string"),
    }
}

fn parse_sealed(text: &str) -> Option<SealedSecret> {
    let (nonce, ciphertext) = text.split_once(',')?;
    Some(SealedSecret {
        nonce: <[u8; SEAL_NONCE_BYTES]>::try_from(STANDARD.decode(nonce).ok()?).ok()?,
        ciphertext: STANDARD.decode(ciphertext).ok().filter(|c| c.len() >= 16)?,
    })
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; SCRAM_KEY_BYTES] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; SCRAM_KEY_BYTES];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}
