//! Address lists for ENVELOPE, parsed as Dovecot's `lib-mail/message-address.c` does
//! with `MESSAGE_ADDRESS_PARSE_FLAG_FILL_MISSING`: broken input still yields addresses
//! (with `MISSING_MAILBOX`, `MISSING_DOMAIN`, `SYNTAX_ERROR` fillers), never an error.

use super::limits::ADDRESSES_PER_FIELD_MAX;
use super::rfc822::Rfc822;

/// One ENVELOPE address. A group start has only `mailbox` (the group name); a group
/// end has nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub name: Option<Vec<u8>>,
    pub route: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub domain: Option<Vec<u8>>,
}

struct Ctx<'a> {
    p: Rfc822<'a>,
    addr: Address,
    out: Vec<Address>,
}

impl Ctx<'_> {
    fn add(&mut self) {
        self.out.push(std::mem::take(&mut self.addr));
    }

    fn parse_local_part(&mut self) -> i8 {
        let mut s = Vec::new();
        let ret = if self.p.cur() == b'"' {
            self.p.parse_quoted_string(&mut s)
        } else {
            self.p.parse_dot_atom(&mut s)
        };
        if ret < 0 {
            return -1;
        }
        self.addr.mailbox = Some(s);
        ret
    }

    fn parse_domain(&mut self) -> i8 {
        let mut s = Vec::new();
        let ret = self.p.parse_domain(&mut s);
        if ret < 0 {
            return -1;
        }
        self.addr.domain = Some(s);
        ret
    }

    fn parse_domain_list(&mut self) -> i8 {
        let mut s = Vec::new();
        loop {
            if self.p.at_end() {
                return 0;
            }
            if self.p.cur() != b'@' {
                break;
            }
            if !s.is_empty() {
                s.push(b',');
            }
            s.push(b'@');
            let ret = self.p.parse_domain(&mut s);
            if ret <= 0 {
                return ret;
            }
            while self.p.skip_lwsp() > 0 && self.p.cur() == b',' {
                self.p.pos += 1;
            }
        }
        self.addr.route = Some(s);
        1
    }

    fn parse_angle_addr(&mut self) -> i8 {
        self.p.pos += 1;
        if self.p.skip_lwsp() <= 0 {
            return -1;
        }
        if self.p.cur() == b'@' {
            if self.parse_domain_list() > 0 && self.p.cur() == b':' {
                self.p.pos += 1;
            } else {
                self.addr.route = Some(b"INVALID_ROUTE".to_vec());
                if self.p.at_end() {
                    return -1;
                }
            }
            if self.p.skip_lwsp() <= 0 {
                return -1;
            }
        }
        if self.p.cur() != b'>' {
            if self.parse_local_part() <= 0 {
                return -1;
            }
            if self.p.cur() == b'@' && self.parse_domain() <= 0 {
                return -1;
            }
        }
        if self.p.cur() != b'>' {
            return -1;
        }
        self.p.pos += 1;
        self.p.skip_lwsp()
    }

    fn parse_name_addr(&mut self) -> i8 {
        let mut name = Vec::new();
        if self.p.parse_phrase(&mut name) <= 0 || self.p.cur() != b'<' {
            return -1;
        }
        self.addr.name = if name.is_empty() { None } else { Some(name) };
        if self.parse_angle_addr() < 0 {
            self.addr.domain = Some(b"SYNTAX_ERROR".to_vec());
        }
        if self.p.at_end() { 0 } else { 1 }
    }

    fn parse_addr_spec(&mut self) -> i8 {
        self.p.last_comment = Some(Vec::new());
        let quoted = self.p.cur() == b'"';
        let mut ret = self.parse_local_part();
        let mut ret2 = -2;
        if ret != 0 && !self.p.at_end() && self.p.cur() == b'@' {
            ret2 = self.parse_domain();
            if ret2 <= 0 {
                ret = ret2;
            }
        }
        let comment = self.p.last_comment.take().unwrap_or_default();
        if !comment.is_empty() {
            self.addr.name = Some(comment);
        } else if ret2 == -2 {
            // A lone word: a mailbox, unless more words follow (then a display name).
            let mut s = self.addr.mailbox.clone().unwrap_or_default();
            s.push(b' ');
            let before = s.len();
            let _ = self.p.parse_phrase(&mut s);
            if s.len() != before {
                self.addr.mailbox = None;
                self.addr.name = Some(s);
            } else if !quoted {
                self.addr.domain = Some(Vec::new());
            }
            ret = -1;
        }
        ret
    }

    fn parse_mailbox(&mut self) -> i8 {
        let start = self.p.pos;
        let mut ret = self.parse_name_addr();
        if ret < 0 {
            self.p.pos = start;
            self.addr = Address::default();
            ret = self.parse_addr_spec();
        }
        if self.addr.mailbox.as_ref().is_none_or(|m| m.is_empty()) {
            self.addr.mailbox = Some(b"MISSING_MAILBOX".to_vec());
        }
        if self.addr.domain.as_ref().is_none_or(|d| d.is_empty()) {
            self.addr.domain = Some(b"MISSING_DOMAIN".to_vec());
        }
        self.add();
        ret
    }

    fn parse_group(&mut self) -> i8 {
        let mut name = Vec::new();
        if self.p.parse_phrase(&mut name) <= 0 || self.p.cur() != b':' {
            return -1;
        }
        self.p.pos += 1;
        let mut ret = self.p.skip_lwsp();
        self.addr = Address {
            mailbox: Some(name),
            ..Address::default()
        };
        self.add();
        if ret > 0 && self.p.cur() != b';' {
            loop {
                if self.parse_mailbox() <= 0 {
                    ret = -1;
                    break;
                }
                if self.p.cur() != b',' {
                    break;
                }
                self.p.pos += 1;
                if self.p.skip_lwsp() <= 0 {
                    ret = -1;
                    break;
                }
            }
        }
        if ret >= 0 {
            if self.p.at_end() || self.p.cur() != b';' {
                ret = -1;
            } else {
                self.p.pos += 1;
                ret = self.p.skip_lwsp();
            }
        }
        self.add();
        if ret == 0 { 0 } else { 1 }
    }

    fn parse_address(&mut self) -> i8 {
        let start = self.p.pos;
        let len = self.out.len();
        let ret = self.parse_group();
        if ret >= 0 {
            return ret;
        }
        self.p.pos = start;
        self.out.truncate(len);
        self.addr = Address::default();
        self.parse_mailbox()
    }
}

/// Parses an address-list header value (unfolded). `None` when it holds no address.
pub fn parse_address_list(value: &[u8]) -> Option<Vec<Address>> {
    let mut ctx = Ctx {
        p: Rfc822::new(value),
        addr: Address::default(),
        out: Vec::new(),
    };
    if ctx.p.skip_lwsp() <= 0 {
        return None;
    }
    for _ in 0..ADDRESSES_PER_FIELD_MAX {
        if ctx.parse_address() == 0 {
            break;
        }
        if ctx.p.at_end() || ctx.p.cur() != b',' {
            break;
        }
        ctx.p.pos += 1;
        let ret = ctx.p.skip_lwsp();
        if ret <= 0 {
            if ret < 0 {
                ctx.addr = Address {
                    mailbox: Some(Vec::new()),
                    domain: Some(Vec::new()),
                    ..Address::default()
                };
                ctx.add();
            }
            break;
        }
    }
    if ctx.out.is_empty() {
        None
    } else {
        Some(ctx.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Address {
        parse_address_list(s.as_bytes())
            .unwrap_or_default()
            .remove(0)
    }

    #[test]
    fn common_forms() {
        let a = one("\"Barry A. Warsaw\" <barry@digicool.com>");
        assert_eq!(a.name.as_deref(), Some(&b"Barry A. Warsaw"[..]));
        assert_eq!(a.mailbox.as_deref(), Some(&b"barry"[..]));
        let a = one("barry@digicool.com (Barry A. Warsaw)");
        assert_eq!(a.name.as_deref(), Some(&b"Barry A. Warsaw"[..]));
        assert_eq!(a.domain.as_deref(), Some(&b"digicool.com"[..]));
    }

    #[test]
    fn groups_and_garbage() {
        let list = parse_address_list(b"undisclosed-recipients: ;").unwrap_or_default();
        assert_eq!(list.len(), 2);
        for s in [
            "<",
            "@",
            "\"",
            "a <b@",
            ",,,",
            "g: a@b, ;",
            "(",
            "<@x",
            "a@[1.2",
        ] {
            let _ = parse_address_list(s.as_bytes());
        }
    }
}
