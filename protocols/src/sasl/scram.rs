//! SCRAM-SHA-256 (RFC 7677, RFC 5802) without channel binding.
//!
//! ```text
//! C: n,,n=user,r=cnonce                          client-first (gs2 header "n,," or "y,,")
//! S: r=cnonce+snonce,s=base64(salt),i=4096       server-first
//! C: c=biws,r=cnonce+snonce,p=base64(proof)      client-final
//! S: v=base64(ServerSignature)                   server-final (success data)
//! ```
//!
//! The server holds StoredKey = H(HMAC(SaltedPassword, "Client Key")) and ServerKey =
//! HMAC(SaltedPassword, "Server Key"), never the password. A client asking for channel
//! binding (`p=`) is refused: `-PLUS` is never advertised, so that is either a broken
//! client or a downgrade. `y` (client could bind, thinks we cannot) is accepted: true
//! because we advertise no `-PLUS`.
//!
//! User names are taken as sent (after `=2C`/`=3D` decoding); SASLprep is not applied,
//! which is exact for the ASCII addresses an ISP uses.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::limits::{SCRAM_DECOY_ITERATIONS, SCRAM_DECOY_SALT_BYTES, SCRAM_NONCE_BYTES_MAX};
use super::{
    Context, CredentialRequest, Credentials, SaslFailure, SaslStep, SecretKind, authorization,
    identity,
};

/// Length of SHA-256 output, of StoredKey, ServerKey and the proof.
pub const SCRAM_KEY_BYTES: usize = 32;

/// What the server stores per user (RFC 5802 §3): not plaintext-equivalent.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: [u8; SCRAM_KEY_BYTES],
    pub server_key: [u8; SCRAM_KEY_BYTES],
}

impl fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSecret")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramSecret {
    /// Derives the verifier from a password (RFC 5802 §3): SaltedPassword =
    /// PBKDF2-HMAC-SHA-256(password, salt, iterations). CPU-heavy with real iteration
    /// counts: off the shard thread. (The store has its own copy of this derivation,
    /// as `store` does not depend on `protocols`; the RFC 7677 vector checks both.)
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ScramSecret {
        let mut salted = [0u8; SCRAM_KEY_BYTES];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let server_key = hmac_sha256(&salted, b"Server Key");
        salted.fill(0);
        ScramSecret {
            salt: salt.to_vec(),
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key,
        }
    }
}

/// After client-first: what the rest of the exchange needs.
pub(super) struct ClientFirst {
    authcid: String,
    authzid: Option<String>,
    /// `gs2-header` as sent, e.g. `n,,`: `c=` in client-final must be its base64.
    gs2_header: Vec<u8>,
    /// `client-first-message-bare` as sent.
    bare: Vec<u8>,
    client_nonce: String,
}

/// After server-first.
pub(super) struct ServerFirst {
    first: ClientFirst,
    message: Vec<u8>,
    nonce: String,
    secret: ScramSecret,
    /// An unknown user: the exchange goes on, and fails at the proof.
    decoy: bool,
}

#[derive(Default)]
pub(super) enum Scram {
    #[default]
    AwaitClientFirst,
    AwaitSecret(ClientFirst),
    AwaitClientFinal(ServerFirst),
    Done,
}

impl Scram {
    pub(super) fn initial(&mut self, response: Option<&[u8]>, context: &Context) -> SaslStep {
        match response {
            None => SaslStep::Challenge(Vec::new()),
            Some(message) => self.step(message, context),
        }
    }

    pub(super) fn step(&mut self, message: &[u8], context: &Context) -> SaslStep {
        match std::mem::replace(self, Scram::Done) {
            Scram::AwaitClientFirst => match parse_client_first(message, context) {
                Ok(first) => {
                    let request = CredentialRequest::Lookup {
                        authcid: first.authcid.clone(),
                        authzid: first.authzid.clone(),
                        kind: SecretKind::ScramSha256,
                    };
                    *self = Scram::AwaitSecret(first);
                    SaslStep::NeedCredentials(request)
                }
                Err(failure) => SaslStep::Failure(failure),
            },
            Scram::AwaitClientFinal(server_first) => client_final(&server_first, message),
            Scram::AwaitSecret(_) | Scram::Done => SaslStep::Failure(SaslFailure::UnexpectedStep),
        }
    }

    pub(super) fn provide(&mut self, credentials: Credentials, context: &Context) -> SaslStep {
        let Scram::AwaitSecret(first) = std::mem::replace(self, Scram::Done) else {
            return SaslStep::Failure(SaslFailure::UnexpectedStep);
        };
        let (secret, decoy) = match credentials {
            Credentials::ScramSha256(secret)
                if secret.iterations > 0 && !secret.salt.is_empty() =>
            {
                (secret, false)
            }
            Credentials::ScramSha256(_) => return SaslStep::Failure(SaslFailure::Unavailable),
            Credentials::Rejected => (decoy_secret(&first.authcid, context), true),
            _ => return SaslStep::Failure(SaslFailure::UnexpectedStep),
        };
        let nonce = format!("{}{}", first.client_nonce, context.nonce);
        let message = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&secret.salt),
            secret.iterations
        )
        .into_bytes();
        let challenge = message.clone();
        *self = Scram::AwaitClientFinal(ServerFirst {
            first,
            message,
            nonce,
            secret,
            decoy,
        });
        SaslStep::Challenge(challenge)
    }
}

/// `gs2-header client-first-message-bare` (RFC 5802 §7).
fn parse_client_first(message: &[u8], context: &Context) -> Result<ClientFirst, SaslFailure> {
    let malformed = SaslFailure::Malformed;
    let text = std::str::from_utf8(message).map_err(|_| malformed("SCRAM message is not UTF-8"))?;
    let mut parts = text.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("SCRAM client-first needs a gs2 header"));
    };
    match flag {
        "n" | "y" => {}
        _ if flag.starts_with("p=") => return Err(SaslFailure::ChannelBindingNotSupported),
        _ => return Err(malformed("bad gs2 channel-binding flag")),
    }
    let raw_authzid = authzid;
    let authzid = match raw_authzid {
        "" => None,
        _ => match raw_authzid.strip_prefix("a=") {
            Some(name) => Some(saslname(name)?),
            None => return Err(malformed("bad gs2 authzid")),
        },
    };
    let gs2_header = format!("{flag},{raw_authzid},").into_bytes();
    let mut attributes = bare.split(',');
    let mut user = attributes.next().unwrap_or_default();
    if user.starts_with("m=") {
        return Err(SaslFailure::UnsupportedExtension);
    }
    user = user
        .strip_prefix("n=")
        .ok_or(malformed("SCRAM client-first needs n=user"))?;
    let client_nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(malformed("SCRAM client-first needs r=nonce"))?;
    check_nonce(client_nonce)?;
    for extension in attributes {
        check_extension(extension)?;
    }
    let authcid = saslname(user)?;
    let authzid = authorization(authzid, &authcid, context)?;
    Ok(ClientFirst {
        authcid,
        authzid,
        gs2_header,
        bare: bare.as_bytes().to_vec(),
        client_nonce: client_nonce.to_owned(),
    })
}

/// `c=…,r=…[,ext…],p=…` (RFC 5802 §7), checked against the exchange so far.
fn client_final(server_first: &ServerFirst, message: &[u8]) -> SaslStep {
    match verify_client_final(server_first, message) {
        Ok(server_final) => SaslStep::Success {
            authcid: server_first.first.authcid.clone(),
            authzid: server_first.first.authzid.clone(),
            additional_data: Some(server_final),
        },
        Err(failure) => SaslStep::Failure(failure),
    }
}

fn verify_client_final(server_first: &ServerFirst, message: &[u8]) -> Result<Vec<u8>, SaslFailure> {
    let malformed = SaslFailure::Malformed;
    let text = std::str::from_utf8(message).map_err(|_| malformed("SCRAM message is not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(malformed("SCRAM client-final needs p=proof"))?;
    let mut attributes = without_proof.split(',');
    let binding = attributes
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(malformed("SCRAM client-final needs c=binding"))?;
    let nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(malformed("SCRAM client-final needs r=nonce"))?;
    for extension in attributes {
        check_extension(extension)?;
    }
    let binding = STANDARD
        .decode(binding)
        .map_err(|_| malformed("SCRAM c= is not base64"))?;
    // Without channel binding, c= is the gs2 header itself; anything else is a client
    // that changed its mind (or a man in the middle) between the two messages.
    if binding != server_first.first.gs2_header {
        return Err(malformed("SCRAM c= does not match the gs2 header"));
    }
    if nonce != server_first.nonce {
        return Err(malformed("SCRAM nonce does not match"));
    }
    let proof = STANDARD
        .decode(proof)
        .map_err(|_| malformed("SCRAM p= is not base64"))?;
    let proof: [u8; SCRAM_KEY_BYTES] = proof
        .try_into()
        .map_err(|_| malformed("SCRAM proof has the wrong length"))?;

    let mut auth_message = Vec::with_capacity(
        server_first.first.bare.len() + server_first.message.len() + without_proof.len() + 2,
    );
    auth_message.extend_from_slice(&server_first.first.bare);
    auth_message.push(b',');
    auth_message.extend_from_slice(&server_first.message);
    auth_message.push(b',');
    auth_message.extend_from_slice(without_proof.as_bytes());

    let secret = &server_first.secret;
    let client_signature = hmac_sha256(&secret.stored_key, &auth_message);
    let mut client_key = proof;
    for (k, s) in client_key.iter_mut().zip(client_signature) {
        *k ^= s;
    }
    let computed: [u8; SCRAM_KEY_BYTES] = Sha256::digest(client_key).into();
    let matches = bool::from(computed.ct_eq(&secret.stored_key));
    if !matches || server_first.decoy {
        return Err(SaslFailure::AuthenticationFailed);
    }
    let server_signature = hmac_sha256(&secret.server_key, &auth_message);
    Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
}

/// `saslname`: `,` and `=` are sent as `=2C` and `=3D`; any other `=` is malformed.
fn saslname(text: &str) -> Result<String, SaslFailure> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'=' {
            out.push(b);
            continue;
        }
        match (bytes.next(), bytes.next()) {
            (Some(b'2'), Some(b'C')) => out.push(b','),
            (Some(b'3'), Some(b'D')) => out.push(b'='),
            _ => return Err(SaslFailure::Malformed("bad escape in SCRAM name")),
        }
    }
    identity(&out)
}

/// `printable` without `,`, bounded.
fn check_nonce(nonce: &str) -> Result<(), SaslFailure> {
    if nonce.is_empty() || nonce.len() > SCRAM_NONCE_BYTES_MAX {
        return Err(SaslFailure::Malformed("bad SCRAM nonce length"));
    }
    if !nonce
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(SaslFailure::Malformed("bad character in SCRAM nonce"));
    }
    Ok(())
}

/// An optional extension `attr=value` (ignored) – a letter and `=`.
fn check_extension(extension: &str) -> Result<(), SaslFailure> {
    let bytes = extension.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b'=' {
        Ok(())
    } else {
        Err(SaslFailure::Malformed("bad SCRAM attribute"))
    }
}

/// A verifier for a user who does not exist: salt and keys derived from the decoy key
/// and the name, so a repeated probe sees the same salt; it can never succeed.
fn decoy_secret(authcid: &str, context: &Context) -> ScramSecret {
    let mut input = b"salt\0".to_vec();
    input.extend_from_slice(authcid.as_bytes());
    let salt = hmac_sha256(&context.decoy_key, &input)[..SCRAM_DECOY_SALT_BYTES].to_vec();
    input[..4].copy_from_slice(b"keys");
    let key = hmac_sha256(&context.decoy_key, &input);
    ScramSecret {
        salt,
        iterations: SCRAM_DECOY_ITERATIONS,
        stored_key: Sha256::digest(key).into(),
        server_key: key,
    }
}

/// HMAC-SHA-256(key, message).
pub(super) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; SCRAM_KEY_BYTES] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; SCRAM_KEY_BYTES];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_escapes() {
        assert_eq!(saslname("a=2Cb=3Dc"), Ok("a,b=c".to_owned()));
        assert!(saslname("a=2").is_err());
        assert!(saslname("a=41").is_err());
        assert!(saslname("").is_err());
    }
}
