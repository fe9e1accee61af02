//! The base64 framing of SASL responses and challenges as IMAP (RFC 9051 §6.2.2),
//! POP3 (RFC 5034 §4) and ManageSieve (RFC 5804 §2.1) send them: one line of base64,
//! `*` to cancel, `=` for an empty initial response. Decoding is strict: canonical
//! padding, no whitespace, no trailing bits; anything else is malformed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::SaslFailure;
use super::limits::{SASL_RESPONSE_BASE64_BYTES_MAX, SASL_RESPONSE_BYTES_MAX};
use crate::secret::Secret;

/// One client line of a SASL exchange, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientResponse {
    /// The decoded bytes (possibly empty).
    Data(Secret),
    /// `*`: the client cancels the exchange (RFC 4422 §3.5).
    Cancel,
}

/// Decodes one response line (without its CRLF). `*` cancels; `=` and the empty line
/// are the empty response (an initial response of `=`, or an empty continuation).
/// Over-long input is refused before it is decoded.
pub fn decode_response(line: &[u8]) -> Result<ClientResponse, SaslFailure> {
    match line {
        b"*" => return Ok(ClientResponse::Cancel),
        b"=" | b"" => return Ok(ClientResponse::Data(Secret::new(Vec::new()))),
        _ => {}
    }
    if line.len() > SASL_RESPONSE_BASE64_BYTES_MAX {
        return Err(SaslFailure::TooLarge);
    }
    let bytes = STANDARD
        .decode(line)
        .map_err(|_| SaslFailure::Malformed("invalid base64"))?;
    if bytes.len() > SASL_RESPONSE_BYTES_MAX {
        return Err(SaslFailure::TooLarge);
    }
    Ok(ClientResponse::Data(Secret::new(bytes)))
}

/// Encodes a server challenge (or success data) for the wire: standard base64 with
/// padding; the empty challenge is the empty string (IMAP sends `+ `, POP3 `+ `).
pub fn encode_challenge(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(line: &[u8]) -> Vec<u8> {
        match decode_response(line) {
            Ok(ClientResponse::Data(secret)) => secret.expose().to_vec(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decodes_strictly() {
        assert_eq!(data(b"AGJvYgBwdw=="), b"\0bob\0pw");
        assert_eq!(data(b"="), b"");
        assert_eq!(data(b""), b"");
        assert_eq!(decode_response(b"*"), Ok(ClientResponse::Cancel));
        for bad in [
            &b"AGJvYgBwdw"[..], // missing padding
            b"AGJvYgBwdw===",   // extra padding
            b"AGJv YgBwdw==",   // whitespace
            b"AGJvYgBwdx==",    // trailing bits set
            b"!!!!",            // not the alphabet
            b"AGJvYgBwdw==\r",  // CR left in
            b"**",
        ] {
            assert_eq!(
                decode_response(bad),
                Err(SaslFailure::Malformed("invalid base64")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_oversized_before_decoding() {
        let fits = encode_challenge(&vec![b'a'; SASL_RESPONSE_BYTES_MAX]);
        assert_eq!(data(fits.as_bytes()).len(), SASL_RESPONSE_BYTES_MAX);
        let over = encode_challenge(&vec![b'a'; SASL_RESPONSE_BYTES_MAX + 1]);
        assert_eq!(decode_response(over.as_bytes()), Err(SaslFailure::TooLarge));
        let junk = vec![b'!'; 10 * SASL_RESPONSE_BASE64_BYTES_MAX];
        assert_eq!(decode_response(&junk), Err(SaslFailure::TooLarge));
    }
}
