//! ENVELOPE, BODY and BODYSTRUCTURE as IMAP syntax, written as Dovecot's
//! `lib-imap/imap-envelope.c` and `imap-bodystructure.c` write them.

use super::address::{Address, parse_address_list};
use super::imap_string::{
    append_nil, append_nstring_nolf, append_string, append_string_for_humans,
};
use super::mime::{Field, Kind, Node};

/// Envelope header values (unfolded, raw) of one message.
#[derive(Debug, Default)]
pub(crate) struct Envelope {
    pub date: Option<Vec<u8>>,
    pub subject: Option<Vec<u8>>,
    pub from: Option<Vec<Address>>,
    pub sender: Option<Vec<Address>>,
    pub reply_to: Option<Vec<Address>>,
    pub to: Option<Vec<Address>>,
    pub cc: Option<Vec<Address>>,
    pub bcc: Option<Vec<Address>>,
    pub in_reply_to: Option<Vec<u8>>,
    pub message_id: Option<Vec<u8>>,
}

/// A header value as a C string would hold it: NUL becomes U+FFFD.
fn header_string(v: &[u8]) -> Vec<u8> {
    if !v.contains(&0) {
        return v.to_vec();
    }
    let mut out = Vec::with_capacity(v.len() + 2);
    for &b in v {
        if b == 0 {
            out.extend_from_slice("\u{fffd}".as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

pub(crate) fn envelope_of(fields: &[Field]) -> Envelope {
    let mut e = Envelope::default();
    for f in fields {
        let name = f.name.to_ascii_lowercase();
        // Repeated address fields add up (Dovecot appends them).
        let addr = |slot: &mut Option<Vec<Address>>, v: &[u8]| {
            if let Some(list) = parse_address_list(v) {
                slot.get_or_insert_with(Vec::new).extend(list);
            }
        };
        match &name[..] {
            b"date" => e.date = Some(header_string(&f.value)),
            b"subject" => {
                let mut s = header_string(&f.value);
                if f.folded {
                    // Dovecot's value still holds the fold's newline, so its
                    // for-humans writing always counts it as changed and sends a
                    // literal; a trailing newline does the same here and is
                    // trimmed like any trailing whitespace.
                    s.push(b'\n');
                }
                e.subject = Some(s);
            }
            b"in-reply-to" => e.in_reply_to = Some(header_string(&f.value)),
            b"message-id" => e.message_id = Some(header_string(&f.value)),
            b"from" => addr(&mut e.from, &f.value),
            b"sender" => addr(&mut e.sender, &f.value),
            b"reply-to" => addr(&mut e.reply_to, &f.value),
            b"to" => addr(&mut e.to, &f.value),
            b"cc" => addr(&mut e.cc, &f.value),
            b"bcc" => addr(&mut e.bcc, &f.value),
            _ => {}
        }
    }
    e
}

fn write_addresses(out: &mut Vec<u8>, list: Option<&Vec<Address>>) {
    let Some(list) = list else {
        append_nil(out);
        return;
    };
    out.push(b'(');
    for a in list {
        out.push(b'(');
        match &a.name {
            None => append_nil(out),
            Some(n) => append_string_for_humans(out, n),
        }
        out.push(b' ');
        append_nstring_nolf(out, a.route.as_deref());
        out.push(b' ');
        append_nstring_nolf(out, a.mailbox.as_deref());
        out.push(b' ');
        append_nstring_nolf(out, a.domain.as_deref());
        out.push(b')');
    }
    out.push(b')');
}

/// The envelope fields, without the enclosing parentheses.
pub(crate) fn write_envelope(out: &mut Vec<u8>, e: &Envelope) {
    append_nstring_nolf(out, e.date.as_deref());
    out.push(b' ');
    match &e.subject {
        None => append_nil(out),
        Some(s) => append_string_for_humans(out, s),
    }
    out.push(b' ');
    write_addresses(out, e.from.as_ref());
    out.push(b' ');
    write_addresses(out, e.sender.as_ref().or(e.from.as_ref()));
    out.push(b' ');
    write_addresses(out, e.reply_to.as_ref().or(e.from.as_ref()));
    out.push(b' ');
    write_addresses(out, e.to.as_ref());
    out.push(b' ');
    write_addresses(out, e.cc.as_ref());
    out.push(b' ');
    write_addresses(out, e.bcc.as_ref());
    out.push(b' ');
    append_nstring_nolf(out, e.in_reply_to.as_deref());
    out.push(b' ');
    append_nstring_nolf(out, e.message_id.as_deref());
}

fn write_params(out: &mut Vec<u8>, params: &[(Vec<u8>, Vec<u8>)], default_charset: bool) {
    if !default_charset && params.is_empty() {
        append_nil(out);
        return;
    }
    out.push(b'(');
    let mut seen_charset = false;
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        seen_charset |= default_charset && k.eq_ignore_ascii_case(b"charset");
        append_string(out, k);
        out.push(b' ');
        append_string(out, v);
    }
    if default_charset && !seen_charset {
        if !params.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"charset\" \"us-ascii\"");
    }
    out.push(b')');
}

fn write_common(out: &mut Vec<u8>, node: &Node) {
    let d = &node.data;
    out.push(b' ');
    match &d.disposition {
        None => append_nil(out),
        Some((disp, params)) => {
            out.push(b'(');
            append_string(out, disp);
            out.push(b' ');
            write_params(out, params, false);
            out.push(b')');
        }
    }
    out.push(b' ');
    match &d.language {
        None => append_nil(out),
        Some(langs) => {
            out.push(b'(');
            for (i, l) in langs.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                append_string(out, l);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    append_nstring_nolf(out, d.location.as_deref());
}

pub(crate) struct Writer<'a> {
    pub msg: &'a [u8],
    pub nodes: &'a [Node],
    pub envelopes: &'a [Option<Envelope>],
    /// Line counts of the nodes, counted once for BODY and BODYSTRUCTURE both.
    pub line_counts: Vec<std::cell::OnceCell<usize>>,
}

impl<'a> Writer<'a> {
    pub fn new(msg: &'a [u8], nodes: &'a [Node], envelopes: &'a [Option<Envelope>]) -> Self {
        Writer {
            msg,
            nodes,
            envelopes,
            line_counts: vec![std::cell::OnceCell::new(); nodes.len()],
        }
    }
}

impl Writer<'_> {
    fn lines(&self, idx: usize) -> usize {
        let count = || {
            let node = &self.nodes[idx];
            self.msg.get(node.body.0..node.body.1).map_or(0, count_lf)
        };
        match self.line_counts.get(idx) {
            Some(cell) => *cell.get_or_init(count),
            None => count(),
        }
    }

    /// One part without its enclosing parentheses.
    pub fn write(&self, out: &mut Vec<u8>, idx: usize, extended: bool) {
        let node = &self.nodes[idx];
        if node.kind == Kind::Multipart {
            self.write_multipart(out, idx, extended);
        } else {
            self.write_single(out, idx, extended);
        }
    }

    fn write_multipart(&self, out: &mut Vec<u8>, idx: usize, extended: bool) {
        let node = &self.nodes[idx];
        if node.children.is_empty() {
            out.extend_from_slice(
                b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0",
            );
            out.extend_from_slice(if extended { b" NIL NIL NIL NIL)" } else { b")" });
        }
        for &c in &node.children {
            out.push(b'(');
            self.write(out, c, extended);
            out.push(b')');
        }
        out.push(b' ');
        append_string(out, node.data.content_subtype.as_deref().unwrap_or(b""));
        if !extended {
            return;
        }
        out.push(b' ');
        write_params(out, &node.data.params, false);
        write_common(out, node);
    }

    fn write_single(&self, out: &mut Vec<u8>, idx: usize, extended: bool) {
        let node = &self.nodes[idx];
        let d = &node.data;
        let message = node.kind == Kind::Message && !node.children.is_empty();
        let text = if message {
            out.extend_from_slice(b"\"message\" \"rfc822\"");
            false
        } else if let Some(t) = &d.content_type {
            append_string(out, t);
            out.push(b' ');
            append_string(out, d.content_subtype.as_deref().unwrap_or(b""));
            t.eq_ignore_ascii_case(b"text")
        } else {
            out.extend_from_slice(b"\"text\" \"plain\"");
            true
        };
        out.push(b' ');
        write_params(out, &d.params, text);
        out.push(b' ');
        append_nstring_nolf(out, d.id.as_deref());
        out.push(b' ');
        append_nstring_nolf(out, d.description.as_deref());
        out.push(b' ');
        match &d.transfer_encoding {
            Some(e) => append_string(out, e),
            None => out.extend_from_slice(b"\"7bit\""),
        }
        out.extend_from_slice(format!(" {}", node.body.1 - node.body.0).as_bytes());
        if text {
            out.extend_from_slice(format!(" {}", self.lines(idx)).as_bytes());
        } else if message {
            let child = node.children[0];
            out.extend_from_slice(b" (");
            match self.envelopes.get(child).and_then(Option::as_ref) {
                Some(e) => write_envelope(out, e),
                None => out.extend_from_slice(b"NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL"),
            }
            out.extend_from_slice(b") (");
            self.write(out, child, extended);
            out.push(b')');
            out.extend_from_slice(format!(" {}", self.lines(idx)).as_bytes());
        }
        if !extended {
            return;
        }
        out.push(b' ');
        append_nstring_nolf(out, d.md5.as_deref());
        write_common(out, node);
    }
}

/// Line feeds in `b`: a byte-wide count per block of 255 (which compilers turn into wide
/// compares), much faster than counting byte by byte into a `usize` on large bodies.
fn count_lf(b: &[u8]) -> usize {
    b.chunks(255)
        .map(|c| {
            c.iter()
                .fold(0u8, |n, &x| n.wrapping_add(u8::from(x == b'\n'))) as usize
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::count_lf;

    #[test]
    fn count_lf_matches_a_plain_count() {
        // All line feeds (past the u8 range of a block), none, and a mix around block edges.
        let mut cases: Vec<Vec<u8>> = vec![Vec::new(), vec![b'\n'; 1000], vec![b'a'; 1000]];
        for len in [1, 254, 255, 256, 510, 511, 4097] {
            cases.push(
                (0..len)
                    .map(|i| if i % 7 == 3 { b'\n' } else { b'x' })
                    .collect(),
            );
        }
        for b in cases {
            assert_eq!(count_lf(&b), b.iter().filter(|&&c| c == b'\n').count());
        }
    }
}
