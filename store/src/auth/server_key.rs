//! The server key: 32 random bytes that encrypt plaintext-equivalent secrets at rest
//! (CRAM-MD5/APOP) and seed the SCRAM decoy salts.
//!
//! `<root0>/keys/secret.key` (directory mode 0700, file mode 0600, created on first
//! use) in the store's line format:
//!
//! ```text
//! msgstore-secret-key 1            magic and version
//! key <base64 of 32 bytes>         the ChaCha20-Poly1305 key
//! crc32 1a2b3c4d                   CRC-32 of the preceding bytes
//! ```
//!
//! A file readable by group or others is refused, like ssh refuses a loose private
//! key. Losing the file loses every stored CRAM-MD5/APOP secret (those users log in
//! with other mechanisms until their password is set again); argon2 hashes and SCRAM
//! keys do not depend on it. Back it up with the store's first root.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::secret::Secret;
use crate::address::Address;
use crate::durable::{read_bounded, sync_dir, unique_suffix};
use crate::error::{Result, StoreError};
use crate::textfile;

/// Directory under the first root.
pub const KEYS_DIR: &str = "keys";
/// File name inside [`KEYS_DIR`].
pub const SECRET_KEY_FILE: &str = "secret.key";
/// Magic word on the first line.
pub const SECRET_KEY_MAGIC: &str = "msgstore-secret-key";
/// The only version this build reads and writes.
pub const SECRET_KEY_VERSION: u32 = 1;
/// Key length (ChaCha20).
pub const SECRET_KEY_BYTES: usize = 32;
/// Nonce length (ChaCha20-Poly1305, RFC 8439): random per sealed secret.
pub const SEAL_NONCE_BYTES: usize = 12;
/// The key file is three short lines.
const SECRET_KEY_FILE_BYTES_MAX: usize = 256;

/// A secret sealed with the server key: `nonce` and ChaCha20-Poly1305 ciphertext
/// (with its 16-byte tag). The associated data is the canonical address, so a sealed
/// secret copied into another account does not open.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub nonce: [u8; SEAL_NONCE_BYTES],
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedSecret(..)")
    }
}

/// The server key, loaded. `Debug` never shows it; wiped on drop.
#[derive(Clone)]
pub struct ServerKey {
    key: [u8; SECRET_KEY_BYTES],
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

impl Drop for ServerKey {
    fn drop(&mut self) {
        self.key.fill(0);
    }
}

impl ServerKey {
    /// `<root0>/keys/secret.key`.
    pub fn path(root0: &Path) -> PathBuf {
        root0.join(KEYS_DIR).join(SECRET_KEY_FILE)
    }

    /// Loads the key, creating it (and `keys/`) on first use. Two processes racing
    /// end with the same key: the file is linked into place only if absent.
    pub fn load_or_create(root0: &Path) -> Result<ServerKey> {
        match ServerKey::load(root0)? {
            Some(key) => Ok(key),
            None => ServerKey::create(root0),
        }
    }

    /// Loads the key; `None` when the file does not exist.
    pub fn load(root0: &Path) -> Result<Option<ServerKey>> {
        let path = ServerKey::path(root0);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(StoreError::Config {
                key: "keys/secret.key",
                reason: format!(
                    "{} is readable by group or others; chmod 600 it",
                    path.display()
                ),
            });
        }
        let bytes = read_bounded(&path, SECRET_KEY_FILE_BYTES_MAX)?;
        let mut fields = textfile::decode(&path, &bytes, SECRET_KEY_MAGIC, SECRET_KEY_VERSION)?;
        let value = textfile::take(&path, &mut fields, "key")?;
        textfile::no_unknown_keys(&path, &fields)?;
        let key = STANDARD
            .decode(value)
            .ok()
            .and_then(|k| <[u8; SECRET_KEY_BYTES]>::try_from(k).ok())
            .ok_or_else(|| StoreError::corrupt(&path, "key is not 32 bytes of base64"))?;
        Ok(Some(ServerKey { key }))
    }

    fn create(root0: &Path) -> Result<ServerKey> {
        let dir = root0.join(KEYS_DIR);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => sync_dir(root0)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io(&dir, e)),
        }
        let mut key = [0u8; SECRET_KEY_BYTES];
        getrandom::fill(&mut key)
            .map_err(|e| StoreError::io(&dir, io::Error::other(e.to_string())))?;
        let body = textfile::encode(
            SECRET_KEY_MAGIC,
            SECRET_KEY_VERSION,
            &[("key", &STANDARD.encode(key))],
        )?;
        let temp = dir.join(format!(".{SECRET_KEY_FILE}.{}", unique_suffix()));
        let path = dir.join(SECRET_KEY_FILE);
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(&body)?;
            file.sync_all()
        })();
        written.map_err(|e| StoreError::io(&temp, e))?;
        // link(2) fails when the name exists: whoever linked first wins, all read it.
        let linked = fs::hard_link(&temp, &path);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                sync_dir(&dir)?;
                Ok(ServerKey { key })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => ServerKey::load(root0)?
                .ok_or_else(|| StoreError::corrupt(&path, "key file vanished")),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// A key from bytes (tests, or a key kept elsewhere).
    pub fn from_bytes(key: [u8; SECRET_KEY_BYTES]) -> ServerKey {
        ServerKey { key }
    }

    /// A sub-key for one purpose: HMAC-SHA-256(key, label). For example
    /// `derive("scram-decoy")` for `protocols::sasl::SaslPolicy::decoy_key`, which keeps
    /// decoy salts stable across restarts.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) else {
            return [0; 32];
        };
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plain` for `user` with a fresh random nonce.
    pub fn seal(&self, user: &Address, plain: &[u8]) -> Result<SealedSecret> {
        let mut nonce = [0u8; SEAL_NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::InvalidValue {
            field: "password",
            reason: format!("no randomness for the nonce: {e}"),
        })?;
        let aad = associated_data(user);
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::InvalidValue {
                field: "password",
                reason: "encryption failed".into(),
            })?;
        Ok(SealedSecret { nonce, ciphertext })
    }

    /// Decrypts a secret sealed for `user`; `None` if it was sealed with another key or
    /// for another user, or was altered.
    pub fn open(&self, user: &Address, sealed: &SealedSecret) -> Option<Secret> {
        let aad = associated_data(user);
        self.cipher()
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .ok()
            .map(Secret::new)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.key))
    }
}

fn associated_data(user: &Address) -> Vec<u8> {
    let mut aad = b"msgstore cram secret v1\0".to_vec();
    aad.extend_from_slice(user.as_str().as_bytes());
    aad
}
