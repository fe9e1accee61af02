//! Socketmap replies (socketmap_table(5)): `OK <data>`, `NOTFOUND `, `TEMP <reason>`,
//! `TIMEOUT <reason>`, `PERM <reason>`, each sent as one netstring.

use crate::limits::SOCKETMAP_REPLY_BYTES_MAX;

/// The engine's answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketmapReply {
    /// The key was found; `data` is the table's value (a transport, a target list…).
    Ok(String),
    /// The key is not in the map (Postfix: not found; for `relay_recipient_maps` that
    /// is `550 5.1.1 User unknown`).
    NotFound,
    /// Try again later (Postfix defers: `451 4.3.0` at RCPT).
    Temp(String),
    /// The lookup took too long (Postfix treats it like `TEMP`).
    Timeout(String),
    /// The map cannot answer this at all (unknown map, malformed request); Postfix
    /// logs it and defers too, but will not get a better answer by retrying.
    Perm(String),
}

impl SocketmapReply {
    /// `transport` answer for an LMTP TCP socket: `lmtp:inet:127.0.0.1:2425`
    /// (`lmtp:inet:[::1]:2425` for an IPv6 host).
    pub fn lmtp_inet(host: &str, port: u16) -> SocketmapReply {
        if host.contains(':') {
            SocketmapReply::Ok(format!("lmtp:inet:[{host}]:{port}"))
        } else {
            SocketmapReply::Ok(format!("lmtp:inet:{host}:{port}"))
        }
    }

    /// `transport` answer for an LMTP unix socket: `lmtp:unix:/run/msgstore/lmtp.1`.
    pub fn lmtp_unix(path: &str) -> SocketmapReply {
        SocketmapReply::Ok(format!("lmtp:unix:{path}"))
    }

    /// `recipient` answer for a valid recipient (Postfix only checks that one is found).
    pub fn recipient_ok() -> SocketmapReply {
        SocketmapReply::Ok("OK".to_owned())
    }

    /// `virtual` answer: the forwarding targets, comma-separated as in virtual(5).
    /// No targets is `NotFound` (the address is not an alias).
    pub fn virtual_targets<T: AsRef<str>>(targets: impl IntoIterator<Item = T>) -> SocketmapReply {
        let list: Vec<String> = targets.into_iter().map(|t| t.as_ref().to_owned()).collect();
        if list.is_empty() {
            SocketmapReply::NotFound
        } else {
            SocketmapReply::Ok(list.join(", "))
        }
    }

    /// The payload of the reply netstring. Control characters become spaces (the
    /// value is one line to Postfix); `OK` data over `SOCKETMAP_REPLY_BYTES_MAX`,
    /// which Postfix would refuse, becomes `PERM`; long reasons are cut.
    pub fn payload(&self) -> Vec<u8> {
        let (word, text) = match self {
            SocketmapReply::Ok(data) => {
                if data.len() + 3 > SOCKETMAP_REPLY_BYTES_MAX {
                    return SocketmapReply::Perm("reply too long".into()).payload();
                }
                ("OK", data.as_str())
            }
            SocketmapReply::NotFound => ("NOTFOUND", ""),
            SocketmapReply::Temp(reason) => ("TEMP", reason.as_str()),
            SocketmapReply::Timeout(reason) => ("TIMEOUT", reason.as_str()),
            SocketmapReply::Perm(reason) => ("PERM", reason.as_str()),
        };
        let mut payload = Vec::with_capacity(word.len() + 1 + text.len());
        payload.extend_from_slice(word.as_bytes());
        payload.push(b' ');
        let room = SOCKETMAP_REPLY_BYTES_MAX - payload.len();
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend(
            text[..end]
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
                .bytes(),
        );
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(reply: SocketmapReply) -> String {
        String::from_utf8_lossy(&reply.payload()).into_owned()
    }

    #[test]
    fn payloads() {
        assert_eq!(
            text(SocketmapReply::lmtp_inet("127.0.0.1", 2425)),
            "OK lmtp:inet:127.0.0.1:2425"
        );
        assert_eq!(
            text(SocketmapReply::lmtp_inet("::1", 2425)),
            "OK lmtp:inet:[::1]:2425"
        );
        assert_eq!(
            text(SocketmapReply::lmtp_unix("/run/m/lmtp.0")),
            "OK lmtp:unix:/run/m/lmtp.0"
        );
        assert_eq!(text(SocketmapReply::NotFound), "NOTFOUND ");
        assert_eq!(
            text(SocketmapReply::virtual_targets(["a@x", "b@y"])),
            "OK a@x, b@y"
        );
        assert_eq!(
            text(SocketmapReply::virtual_targets(Vec::<String>::new())),
            "NOTFOUND "
        );
        assert_eq!(
            text(SocketmapReply::Temp("disk\r\nbusy".into())),
            "TEMP disk  busy"
        );
        assert_eq!(
            text(SocketmapReply::Ok("x".repeat(SOCKETMAP_REPLY_BYTES_MAX))),
            "PERM reply too long"
        );
        let long = SocketmapReply::Perm("é".repeat(SOCKETMAP_REPLY_BYTES_MAX)).payload();
        assert!(long.len() <= SOCKETMAP_REPLY_BYTES_MAX);
        assert!(std::str::from_utf8(&long).is_ok());
    }
}
