//! Verification of the password hash formats found in passwd-files and `/etc/shadow`:
//! crypt(3) strings and Dovecot's `{SCHEME}` prefixes.
//!
//! | form | scheme | crate |
//! | --- | --- | --- |
//! | `$argon2id$…`, `$argon2i$…` | argon2 (PHC) | argon2 |
//! | `$y$…` | yescrypt (Debian 11+ default in `/etc/shadow`) | yescrypt |
//! | `$6$…`, `$5$…` | SHA512-CRYPT, SHA256-CRYPT (`rounds=` honoured) | pwhash |
//! | `$2a$`, `$2b$`, `$2y$` | bcrypt (BLF-CRYPT) | pwhash |
//! | `$1$…` | MD5-CRYPT (legacy; accepted for migration) | pwhash |
//! | `{PLAIN}`, `{CLEARTEXT}` | cleartext | — |
//! | `{SHA256}`, `{SHA512}`, `{SSHA256}`, `{SSHA512}` | base64 digest (+ salt) | sha2 |
//!
//! Not supported (never match): DES crypt (13 characters), `$7$`/`$gy$` (scrypt,
//! gost-yescrypt), `{SHA}`/`{SSHA}` (SHA-1), `{PLAIN-MD5}`, `{CRAM-MD5}` contexts,
//! locked entries (`!…`, `*`). Comparisons are constant-time inside each crate (or
//! with `subtle` here).

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use yescrypt::Yescrypt;

use crate::limits::PASSWORD_BYTES_MAX;

/// A stored password in one of the forms above, split from its `{SCHEME}` prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored<'a> {
    /// Cleartext (`{PLAIN}pw`): plaintext-equivalent, CRAM-MD5 can use it.
    Plain(&'a str),
    /// Dovecot's stored SCRAM keys (`{SCRAM-SHA-256}iter,salt,stored,server`).
    ScramSha256(&'a str),
    /// Anything verified by [`verify`]: crypt strings, PHC, salted digests.
    Hash { scheme: &'a str, value: &'a str },
}

/// Splits `{SCHEME}value`; without a prefix the value is a crypt(3) string
/// (Dovecot's `default_pass_scheme = CRYPT`).
pub(crate) fn split_scheme(field: &str) -> Stored<'_> {
    let (scheme, value) = match field.strip_prefix('{').and_then(|r| r.split_once('}')) {
        Some((scheme, value)) => (scheme, value),
        None => ("CRYPT", field),
    };
    if scheme.eq_ignore_ascii_case("PLAIN") || scheme.eq_ignore_ascii_case("CLEARTEXT") {
        Stored::Plain(value)
    } else if scheme.eq_ignore_ascii_case("SCRAM-SHA-256") {
        Stored::ScramSha256(value)
    } else {
        Stored::Hash { scheme, value }
    }
}

/// Whether `password` matches a stored field (with or without `{SCHEME}`). Unknown
/// schemes, locked entries and malformed hashes never match.
pub(crate) fn verify_field(field: &str, password: &[u8]) -> bool {
    if password.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    match split_scheme(field) {
        Stored::Plain(plain) => !plain.is_empty() && bool::from(plain.as_bytes().ct_eq(password)),
        // The SASL server checks SCRAM proofs; a cleartext login cannot be checked
        // against StoredKey without the salt work, which scram::verify does.
        Stored::ScramSha256(value) => super::verifiers::ScramVerifier::parse_dovecot(value)
            .is_some_and(|v| v.matches_password(password)),
        Stored::Hash { scheme, value } => verify(scheme, value, password),
    }
}

fn verify(scheme: &str, value: &str, password: &[u8]) -> bool {
    let scheme = scheme.to_ascii_uppercase();
    match scheme.as_str() {
        "CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT" | "MD5-CRYPT" | "BLF-CRYPT" | "ARGON2ID"
        | "ARGON2I" => verify_crypt(value, password),
        "SHA256" => digest_matches::<Sha256>(value, password, false),
        "SHA512" => digest_matches::<Sha512>(value, password, false),
        "SSHA256" => digest_matches::<Sha256>(value, password, true),
        "SSHA512" => digest_matches::<Sha512>(value, password, true),
        _ => false,
    }
}

/// A crypt(3)-style string (`$id$…`).
pub(crate) fn verify_crypt(hash: &str, password: &[u8]) -> bool {
    if password.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    if hash.starts_with("$argon2") {
        return verify_argon2(hash, password);
    }
    if hash.starts_with("$y$") {
        return yescrypt::PasswordVerifier::<str>::verify_password(
            &Yescrypt::default(),
            password,
            hash,
        )
        .is_ok();
    }
    let known = ["$6$", "$5$", "$1$", "$2a$", "$2b$", "$2y$"];
    if !known.iter().any(|id| hash.starts_with(id)) {
        // DES crypt, locked ("!", "*"), empty, scrypt, gost-yescrypt: never.
        return false;
    }
    // pwhash wants text; a password that is not UTF-8 cannot match a hash made by
    // a tool that took text (passwd, doveadm pw).
    let Ok(password) = std::str::from_utf8(password) else {
        return false;
    };
    // pwhash panics on nothing it is given (hash strings are parsed with Results),
    // but a malformed bcrypt cost could be slow: bcrypt caps cost at 31 itself.
    pwhash::unix::verify(password, hash)
}

/// argon2 PHC string, password as bytes.
pub(crate) fn verify_argon2(phc: &str, password: &[u8]) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password, &hash)
        .is_ok()
}

/// `{SHA256}`/`{SSHA256}`…: base64(digest(password [+ salt]) [+ salt]).
fn digest_matches<D: Digest>(value: &str, password: &[u8], salted: bool) -> bool {
    let Ok(decoded) = STANDARD.decode(value) else {
        return false;
    };
    let size = <D as Digest>::output_size();
    if decoded.len() < size || (!salted && decoded.len() != size) {
        return false;
    }
    let (expected, salt) = decoded.split_at(size);
    let mut hasher = D::new();
    hasher.update(password);
    hasher.update(salt);
    bool::from(hasher.finalize().as_slice().ct_eq(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Debian 12's libxcrypt (Python's crypt module), password "secret".
    const SHA512: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    const SHA512_ROUNDS: &str = "$6$rounds=10000$saltsalt$WowrPBpEDVlCoruBosYlrZycTCx3//TyDHYqEhX9DUHHt0XTztUqzQDDUuvUGRA8aUe9p55hcAxeGcu58sm3u.";
    const SHA256: &str = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
    const MD5: &str = "$1$saltsalt$9xy1btjgzLYfb7hivXtC//";
    const BCRYPT: &str = "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a";
    const YESCRYPT: &str =
        "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$GmcwIgvdUC9qLWcKCi6gklUa1dM3ziD43YxYNURLKy0";

    #[test]
    fn crypt_schemes_from_libxcrypt() {
        for hash in [SHA512, SHA512_ROUNDS, SHA256, MD5, BCRYPT, YESCRYPT] {
            assert!(verify_crypt(hash, b"secret"), "{hash}");
            assert!(!verify_crypt(hash, b"Secret"), "{hash}");
            assert!(!verify_crypt(hash, b""), "{hash}");
        }
    }

    #[test]
    fn locked_and_unknown_never_match() {
        for hash in [
            "",
            "!",
            "*",
            "!!",
            &format!("!{SHA512}"),
            "saHW9GdxihkGQ",
            "$7$abc",
            "$gy$x$y$z",
        ] {
            assert!(!verify_crypt(hash, b"secret"), "{hash}");
            assert!(!verify_crypt(hash, b""), "{hash}");
        }
    }

    #[test]
    fn dovecot_schemes() {
        assert!(verify_field("{PLAIN}secret", b"secret"));
        assert!(!verify_field("{PLAIN}secret", b"secreT"));
        assert!(!verify_field("{PLAIN}", b""));
        assert!(verify_field(
            &format!("{{SHA512-CRYPT}}{SHA512}"),
            b"secret"
        ));
        assert!(verify_field(&format!("{{BLF-CRYPT}}{BCRYPT}"), b"secret"));
        assert!(verify_field(SHA256, b"secret"), "no prefix = CRYPT");
        // {SSHA256}: sha256(password + salt) + salt, base64.
        let salt = b"NaCl";
        let mut digest = Sha256::digest([&b"secret"[..], salt].concat()).to_vec();
        digest.extend_from_slice(salt);
        let field = format!("{{SSHA256}}{}", STANDARD.encode(&digest));
        assert!(verify_field(&field, b"secret"));
        assert!(!verify_field(&field, b"secreT"));
        let plain = format!("{{SHA256}}{}", STANDARD.encode(Sha256::digest(b"secret")));
        assert!(verify_field(&plain, b"secret"));
        assert!(!verify_field("{SSHA}AAAA", b"secret"));
        assert!(!verify_field("{NOPE}secret", b"secret"));
    }
}
