//! Every limit of the SASL server, each with its reason (STYLE: limits in one place).
//!
//! They live beside the mechanisms rather than in `protocols::limits` so the SASL code
//! is one folder; the protocol sessions keep their own line limits, which must admit
//! the base64 form of [`SASL_RESPONSE_BYTES_MAX`].

/// One decoded client response. The largest honest one is a SCRAM client-final
/// message or a PLAIN message with long names and a long password: well under 2 KiB.
pub const SASL_RESPONSE_BYTES_MAX: usize = 4 * 1024;

/// The base64 text of one client response, before decoding: what a session may pass
/// to [`super::decode_response`]. Checked before decoding so no large buffer is made.
pub const SASL_RESPONSE_BASE64_BYTES_MAX: usize = SASL_RESPONSE_BYTES_MAX.div_ceil(3) * 4;

/// An authentication or authorisation identity. Addresses are at most 254 octets
/// (RFC 5321); UTF-8 names of other password sources get some room, no more.
pub const SASL_NAME_BYTES_MAX: usize = 512;

/// A password sent by PLAIN or LOGIN: the store refuses longer ones
/// (`store::limits::PASSWORD_BYTES_MAX`), so bound the work before hashing.
pub const SASL_PASSWORD_BYTES_MAX: usize = 1024;

/// A SCRAM client nonce. Clients send 24–32 random characters; a huge one would
/// only be echoed back and hashed.
pub const SCRAM_NONCE_BYTES_MAX: usize = 256;

/// Random bytes in the server's part of a SCRAM nonce (base64 in the message):
/// 18 bytes = 144 bits, more than RFC 5802 §5.1 needs for uniqueness.
pub const SCRAM_SERVER_NONCE_BYTES: usize = 18;

/// Salt length for the decoy exchange of an unknown SCRAM user: the same as the
/// store's real salts so a decoy cannot be told by its length.
pub const SCRAM_DECOY_SALT_BYTES: usize = 16;

/// Iteration count of the decoy exchange: the store's default (RFC 7677 §4 asks
/// for at least 4096), so a decoy cannot be told by its count.
pub const SCRAM_DECOY_ITERATIONS: u32 = 4096;

/// Client messages in one exchange. LOGIN has the most (user, password); one more
/// for the empty answer to SCRAM's server-final sent as a challenge.
pub const SASL_STEPS_MAX: u32 = 4;

const _: () =
    assert!(SASL_PASSWORD_BYTES_MAX + 2 * SASL_NAME_BYTES_MAX + 2 <= SASL_RESPONSE_BYTES_MAX);
const _: () = assert!(SCRAM_NONCE_BYTES_MAX + SASL_NAME_BYTES_MAX + 64 <= SASL_RESPONSE_BYTES_MAX);
