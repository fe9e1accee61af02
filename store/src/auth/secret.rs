//! Password material held in memory by the store's password sources.

use std::fmt;

/// A password or plaintext-equivalent secret. `Debug` never shows it; the bytes are
/// overwritten when dropped (best effort: copies a reallocating `Vec` made are not).
/// The engine moves the bytes into `protocols::Secret` (the store does not depend on
/// `protocols`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The secret bytes; call only where they are checked, hashed or handed on.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Gives the bytes away (to `protocols::Secret::new`); nothing is left to wipe here.
    pub fn into_bytes(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}
