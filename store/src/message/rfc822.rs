//! RFC 822/2045 tokens the way Dovecot's `lib-mail/rfc822-parser.c` reads them, so the
//! strings in ENVELOPE and BODYSTRUCTURE come out byte for byte as Dovecot's do.
//!
//! Return convention (Dovecot's): `-1` malformed, `0` input ended, `1` more input
//! follows. Nothing here panics on any input: every index is checked.

/// Replaces a NUL inside quoted strings and comments (Dovecot: U+FFFD).
const NUL_REPLACEMENT: &[u8] = "\u{fffd}".as_bytes();

/// 1: atext, 2: alpha/digit, 4: atext but a MIME tspecial ('/', '=', '?').
const fn atext_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b >= 0x80 {
            1
        } else if b.is_ascii_alphanumeric() {
            2
        } else if b == b'/' || b == b'=' || b == b'?' {
            4
        } else if matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'^'
                | b'_'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'~'
        ) {
            1
        } else {
            0
        };
        c += 1;
    }
    t
}
static ATEXT: [u8; 256] = atext_table();

pub(crate) fn is_atext(b: u8) -> bool {
    ATEXT[b as usize] != 0
}

fn is_token(b: u8) -> bool {
    ATEXT[b as usize] & 3 != 0
}

pub(crate) struct Rfc822<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    /// Text of the last comment skipped, when the caller wants it (display names).
    pub last_comment: Option<Vec<u8>>,
}

impl<'a> Rfc822<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            last_comment: None,
        }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The current byte, or 0 at the end (Dovecot reads a NUL terminator there).
    pub fn cur(&self) -> u8 {
        self.data.get(self.pos).copied().unwrap_or(0)
    }

    fn more(&self) -> i8 {
        if self.at_end() { 0 } else { 1 }
    }

    pub fn skip_lwsp(&mut self) -> i8 {
        while let Some(&b) = self.data.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => {
                    if self.skip_comment() < 0 {
                        return -1;
                    }
                }
                _ => break,
            }
        }
        self.more()
    }

    fn skip_comment(&mut self) -> i8 {
        if let Some(c) = self.last_comment.as_mut() {
            c.clear();
        }
        self.pos += 1;
        let mut start = self.pos;
        let mut level = 1;
        while let Some(&b) = self.data.get(self.pos) {
            match b {
                0 => {
                    if let Some(c) = self.last_comment.as_mut() {
                        c.extend_from_slice(&self.data[start..self.pos]);
                        c.extend_from_slice(NUL_REPLACEMENT);
                    }
                    start = self.pos + 1;
                }
                b'(' => level += 1,
                b')' => {
                    level -= 1;
                    if level == 0 {
                        if let Some(c) = self.last_comment.as_mut() {
                            c.extend_from_slice(&self.data[start..self.pos]);
                        }
                        self.pos += 1;
                        return self.more();
                    }
                }
                b'\n' => {
                    if let Some(c) = self.last_comment.as_mut() {
                        c.extend_from_slice(&self.data[start..self.pos]);
                    }
                    start = self.pos + 1;
                }
                b'\\' => {
                    if let Some(c) = self.last_comment.as_mut() {
                        c.extend_from_slice(&self.data[start..self.pos]);
                    }
                    start = self.pos + 1;
                    self.pos += 1;
                    if self.at_end() {
                        return -1;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        -1
    }

    /// A MIME token (may be empty), then CFWS.
    pub fn parse_mime_token(&mut self, out: &mut Vec<u8>) -> i8 {
        let start = self.pos;
        while self.pos < self.data.len()
            && (is_token(self.data[self.pos]) || self.data[self.pos] == b'.')
        {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.at_end() { 0 } else { self.skip_lwsp() }
    }

    pub fn parse_atom(&mut self, out: &mut Vec<u8>) -> i8 {
        if !is_atext(self.cur()) || self.at_end() {
            return -1;
        }
        let start = self.pos;
        while self.pos < self.data.len() && is_atext(self.data[self.pos]) {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.at_end() { 0 } else { self.skip_lwsp() }
    }

    fn parse_atom_or_dot(&mut self, out: &mut Vec<u8>) -> i8 {
        let start = self.pos;
        while self.pos < self.data.len()
            && (is_atext(self.data[self.pos]) || self.data[self.pos] == b'.')
        {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.at_end() { 0 } else { self.skip_lwsp() }
    }

    /// dot-atom, allowing CFWS around the dots as RFC 822 did.
    pub fn parse_dot_atom(&mut self, out: &mut Vec<u8>) -> i8 {
        if self.at_end() || !is_atext(self.cur()) {
            return -1;
        }
        let mut start = self.pos;
        self.pos += 1;
        while self.pos < self.data.len() {
            if is_atext(self.data[self.pos]) {
                self.pos += 1;
                continue;
            }
            out.extend_from_slice(&self.data[start..self.pos]);
            let ret = self.skip_lwsp();
            if ret <= 0 {
                return ret;
            }
            if self.cur() != b'.' {
                return 1;
            }
            self.pos += 1;
            out.push(b'.');
            let ret = self.skip_lwsp();
            if ret <= 0 {
                return ret;
            }
            start = self.pos;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        0
    }

    /// A quoted string at `"`, unescaped into `out`, then CFWS.
    pub fn parse_quoted_string(&mut self, out: &mut Vec<u8>) -> i8 {
        self.pos += 1;
        let mut start = self.pos;
        while let Some(&b) = self.data.get(self.pos) {
            match b {
                0 => {
                    out.extend_from_slice(&self.data[start..self.pos]);
                    out.extend_from_slice(NUL_REPLACEMENT);
                    start = self.pos + 1;
                }
                b'"' => {
                    out.extend_from_slice(&self.data[start..self.pos]);
                    self.pos += 1;
                    return self.skip_lwsp();
                }
                b'\r' if self.data.get(self.pos + 1) == Some(&b'\n') => {
                    out.extend_from_slice(&self.data[start..self.pos]);
                    start = self.pos + 1;
                }
                b'\n' => {
                    out.extend_from_slice(&self.data[start..self.pos]);
                    start = self.pos + 1;
                }
                b'\\' => {
                    self.pos += 1;
                    if self.at_end() {
                        return -1;
                    }
                    out.extend_from_slice(&self.data[start..self.pos - 1]);
                    start = self.pos;
                }
                _ => {}
            }
            self.pos += 1;
        }
        -1
    }

    pub fn parse_phrase(&mut self, out: &mut Vec<u8>) -> i8 {
        if self.at_end() {
            return 0;
        }
        if self.cur() == b'.' {
            return -1;
        }
        loop {
            let ret = if self.cur() == b'"' {
                self.parse_quoted_string(out)
            } else {
                self.parse_atom_or_dot(out)
            };
            if ret <= 0 {
                return ret;
            }
            let c = self.cur();
            if !is_atext(c) && c != b'"' && c != b'.' {
                break;
            }
            out.push(b' ');
        }
        self.skip_lwsp()
    }

    /// A domain after `@` (the parser stands on the `@`).
    pub fn parse_domain(&mut self, out: &mut Vec<u8>) -> i8 {
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        if self.cur() == b'[' {
            self.parse_domain_literal(out)
        } else {
            self.parse_dot_atom(out)
        }
    }

    fn parse_domain_literal(&mut self, out: &mut Vec<u8>) -> i8 {
        let start = self.pos;
        self.pos += 1;
        while let Some(&b) = self.data.get(self.pos) {
            if b == b'\\' {
                self.pos += 1;
                if self.at_end() {
                    break;
                }
            } else if b == b']' {
                self.pos += 1;
                out.extend_from_slice(&self.data[start..self.pos]);
                return self.skip_lwsp();
            }
            self.pos += 1;
        }
        -1
    }

    /// `type/subtype` into `out` (as far as it could be read).
    pub fn parse_content_type(&mut self, out: &mut Vec<u8>) -> i8 {
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        if self.parse_mime_token(out) <= 0 {
            return -1;
        }
        if self.cur() != b'/' {
            return -1;
        }
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return -1;
        }
        out.push(b'/');
        self.parse_mime_token(out)
    }

    /// One `; key=value` parameter.
    fn parse_content_param(&mut self) -> (i8, Vec<u8>, Vec<u8>) {
        let mut key = Vec::new();
        let mut value = Vec::new();
        if self.at_end() {
            return (0, key, value);
        }
        if self.cur() != b';' {
            return (-1, key, value);
        }
        self.pos += 1;
        if self.skip_lwsp() <= 0 {
            return (-1, key, value);
        }
        if self.parse_mime_token(&mut key) <= 0 || self.cur() != b'=' {
            return (-1, key, value);
        }
        self.pos += 1;
        let mut ret = self.skip_lwsp();
        if ret <= 0 {
            // broken / no value
        } else if self.cur() == b'"' {
            ret = self.parse_quoted_string(&mut value);
        } else if self.cur() == b'=' {
            // Dovecot's workaround for `name==?utf-8?b?...?=`.
            while let Some(&b) = self.data.get(self.pos) {
                if matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n') {
                    break;
                }
                value.push(b);
                self.pos += 1;
            }
        } else {
            ret = self.parse_mime_token(&mut value);
        }
        (if ret < 0 { -1 } else { 1 }, key, value)
    }

    /// All parameters, RFC 2231 continuations merged (Dovecot's `rfc2231_parse`).
    pub fn parse_params(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        struct Cont {
            key: Vec<u8>,
            value: Vec<u8>,
            idx: u32,
            extended: bool,
        }
        let mut result = Vec::new();
        let mut conts: Vec<Cont> = Vec::new();
        let mut idx = 0u32;
        loop {
            let (ret, key, value) = self.parse_content_param();
            if ret == 0 {
                break;
            }
            if ret < 0 {
                if self.at_end() {
                    break;
                }
                self.pos += 1;
                continue;
            }
            let Some(star) = key.iter().position(|&b| b == b'*') else {
                result.push((key, value));
                continue;
            };
            let mut p = star;
            if p + 1 < key.len() {
                p += 1;
                idx = 0;
                while p < key.len() && key[p].is_ascii_digit() {
                    idx = idx
                        .saturating_mul(10)
                        .saturating_add(u32::from(key[p] - b'0'));
                    p += 1;
                }
            }
            let extended = key.get(p) == Some(&b'*');
            if extended {
                p += 1;
            }
            if p != key.len() {
                result.push((key, value));
            } else {
                conts.push(Cont {
                    key: key[..star].to_vec(),
                    value,
                    idx,
                    extended,
                });
            }
        }
        if conts.is_empty() {
            return result;
        }
        conts.sort_by(|a, b| {
            a.key
                .to_ascii_lowercase()
                .cmp(&b.key.to_ascii_lowercase())
                .then(a.idx.cmp(&b.idx))
        });
        let mut i = 0;
        while i < conts.len() {
            let mut j = i;
            let mut ok = true;
            let mut have_extended = false;
            let mut next_idx = 0;
            while j < conts.len() && conts[j].key.eq_ignore_ascii_case(&conts[i].key) {
                ok &= conts[j].idx == next_idx;
                have_extended |= conts[j].extended;
                next_idx += 1;
                j += 1;
            }
            if !ok {
                for c in &conts[i..j] {
                    let mut key = c.key.clone();
                    key.extend_from_slice(format!("*{}", c.idx).as_bytes());
                    if c.extended {
                        key.push(b'*');
                    }
                    result.push((key, c.value.clone()));
                }
            } else {
                // Dovecot 2.3 joins the pieces as they are, even a plain one
                // among extended ones (it does not %-escape it).
                let mut value = Vec::new();
                if !conts[i].extended && have_extended {
                    value.extend_from_slice(b"''");
                }
                for c in &conts[i..j] {
                    value.extend_from_slice(&c.value);
                }
                let mut key = conts[i].key.clone();
                if conts[i].extended {
                    key.push(b'*');
                }
                result.push((key, value));
            }
            i = j;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_and_params() {
        let mut p = Rfc822::new(b" text/plain; charset=\"us-ascii\" (c); format=flowed");
        let mut ct = Vec::new();
        assert_eq!(p.parse_content_type(&mut ct), 1);
        assert_eq!(ct, b"text/plain");
        let params = p.parse_params();
        assert_eq!(params[0], (b"charset".to_vec(), b"us-ascii".to_vec()));
        assert_eq!(params[1], (b"format".to_vec(), b"flowed".to_vec()));
    }

    #[test]
    fn rfc2231_continuations_merge() {
        let mut p = Rfc822::new(b"; name*1=\"b\"; name*0=\"a\"");
        assert_eq!(p.parse_params(), vec![(b"name".to_vec(), b"ab".to_vec())]);
    }

    #[test]
    fn unterminated_things_do_not_panic() {
        for input in [&b"(abc"[..], b"\"abc", b"\\", b"[abc", b"(\\", b"\"\\"] {
            let mut p = Rfc822::new(input);
            let mut out = Vec::new();
            let _ = p.skip_lwsp();
            let _ = p.parse_phrase(&mut out);
            let _ = p.parse_params();
        }
    }
}
