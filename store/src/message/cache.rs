//! The cache record of one message: a [`Precomputed`] as bytes, written at delivery
//! into the mailbox's `cache` file and read back by FETCH, SEARCH, SORT and THREAD.
//!
//! # Record layout, version 3
//!
//! All integers little-endian. `blob` = `u32` length then that many bytes; `str` = a
//! blob holding UTF-8; `opt<T>` = `u8` 0 (absent) or 1 followed by `T`.
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `MSPC` (`4d 53 50 43`) |
//! | 4 | 2 | version, `3` (version 2 records, which lack the SEARCH header lines, are read too) |
//! | 6 | 2 | flags: `0` unknown (records written before the flag existed), `1` the file
//! |   |   | needs dot-stuffing for POP3, `3` it does not (no line starts with `.` and it
//! |   |   | ends with CRLF or is empty: RETR may send it as it is); anything else is refused |
//! | 8 | 4 | record length in bytes, this header and the checksum included |
//! | 12 | 8 | RFC822.SIZE |
//! | 20 | opt blob | SEARCH header lines (since version 3): the From, To, Cc, Bcc, Subject lines as in the message |
//! | | blob | ENVELOPE (IMAP syntax, parentheses included) |
//! | | blob | BODYSTRUCTURE |
//! | | blob | BODY |
//! | | 4 | part count `n`, then `n` parts in preorder: |
//! | | 1 | · kind: 0 multipart, 1 message/rfc822, 2 single |
//! | | 1 | · transfer encoding: 0 7bit, 1 8bit, 2 binary, 3 base64, 4 quoted-printable, 5 other |
//! | | 2 | · part-number length `k`, then `k` × `u32` part numbers |
//! | | 4×8 | · MIME header start, end; body start, end (byte offsets into the message) |
//! | | 4 | · subtree length (parts in this part's subtree, itself included) |
//! | | str | · `type/subtype`, lower case (since version 2) |
//! | | opt str | · charset parameter, lower case (since version 2) |
//! | | opt | Date: `i64` unix seconds, `i16` zone minutes east of UTC |
//! | | opt blob | Subject, raw |
//! | | opt str | Subject, decoded |
//! | | str | base subject |
//! | | 3 × opt | From, To, Cc first mailbox: `str` addr-spec, `opt str` display name |
//! | | 3 × opt blob | Message-ID, References, In-Reply-To, raw |
//! | | 4 | SORT keys (since version 2): sent date, UTC seconds as Dovecot keeps them (`u32`, 0 = none) |
//! | | str | · base subject, titlecased |
//! | | 1 | · 1 when the subject was a reply or forward, else 0 |
//! | | 5 × str | · From, To, Cc addr-mailbox; From, To display name (all titlecased) |
//! | | opt str | · first Message-ID, normalised |
//! | | 4 | · reference count `r`, then `r` × str (References, or In-Reply-To) |
//! | len-4 | 4 | CRC-32 (IEEE) of every byte before it |
//!
//! Version policy: a change to any field is a new version; a reader rejects versions
//! it does not know with [`CacheError::UnsupportedVersion`], and the reader's caller
//! precomputes the record again from the message file (version 1 records, written
//! before the SORT keys existed, are refused that way; reconstruct rewrites them).
//! Version 2 records are read as they are, with no SEARCH header lines: SEARCH then
//! reads those messages' files, as it did before version 3.
//! The SEARCH header lines come first so that [`search_header`] finds them without
//! decoding the rest of the record.
//! Decoding checks the magic, version, length and checksum first, then every length
//! and offset (part ranges must lie inside RFC822.SIZE, subtrees inside the table).

use super::limits::THREAD_REFERENCES_MAX;
use super::precompute::{
    ByteRange, HeaderDate, HeaderFields, Mailbox, Part, PartKind, Precomputed, TransferEncoding,
};
use super::sort_keys::SortKeys;

pub const MAGIC: [u8; 4] = *b"MSPC";
pub const VERSION: u16 = 3;
/// The oldest version read as it is (older ones are rebuilt from the message).
const VERSION_READ_MIN: u16 = 2;
const HEADER_BYTES: usize = 12;
const CRC_BYTES: usize = 4;
/// The smallest encoded part: kind, encoding, path length, four offsets, subtree,
/// content type length, charset flag.
const PART_BYTES_MIN: usize = 1 + 1 + 2 + 32 + 4 + 4 + 1;
/// Header flags (offset 6): the POP3 scan was made, and its answer.
const FLAG_SCANNED: u8 = 1;
const FLAG_SCANNED_READY: u8 = 3;

/// Why a cache record was refused. Any of these means: rebuild it from the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("cache record: bad magic")]
    BadMagic,
    #[error("cache record: unsupported version {0}")]
    UnsupportedVersion(u16),
    #[error("cache record: truncated")]
    Truncated,
    #[error("cache record: checksum mismatch")]
    Checksum,
    #[error("cache record: malformed ({0})")]
    Malformed(&'static str),
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn blob(&mut self, b: &[u8]) {
        // Lengths beyond u32 cannot come from precompute (fields are bounded); clamp
        // rather than panic, the checksum still covers what was written.
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.0.extend_from_slice(&b[..len as usize]);
    }
    fn opt_blob(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.u8(0),
            Some(b) => {
                self.u8(1);
                self.blob(b);
            }
        }
    }
    fn opt_mailbox(&mut self, m: Option<&Mailbox>) {
        match m {
            None => self.u8(0),
            Some(m) => {
                self.u8(1);
                self.blob(m.addr_spec.as_bytes());
                self.opt_blob(m.display_name.as_deref().map(str::as_bytes));
            }
        }
    }
}

fn kind_code(k: PartKind) -> u8 {
    match k {
        PartKind::Multipart => 0,
        PartKind::Message => 1,
        PartKind::Single => 2,
    }
}

/// Encodes a record (layout in the module documentation).
pub fn encode(p: &Precomputed) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(
        64 + p.envelope.len() + p.bodystructure.len() + p.body.len() + p.parts.len() * 48,
    ));
    w.0.extend_from_slice(&MAGIC);
    w.u16(VERSION);
    w.u16(u16::from(match p.pop3_ready {
        None => 0,
        Some(false) => FLAG_SCANNED,
        Some(true) => FLAG_SCANNED_READY,
    }));
    w.u32(0); // length, patched below
    w.u64(p.size);
    w.opt_blob(p.search_header.as_deref());
    w.blob(&p.envelope);
    w.blob(&p.bodystructure);
    w.blob(&p.body);
    w.u32(p.parts.len() as u32);
    for part in &p.parts {
        w.u8(kind_code(part.kind));
        w.u8(part.encoding.code());
        w.u16(part.path.len() as u16);
        for &n in &part.path {
            w.u32(n);
        }
        for v in [
            part.header.start,
            part.header.end,
            part.body.start,
            part.body.end,
        ] {
            w.u64(v);
        }
        w.u32(part.subtree_len);
        w.blob(part.content_type.as_bytes());
        w.opt_blob(part.charset.as_deref().map(str::as_bytes));
    }
    let f = &p.fields;
    match f.date {
        None => w.u8(0),
        Some(d) => {
            w.u8(1);
            w.u64(d.unix_seconds as u64);
            w.u16(d.tz_minutes as u16);
        }
    }
    w.opt_blob(f.subject_raw.as_deref());
    w.opt_blob(f.subject.as_deref().map(str::as_bytes));
    w.blob(f.base_subject.as_bytes());
    w.opt_mailbox(f.from.as_ref());
    w.opt_mailbox(f.to.as_ref());
    w.opt_mailbox(f.cc.as_ref());
    w.opt_blob(f.message_id.as_deref());
    w.opt_blob(f.references.as_deref());
    w.opt_blob(f.in_reply_to.as_deref());
    let k = &p.sort;
    w.u32(k.sent_date);
    w.blob(k.subject.as_bytes());
    w.u8(u8::from(k.reply_or_forward));
    for v in [&k.from, &k.to, &k.cc, &k.display_from, &k.display_to] {
        w.blob(v.as_bytes());
    }
    w.opt_blob(k.message_id.as_deref().map(str::as_bytes));
    w.u32(k.references.len() as u32);
    for r in &k.references {
        w.blob(r.as_bytes());
    }
    let len = (w.0.len() + CRC_BYTES) as u32;
    w.0[8..12].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&w.0);
    w.u32(crc);
    w.0
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CacheError> {
        let end = self.pos.checked_add(n).ok_or(CacheError::Truncated)?;
        let out = self.data.get(self.pos..end).ok_or(CacheError::Truncated)?;
        self.pos = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CacheError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, CacheError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, CacheError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, CacheError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, CacheError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn blob(&mut self) -> Result<Vec<u8>, CacheError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }
    fn string(&mut self) -> Result<String, CacheError> {
        String::from_utf8(self.blob()?).map_err(|_| CacheError::Malformed("string is not UTF-8"))
    }
    fn present(&mut self) -> Result<bool, CacheError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CacheError::Malformed("presence flag")),
        }
    }
    fn opt_blob(&mut self) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(if self.present()? {
            Some(self.blob()?)
        } else {
            None
        })
    }
    fn opt_string(&mut self) -> Result<Option<String>, CacheError> {
        Ok(if self.present()? {
            Some(self.string()?)
        } else {
            None
        })
    }
    fn opt_mailbox(&mut self) -> Result<Option<Mailbox>, CacheError> {
        if !self.present()? {
            return Ok(None);
        }
        Ok(Some(Mailbox {
            addr_spec: self.string()?,
            display_name: self.opt_string()?,
        }))
    }
    fn sort_keys(&mut self) -> Result<SortKeys, CacheError> {
        let sent_date = self.u32()?;
        let subject = self.string()?;
        let reply_or_forward = match self.u8()? {
            0 => false,
            1 => true,
            _ => return Err(CacheError::Malformed("reply-or-forward flag")),
        };
        let (from, to, cc) = (self.string()?, self.string()?, self.string()?);
        let (display_from, display_to) = (self.string()?, self.string()?);
        let message_id = self.opt_string()?;
        let count = self.u32()? as usize;
        if count > THREAD_REFERENCES_MAX {
            return Err(CacheError::Malformed("reference count"));
        }
        let references = (0..count)
            .map(|_| self.string())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SortKeys {
            sent_date,
            subject,
            reply_or_forward,
            from,
            to,
            cc,
            display_from,
            display_to,
            message_id,
            references,
        })
    }

    fn range(&mut self, size: u64) -> Result<ByteRange, CacheError> {
        let r = ByteRange {
            start: self.u64()?,
            end: self.u64()?,
        };
        if r.start > r.end || r.end > size {
            return Err(CacheError::Malformed("part range outside the message"));
        }
        Ok(r)
    }
}

/// Checks the record's frame: magic, version, length, checksum. Returns the bytes
/// the fields are read from (without the checksum).
fn check_frame(data: &[u8]) -> Result<&[u8], CacheError> {
    if data.len() < 4 {
        return Err(CacheError::Truncated);
    }
    if data[..4] != MAGIC {
        return Err(CacheError::BadMagic);
    }
    if data.len() < HEADER_BYTES + CRC_BYTES {
        return Err(CacheError::Truncated);
    }
    let version = u16::from_le_bytes([data[4], data[5]]);
    if !(VERSION_READ_MIN..=VERSION).contains(&version) {
        return Err(CacheError::UnsupportedVersion(version));
    }
    if !matches!(data[6..8], [0 | FLAG_SCANNED | FLAG_SCANNED_READY, 0]) {
        return Err(CacheError::Malformed("flags"));
    }
    let len = u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize;
    if data.len() < len {
        return Err(CacheError::Truncated);
    }
    if data.len() > len || len < HEADER_BYTES + CRC_BYTES {
        return Err(CacheError::Malformed("record length"));
    }
    let (body, crc) = data.split_at(len - CRC_BYTES);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(CacheError::Checksum);
    }
    Ok(body)
}

/// Decodes a record, or computes it again from the message when the record is of an
/// older version (version 1 had no SORT keys): `message` gives the stored bytes.
/// Anything else that `decode` refuses is refused.
pub fn decode_or_rebuild(
    data: &[u8],
    message: impl FnOnce() -> Option<Vec<u8>>,
) -> Result<Precomputed, CacheError> {
    match decode(data) {
        Err(CacheError::UnsupportedVersion(v)) if v < VERSION => message()
            .map(|bytes| super::precompute(&bytes))
            .ok_or(CacheError::UnsupportedVersion(v)),
        other => other,
    }
}

fn pop3_ready_flag(flags: u8) -> Option<bool> {
    (flags & FLAG_SCANNED != 0).then_some(flags == FLAG_SCANNED_READY)
}

/// [`Precomputed::pop3_ready`] of a record, checked (magic, version, length,
/// checksum) but not decoded: what POP3's RETR needs to choose sendfile.
pub fn pop3_ready(data: &[u8]) -> Result<Option<bool>, CacheError> {
    check_frame(data)?;
    Ok(pop3_ready_flag(data[6]))
}

fn record_version(data: &[u8]) -> u16 {
    u16::from_le_bytes([data[4], data[5]])
}

/// [`Precomputed::search_header`] of a record, checked (magic, version, length,
/// checksum) but not decoded further: what SEARCH reads per message. `Ok(None)` when
/// the record keeps no lines (a version 2 record, or lines over the cap).
pub fn search_header(data: &[u8]) -> Result<Option<&[u8]>, CacheError> {
    let body = check_frame(data)?;
    if record_version(data) < 3 {
        return Ok(None);
    }
    let mut r = Reader {
        data: body,
        pos: HEADER_BYTES + 8,
    };
    if !r.present()? {
        return Ok(None);
    }
    let len = r.u32()? as usize;
    r.take(len).map(Some)
}

/// [`Precomputed::envelope`] of a record, checked (magic, version, length, checksum)
/// but nothing after it decoded: what FETCH (FLAGS ENVELOPE), a mail client's message
/// list, reads per message. Decoding the whole record there built every part, string and
/// sort key only to drop them.
pub fn envelope(data: &[u8]) -> Result<&[u8], CacheError> {
    let body = check_frame(data)?;
    let mut r = Reader {
        data: body,
        pos: HEADER_BYTES + 8,
    };
    // The search lines (version 3 on) come first: skipped, not copied.
    if record_version(data) >= 3 && r.present()? {
        let len = r.u32()? as usize;
        r.take(len)?;
    }
    let len = r.u32()? as usize;
    r.take(len)
}

/// Decodes a record; anything not exactly as `encode` writes it is refused.
pub fn decode(data: &[u8]) -> Result<Precomputed, CacheError> {
    let body = check_frame(data)?;
    let mut r = Reader {
        data: body,
        pos: HEADER_BYTES,
    };
    let size = r.u64()?;
    let search_header = if record_version(data) >= 3 {
        r.opt_blob()?
    } else {
        None
    };
    let envelope = r.blob()?;
    let bodystructure = r.blob()?;
    let body_item = r.blob()?;
    let count = r.u32()? as usize;
    if count == 0 || count > (body.len() - r.pos) / PART_BYTES_MIN {
        return Err(CacheError::Malformed("part count"));
    }
    let mut parts = Vec::with_capacity(count);
    for idx in 0..count {
        let kind = match r.u8()? {
            0 => PartKind::Multipart,
            1 => PartKind::Message,
            2 => PartKind::Single,
            _ => return Err(CacheError::Malformed("part kind")),
        };
        let encoding = TransferEncoding::from_code(r.u8()?)
            .ok_or(CacheError::Malformed("transfer encoding"))?;
        let path_len = r.u16()? as usize;
        let path = (0..path_len)
            .map(|_| r.u32())
            .collect::<Result<Vec<_>, _>>()?;
        let header = r.range(size)?;
        let part_body = r.range(size)?;
        let subtree_len = r.u32()?;
        if subtree_len == 0 || idx + subtree_len as usize > count {
            return Err(CacheError::Malformed("subtree length"));
        }
        if kind == PartKind::Message && subtree_len < 2 {
            return Err(CacheError::Malformed("message part without its message"));
        }
        let content_type = r.string()?;
        let charset = r.opt_string()?;
        parts.push(Part {
            path,
            kind,
            header,
            body: part_body,
            encoding,
            subtree_len,
            content_type,
            charset,
        });
    }
    if parts[0].subtree_len as usize != count {
        return Err(CacheError::Malformed("subtree length"));
    }
    let date = if r.present()? {
        Some(HeaderDate {
            unix_seconds: r.u64()? as i64,
            tz_minutes: r.u16()? as i16,
        })
    } else {
        None
    };
    let fields = HeaderFields {
        date,
        subject_raw: r.opt_blob()?,
        subject: r.opt_string()?,
        base_subject: r.string()?,
        from: r.opt_mailbox()?,
        to: r.opt_mailbox()?,
        cc: r.opt_mailbox()?,
        message_id: r.opt_blob()?,
        references: r.opt_blob()?,
        in_reply_to: r.opt_blob()?,
    };
    let sort = r.sort_keys()?;
    if r.pos != body.len() {
        return Err(CacheError::Malformed("trailing bytes"));
    }
    Ok(Precomputed {
        pop3_ready: pop3_ready_flag(data[6]),
        size,
        envelope,
        bodystructure,
        body: body_item,
        parts,
        fields,
        sort,
        search_header,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{normalize_crlf, precompute};
    use super::*;

    const SAMPLE: &[u8] =
        b"From: A <a@b.c>\r\nSubject: Re: hi\r\nDate: Thu, 1 Jan 1970 00:00:01 +0100\r\n\r\nx\r\n";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn round_trip() {
        let p = precompute(SAMPLE);
        assert_eq!(decode(&encode(&p)), Ok(p));
    }

    /// `envelope` reads exactly what `decode` does, with and without the search lines
    /// before it, and refuses what `decode` refuses in the frame.
    #[test]
    fn envelope_alone_is_the_decoded_envelope() {
        let long = format!("Subject: {}\r\n\r\nx\r\n", "y".repeat(20_000));
        for message in [SAMPLE, b"\r\n", long.as_bytes(), b"Subject: x\r\n\r\n"] {
            let p = precompute(message);
            let record = encode(&p);
            assert_eq!(envelope(&record), Ok(&p.envelope[..]));
            let mut bare = p.clone();
            bare.search_header = None;
            assert_eq!(envelope(&encode(&bare)), Ok(&p.envelope[..]));
            let mut damaged = record.clone();
            let at = damaged.len() / 2;
            damaged[at] ^= 1;
            assert!(envelope(&damaged).is_err());
            assert!(envelope(&record[..record.len() - 1]).is_err());
        }
    }

    /// Pins the on-disk format: if this changes, bump VERSION.
    #[test]
    fn known_answer_bytes() {
        let p = precompute(SAMPLE);
        let bytes = encode(&p);
        assert_eq!(hex(&bytes), KNOWN_ANSWER);
    }

    const KNOWN_ANSWER: &str = concat!(
        "4d53504303000300f10100004d00000000000000012200000046726f6d3a2041",
        "203c6140622e633e0d0a5375626a6563743a2052653a2068690d0a8100000028",
        "225468752c2031204a616e20313937302030303a30303a3031202b3031303022",
        "202252653a20686922202828224122204e494c202261222022622e6322292920",
        "2828224122204e494c202261222022622e63222929202828224122204e494c20",
        "2261222022622e63222929204e494c204e494c204e494c204e494c204e494c29",
        "4a000000282274657874222022706c61696e2220282263686172736574222022",
        "75732d61736369692229204e494c204e494c2022376269742220332031204e49",
        "4c204e494c204e494c204e494c293a000000282274657874222022706c61696e",
        "222028226368617273657422202275732d61736369692229204e494c204e494c",
        "2022376269742220332031290100000002000100010000000000000000000000",
        "4a000000000000004a000000000000004d00000000000000010000000a000000",
        "746578742f706c61696e0001f1f1ffffffffffff3c00010600000052653a2068",
        "69010600000052653a20686902000000686901050000006140622e6301010000",
        "00410000000000f1f1ffff020000004849010100000041000000000000000001",
        "0000004100000000000000000021c85aa9",
    );

    /// Re-checksums a record after a header byte was changed.
    fn with_flags(mut record: Vec<u8>, flags: u8) -> Vec<u8> {
        record[6] = flags;
        let end = record.len() - CRC_BYTES;
        let crc = crc32fast::hash(&record[..end]).to_le_bytes();
        record[end..].copy_from_slice(&crc);
        record
    }

    #[test]
    fn pop3_ready_flag_round_trips_and_old_records_read_as_unknown() {
        let cases: [(&[u8], bool); 6] = [
            (b"Subject: a\r\n\r\nbody\r\n", true),
            (b"", true),
            (b"Subject: a\r\n\r\n.dot\r\n", false),
            (b".Subject: a\r\n\r\nx\r\n", false),
            (b"Subject: a\r\n\r\nno end", false),
            (b"Subject: a\r\n\r\nx\r", false),
        ];
        for (msg, ready) in cases {
            let p = precompute(msg);
            assert_eq!(p.pop3_ready, Some(ready), "{}", msg.escape_ascii());
            let record = encode(&p);
            assert_eq!(pop3_ready(&record), Ok(Some(ready)));
            assert_eq!(decode(&record).map(|d| d.pop3_ready), Ok(Some(ready)));
        }
        let old = with_flags(encode(&precompute(SAMPLE)), 0);
        assert_eq!(pop3_ready(&old), Ok(None));
        assert_eq!(decode(&old).map(|d| d.pop3_ready), Ok(None));
        let bad = with_flags(encode(&precompute(SAMPLE)), 2);
        assert_eq!(decode(&bad), Err(CacheError::Malformed("flags")));
        assert_eq!(pop3_ready(&bad), Err(CacheError::Malformed("flags")));
    }

    #[test]
    fn rejects_damage_without_panicking() {
        let good = encode(&precompute(SAMPLE));
        assert_eq!(decode(b""), Err(CacheError::Truncated));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(CacheError::BadMagic));
        let mut bad = good.clone();
        bad[4] = 4;
        assert_eq!(decode(&bad), Err(CacheError::UnsupportedVersion(4)));
        assert_eq!(search_header(&bad), Err(CacheError::UnsupportedVersion(4)));
        let mut old = good.clone();
        old[4] = 1;
        assert_eq!(decode(&old), Err(CacheError::UnsupportedVersion(1)));
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert_eq!(decode(&bad), Err(CacheError::Checksum));
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    /// An older record is computed again from the message; a newer one is refused.
    #[test]
    fn older_versions_are_rebuilt() {
        let fix_crc = |bad: &mut Vec<u8>| {
            let len = bad.len();
            let crc = crc32fast::hash(&bad[..len - 4]).to_le_bytes();
            bad[len - 4..].copy_from_slice(&crc);
        };
        let mut old = encode(&precompute(SAMPLE));
        old[4] = 1;
        fix_crc(&mut old);
        assert_eq!(
            decode_or_rebuild(&old, || Some(SAMPLE.to_vec())),
            Ok(precompute(SAMPLE))
        );
        assert_eq!(
            decode_or_rebuild(&old, || None),
            Err(CacheError::UnsupportedVersion(1))
        );
        let mut newer = old.clone();
        newer[4] = 9;
        fix_crc(&mut newer);
        assert_eq!(
            decode_or_rebuild(&newer, || Some(SAMPLE.to_vec())),
            Err(CacheError::UnsupportedVersion(9))
        );
    }

    /// A version 3 record turned into the version 2 record of the same message: the
    /// SEARCH header lines removed, the version, length and checksum set again.
    fn as_version_2(v3: &[u8]) -> Vec<u8> {
        let mut old = v3[..20].to_vec();
        let cut = if v3[20] == 1 {
            let n = u32::from_le_bytes([v3[21], v3[22], v3[23], v3[24]]) as usize;
            21 + 4 + n
        } else {
            21
        };
        old.extend_from_slice(&v3[cut..v3.len() - CRC_BYTES]);
        old[4] = 2;
        let len = (old.len() + CRC_BYTES) as u32;
        old[8..12].copy_from_slice(&len.to_le_bytes());
        let crc = crc32fast::hash(&old);
        old.extend_from_slice(&crc.to_le_bytes());
        old
    }

    /// Version 2 records (no SEARCH header lines) are read as they are, not rebuilt.
    #[test]
    fn version_2_records_are_read_without_search_header() {
        let p = precompute(SAMPLE);
        assert_eq!(
            p.search_header.as_deref(),
            Some(&b"From: A <a@b.c>\r\nSubject: Re: hi\r\n"[..])
        );
        let v3 = encode(&p);
        assert_eq!(search_header(&v3), Ok(p.search_header.as_deref()));
        let v2 = as_version_2(&v3);
        assert_eq!(search_header(&v2), Ok(None));
        let decoded = decode_or_rebuild(&v2, || panic!("a version 2 record is not rebuilt"));
        assert_eq!(
            decoded,
            Ok(Precomputed {
                search_header: None,
                ..p
            })
        );
        for cut in 0..v3.len() {
            assert!(search_header(&v3[..cut]).is_err(), "truncated at {cut}");
        }
    }

    /// The kept lines: the named fields in any case, with their continuation lines,
    /// nothing else; none at all past the cap.
    #[test]
    fn search_header_lines_keep_the_searched_fields() {
        use crate::message::search_header_lines;
        let header = b"Received: from x\r\n by y\r\nFROM: A\r\n\t<a@b>\r\nX-To: no\r\n\
                       To : no\r\ncc:c@d\r\nSubject:\r\n =?utf-8?q?hi?=\r\nBcc: e\r\nTo: t\r\n\r\n";
        assert_eq!(
            search_header_lines(header).as_deref(),
            Some(
                &b"FROM: A\r\n\t<a@b>\r\ncc:c@d\r\nSubject:\r\n =?utf-8?q?hi?=\r\nBcc: e\r\nTo: t\r\n"[..]
            )
        );
        assert_eq!(search_header_lines(b"X: y\r\n").as_deref(), Some(&b""[..]));
        let mut big = b"Subject: x\r\n".to_vec();
        while big.len() <= crate::message::limits::SEARCH_HEADER_BYTES_MAX {
            big.extend_from_slice(b" more\r\n");
        }
        assert!(search_header_lines(&big).is_none());
        let p = precompute(&[big.as_slice(), b"\r\nbody\r\n"].concat());
        assert!(p.search_header.is_none());
        assert_eq!(decode(&encode(&p)), Ok(p));
    }

    /// A record with a valid checksum but nonsense inside is still refused.
    #[test]
    fn rejects_forged_contents() {
        let good = encode(&precompute(&normalize_crlf(b"Subject: x\n\nbody\n")));
        for i in HEADER_BYTES..good.len() - CRC_BYTES {
            for v in [0x00, 0xff, 0x7f] {
                let mut bad = good.clone();
                bad[i] = v;
                let len = bad.len();
                let crc = crc32fast::hash(&bad[..len - 4]).to_le_bytes();
                bad[len - 4..].copy_from_slice(&crc);
                let _ = decode(&bad);
            }
        }
    }
}
