//! IMAP string syntax for precomputed FETCH items, written as Dovecot's
//! `lib-imap/imap-quote.c` writes it (quoted when it can be, literal otherwise).

pub(crate) fn append_nil(out: &mut Vec<u8>) {
    out.extend_from_slice(b"NIL");
}

fn append_literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

fn append_quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'\r' | b'\n' => {}
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// A string: quoted, or a literal when it holds CR/LF, 8-bit bytes or more than four
/// characters needing escapes.
pub(crate) fn append_string(out: &mut Vec<u8>, s: &[u8]) {
    let mut escapes = 0;
    for &b in s {
        let literal = match b {
            b'"' | b'\\' => {
                escapes += 1;
                escapes > 4
            }
            b'\r' | b'\n' => true,
            _ => b >= 0x80,
        };
        if literal {
            append_literal(out, s);
            return;
        }
    }
    append_quoted(out, s);
}

#[allow(dead_code)]
pub(crate) fn append_nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => append_nil(out),
        Some(s) => append_string(out, s),
    }
}

/// An nstring with CR and LF removed first.
pub(crate) fn append_nstring_nolf(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => append_nil(out),
        Some(s) if !s.iter().any(|&b| b == b'\r' || b == b'\n') => append_string(out, s),
        Some(s) => {
            let cleaned: Vec<u8> = s
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect();
            append_string(out, &cleaned)
        }
    }
}

/// A string meant for people (subject, display name): runs of whitespace become one
/// space, leading and trailing whitespace go. Written quoted when nothing needed
/// changing, as a literal otherwise — Dovecot's `imap_append_string_for_humans`.
pub(crate) fn append_string_for_humans(out: &mut Vec<u8>, s: &[u8]) {
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut modify = false;
    let mut remove = 0usize;
    let mut last_lwsp = true;
    for &b in s {
        match b {
            0 => {
                last_lwsp = false;
                modify = true;
            }
            b'\r' | b'\n' | b'\t' | b' ' => {
                if b != b' ' {
                    modify = true;
                }
                if last_lwsp {
                    modify = true;
                    remove += 1;
                }
                last_lwsp = true;
            }
            b'"' | b'\\' => {
                modify = true;
                last_lwsp = false;
            }
            _ => {
                if b >= 0x80 {
                    modify = true;
                }
                last_lwsp = false;
            }
        }
    }
    if s.iter().all(|&b| is_ws(b)) {
        out.extend_from_slice(b"\"\"");
        return;
    }
    if last_lwsp {
        modify = true;
        remove += 1;
    }
    if !modify {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
        return;
    }
    let mut text = Vec::with_capacity(s.len() - remove);
    let mut last_lwsp = true;
    for &b in s {
        if b == 0 {
            text.push(0x80);
            last_lwsp = false;
        } else if is_ws(b) {
            if !last_lwsp {
                text.push(b' ');
            }
            last_lwsp = true;
        } else {
            text.push(b);
            last_lwsp = false;
        }
    }
    if last_lwsp {
        text.pop();
    }
    append_literal(out, &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn humans(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        append_string_for_humans(&mut out, s);
        out
    }

    #[test]
    fn for_humans() {
        assert_eq!(humans(b"plain"), b"\"plain\"");
        assert_eq!(humans(b""), b"\"\"");
        assert_eq!(humans(b" \t "), b"\"\"");
        assert_eq!(humans(b"a\tb  c "), b"{5}\r\na b c");
        assert_eq!(humans(b"say \"hi\""), b"{8}\r\nsay \"hi\"");
    }

    #[test]
    fn strings() {
        let mut out = Vec::new();
        append_string(&mut out, b"a\"b");
        append_string(&mut out, b"\xe9");
        assert_eq!(out, b"\"a\\\"b\"{1}\r\n\xe9");
    }
}
