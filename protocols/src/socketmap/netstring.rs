//! Netstrings (D. J. Bernstein): `<length>:<payload>,`, the framing of Postfix's
//! socketmap protocol. The length is decimal ASCII without leading zeros (`0`
//! itself is allowed); anything else — a sign, a space, a missing `,`, a length
//! over the caller's limit — is garbage, and the connection is closed: there is
//! no way to find the next frame once one is misread.

/// Why the input is not a netstring stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NetstringError {
    #[error("netstring length is not a decimal number")]
    BadLength,
    #[error("netstring of {length_bytes} bytes is over the limit of {max_bytes}")]
    TooLong { length_bytes: u64, max_bytes: usize },
    #[error("netstring payload is not followed by ','")]
    MissingComma,
}

/// A complete netstring found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Where the payload lies in the buffer.
    pub payload: (usize, usize),
    /// Bytes the whole netstring takes (length, `:`, payload, `,`).
    pub consumed: usize,
}

/// Appends `payload` as a netstring.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(payload);
    out.push(b',');
}

/// Looks for one netstring with a payload of at most `max_bytes` at the start of
/// `input`: `Ok(None)` while more bytes are needed. A length over the limit is
/// reported as soon as its digits show it, before the payload is waited for.
pub fn decode(input: &[u8], max_bytes: usize) -> Result<Option<Frame>, NetstringError> {
    let mut length: u64 = 0;
    for (index, &byte) in input.iter().enumerate() {
        match byte {
            b':' if index == 0 => return Err(NetstringError::BadLength),
            b':' => return payload(input, index, length, max_bytes),
            b'0'..=b'9' => {
                if index == 1 && input[0] == b'0' {
                    return Err(NetstringError::BadLength);
                }
                length = length * 10 + u64::from(byte - b'0');
                if length > max_bytes as u64 {
                    return Err(NetstringError::TooLong {
                        length_bytes: length,
                        max_bytes,
                    });
                }
            }
            _ => return Err(NetstringError::BadLength),
        }
    }
    Ok(None)
}

fn payload(
    input: &[u8],
    colon: usize,
    length: u64,
    max_bytes: usize,
) -> Result<Option<Frame>, NetstringError> {
    // `decode` kept `length` at most `max_bytes`, so it fits a usize.
    let length = usize::try_from(length).map_err(|_| NetstringError::TooLong {
        length_bytes: length,
        max_bytes,
    })?;
    let start = colon + 1;
    let end = start + length;
    match input.get(end) {
        None => Ok(None),
        Some(b',') => Ok(Some(Frame {
            payload: (start, end),
            consumed: end + 1,
        })),
        Some(_) => Err(NetstringError::MissingComma),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Result<Option<Vec<u8>>, NetstringError> {
        Ok(decode(input, 10)?.map(|f| input[f.payload.0..f.payload.1].to_vec()))
    }

    #[test]
    fn round_trip_and_partial() {
        let mut out = Vec::new();
        encode(b"hello world", &mut out);
        assert_eq!(out, b"11:hello world,");
        encode(b"", &mut out);
        assert_eq!(&out[15..], b"0:,");
        assert_eq!(one(b"0:,"), Ok(Some(Vec::new())));
        assert_eq!(one(b"5:hello,rest"), Ok(Some(b"hello".to_vec())));
        for cut in 0..8 {
            assert_eq!(one(&b"5:hello,"[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn garbage() {
        assert_eq!(one(b":x,"), Err(NetstringError::BadLength));
        assert_eq!(one(b"05:hello,"), Err(NetstringError::BadLength));
        assert_eq!(one(b"-1:"), Err(NetstringError::BadLength));
        assert_eq!(one(b" 5:hello,"), Err(NetstringError::BadLength));
        assert_eq!(one(b"GET / HTTP/1.0"), Err(NetstringError::BadLength));
        assert_eq!(one(b"5:hello;"), Err(NetstringError::MissingComma));
        assert_eq!(
            one(b"11"),
            Err(NetstringError::TooLong {
                length_bytes: 11,
                max_bytes: 10
            })
        );
        assert_eq!(
            one(b"99999999999999999999999"),
            Err(NetstringError::TooLong {
                length_bytes: 99,
                max_bytes: 10
            })
        );
    }
}
