//! CRAM-MD5 (RFC 2195): the server sends `<random.random@host>`, the client answers
//! `user SP hex(HMAC-MD5(password, challenge))`. The server needs a
//! plaintext-equivalent secret, which is why the store keeps one only for accounts
//! that enable this mechanism (encrypted at rest).

use hmac::{Hmac, Mac};
use md5::Md5;
use subtle::ConstantTimeEq;

use super::{Context, CredentialRequest, Credentials, SaslFailure, SaslStep, SecretKind, identity};

/// Length of the hex digest in the response.
const DIGEST_HEX_BYTES: usize = 32;
/// Longest host name put in a challenge (RFC 1035 text form).
const HOSTNAME_BYTES_MAX: usize = 253;

#[derive(Default)]
pub(super) enum CramMd5 {
    #[default]
    Start,
    AwaitResponse {
        challenge: Vec<u8>,
    },
    AwaitSecret {
        authcid: String,
        challenge: Vec<u8>,
        digest: [u8; 16],
    },
    Done,
}

impl CramMd5 {
    pub(super) fn initial(&mut self, response: Option<&[u8]>, context: &Context) -> SaslStep {
        if response.is_some() {
            // Server-first mechanism: an initial response is a protocol error
            // (RFC 4422 §3.3).
            *self = CramMd5::Done;
            return SaslStep::Failure(SaslFailure::Malformed("CRAM-MD5 takes no initial response"));
        }
        let challenge = challenge(context);
        *self = CramMd5::AwaitResponse {
            challenge: challenge.clone(),
        };
        SaslStep::Challenge(challenge)
    }

    pub(super) fn step(&mut self, response: &[u8]) -> SaslStep {
        let CramMd5::AwaitResponse { challenge } = std::mem::replace(self, CramMd5::Done) else {
            return SaslStep::Failure(SaslFailure::UnexpectedStep);
        };
        match parse(response) {
            Ok((authcid, digest)) => {
                *self = CramMd5::AwaitSecret {
                    authcid: authcid.clone(),
                    challenge,
                    digest,
                };
                SaslStep::NeedCredentials(CredentialRequest::Lookup {
                    authcid,
                    authzid: None,
                    kind: SecretKind::CramMd5,
                })
            }
            Err(failure) => SaslStep::Failure(failure),
        }
    }

    pub(super) fn provide(&mut self, credentials: Credentials) -> SaslStep {
        let CramMd5::AwaitSecret {
            authcid,
            challenge,
            digest,
        } = std::mem::replace(self, CramMd5::Done)
        else {
            return SaslStep::Failure(SaslFailure::UnexpectedStep);
        };
        match credentials {
            Credentials::CramMd5Secret(secret) => {
                if bool::from(hmac_md5(secret.expose(), &challenge).ct_eq(&digest)) {
                    SaslStep::Success {
                        authcid,
                        authzid: None,
                        additional_data: None,
                    }
                } else {
                    SaslStep::Failure(SaslFailure::AuthenticationFailed)
                }
            }
            Credentials::Rejected => SaslStep::Failure(SaslFailure::AuthenticationFailed),
            _ => SaslStep::Failure(SaslFailure::UnexpectedStep),
        }
    }
}

/// `<n1.n2@host>` (RFC 2195 §2 suggests a timestamp; there is no clock here, and a
/// random number is at least as unique).
fn challenge(context: &Context) -> Vec<u8> {
    let nonce = &context.nonce;
    let host = &context.hostname;
    let host_ok = !host.is_empty()
        && host.len() <= HOSTNAME_BYTES_MAX
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let host = if host_ok { host.as_str() } else { "localhost" };
    format!("<{nonce}@{host}>").into_bytes()
}

/// `user SP digest`; the user name may itself hold spaces, so split at the last one.
fn parse(response: &[u8]) -> Result<(String, [u8; 16]), SaslFailure> {
    let space = response
        .iter()
        .rposition(|&b| b == b' ')
        .ok_or(SaslFailure::Malformed("CRAM-MD5 needs user SP digest"))?;
    let (user, hex) = (&response[..space], &response[space + 1..]);
    if hex.len() != DIGEST_HEX_BYTES {
        return Err(SaslFailure::Malformed(
            "CRAM-MD5 digest is not 32 hex digits",
        ));
    }
    let mut digest = [0u8; 16];
    for (out, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (hex_value(pair[0]), hex_value(pair[1])) else {
            return Err(SaslFailure::Malformed(
                "CRAM-MD5 digest is not 32 hex digits",
            ));
        };
        *out = hi << 4 | lo;
    }
    Ok((identity(user)?, digest))
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

/// POP3 APOP (RFC 1939 §7): whether `digest_hex` (32 hex digits, any case) is
/// MD5(`timestamp` + `secret`), compared in constant time. It needs the same
/// plaintext-equivalent secret as CRAM-MD5, so it lives here.
pub fn apop_matches(timestamp: &str, secret: &[u8], digest_hex: &str) -> bool {
    use md5::Digest;
    let hex = digest_hex.as_bytes();
    if hex.len() != DIGEST_HEX_BYTES {
        return false;
    }
    let mut given = [0u8; 16];
    for (out, pair) in given.iter_mut().zip(hex.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (hex_value(pair[0]), hex_value(pair[1])) else {
            return false;
        };
        *out = hi << 4 | lo;
    }
    let mut md5 = Md5::new();
    md5.update(timestamp.as_bytes());
    md5.update(secret);
    let want: [u8; 16] = md5.finalize().into();
    bool::from(want.ct_eq(&given))
}

/// HMAC-MD5(key, message) (RFC 2104).
pub(super) fn hmac_md5(key: &[u8], message: &[u8]) -> [u8; 16] {
    // new_from_slice accepts keys of any length (long keys are hashed first).
    let Ok(mut mac) = Hmac::<Md5>::new_from_slice(key) else {
        return [0; 16];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2195_example_digest() {
        // RFC 2195 §2: user tim, password tanstaaftanstaaf.
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        let digest = hmac_md5(b"tanstaaftanstaaf", challenge);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "b913a602c7eda7a495b4e6e7334d3890");
    }

    #[test]
    fn rfc1939_apop_example() {
        // RFC 1939 §7: mrose, secret tanstaaf.
        let timestamp = "<1896.697170952@dbc.mtview.ca.us>";
        let digest = "c4c9334bac560ecc979e58001b3e22fb";
        assert!(apop_matches(timestamp, b"tanstaaf", digest));
        assert!(apop_matches(timestamp, b"tanstaaf", &digest.to_uppercase()));
        assert!(!apop_matches(timestamp, b"tanstaaF", digest));
        assert!(!apop_matches(timestamp, b"tanstaaf", &digest[1..]));
        assert!(!apop_matches(timestamp, b"tanstaaf", "zz"));
    }

    #[test]
    fn parses_names_with_spaces_and_upper_hex() {
        let (user, _) = parse(b"tim smith B913A602C7EDA7A495B4E6E7334D3890").expect("parse");
        assert_eq!(user, "tim smith");
        assert!(parse(b"tim b913a602c7eda7a495b4e6e7334d389").is_err());
        assert!(parse(b"tim b913a602c7eda7a495b4e6e7334d389g").is_err());
        assert!(parse(b" b913a602c7eda7a495b4e6e7334d3890").is_err());
        assert!(parse(b"b913a602c7eda7a495b4e6e7334d3890").is_err());
    }
}
