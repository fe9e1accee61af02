//! FETCH and UID FETCH (RFC 9051 §6.4.5; BINARY RFC 3516; CONDSTORE/QRESYNC RFC 7162).
//!
//! Metadata comes from the session's message list, ENVELOPE/BODY/BODYSTRUCTURE from the
//! precomputed layout, and section bytes are named as `Transmit::Message` for the engine
//! to stream. Only HEADER.FIELDS and decoded BINARY make the session read bytes.

use crate::imap::backend::{
    FlagMode, Flags, ImapBackend, MessageLayout, MessageMeta, PartKind, SectionText, SystemFlags,
    TransferEncoding,
};
use crate::imap::command::{SequenceSet, format_set, number64, nz_number, sequence_set};
use crate::imap::date::format_date_time;
use crate::imap::decode;
use crate::imap::limits::{
    IMAP_DECODE_BYTES_MAX, IMAP_FETCH_ITEMS_MAX, IMAP_FETCH_LAYOUT_BATCH, IMAP_HEADER_FIELDS_MAX,
};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{AfterCommit, Core, Status};
use crate::imap::types::Tag;

/// What of a section: `HEADER`, `HEADER.FIELDS[.NOT] (…)`, `TEXT`, `MIME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionSpec {
    Header,
    HeaderFields { not: bool, fields: Vec<String> },
    Text,
    Mime,
}

/// One fetch attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAtt {
    Envelope,
    Flags,
    InternalDate,
    Rfc822Size,
    /// BODY (no extension data).
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    /// BODY[…], BODY.PEEK[…], BINARY[…], BINARY.PEEK[…].
    Section {
        peek: bool,
        binary: bool,
        part: Vec<u32>,
        spec: Option<SectionSpec>,
        partial: Option<(u64, u64)>,
    },
    BinarySize {
        part: Vec<u32>,
    },
}

impl FetchAtt {
    /// Whether fetching it sets `\Seen`.
    fn sets_seen(&self) -> bool {
        matches!(
            self,
            FetchAtt::Rfc822 | FetchAtt::Rfc822Text | FetchAtt::Section { peek: false, .. }
        )
    }

    fn needs_layout(&self) -> bool {
        !matches!(
            self,
            FetchAtt::Flags
                | FetchAtt::InternalDate
                | FetchAtt::Rfc822Size
                | FetchAtt::Uid
                | FetchAtt::ModSeq
                | FetchAtt::Rfc822
        ) && !self.is_whole_body()
    }

    /// `BODY[]`/`BODY.PEEK[]` (partial or not): the whole message, whose size the
    /// session's list has, so it needs no layout, only that the message is still there.
    fn is_whole_body(&self) -> bool {
        matches!(
            self,
            FetchAtt::Section {
                binary: false,
                part,
                spec: None,
                ..
            } if part.is_empty()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchArgs {
    pub uid: bool,
    pub set: SequenceSet,
    pub items: Vec<FetchAtt>,
    pub changedsince: Option<u64>,
    pub vanished: bool,
}

/// `SP sequence-set SP (macro / fetch-att / "(" fetch-att *(SP fetch-att) ")") [modifiers]`
pub fn parse(input: &mut Cursor<'_>, uid: bool) -> Result<FetchArgs, ParseErrorKind> {
    input.sp()?;
    let set = sequence_set(input)?;
    input.sp()?;
    let mut items = Vec::new();
    if input.peek() == Some(b'(') {
        input.expect(b'(')?;
        loop {
            if items.len() == IMAP_FETCH_ITEMS_MAX {
                return Err(ParseErrorKind::InvalidArgument);
            }
            items.push(fetch_att(input)?);
            if input.peek() == Some(b')') {
                break;
            }
            input.sp()?;
        }
        input.expect(b')')?;
    } else {
        let save = input.clone();
        let word = att_name(input);
        match word.as_str() {
            "ALL" => items.extend([
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
                FetchAtt::Envelope,
            ]),
            "FAST" => items.extend([
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
            ]),
            "FULL" => items.extend([
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
                FetchAtt::Envelope,
                FetchAtt::Body,
            ]),
            _ => {
                *input = save;
                items.push(fetch_att(input)?);
            }
        }
    }
    let mut args = FetchArgs {
        uid,
        set,
        items,
        changedsince: None,
        vanished: false,
    };
    if !input.at_eol() {
        input.sp()?;
        input.expect(b'(')?;
        loop {
            match att_name(input).as_str() {
                "CHANGEDSINCE" => {
                    input.sp()?;
                    args.changedsince = Some(number64(input)?);
                }
                "VANISHED" => args.vanished = true,
                _ => return Err(ParseErrorKind::InvalidArgument),
            }
            if input.peek() == Some(b')') {
                break;
            }
            input.sp()?;
        }
        input.expect(b')')?;
    }
    Ok(args)
}

/// Letters, digits, `.` and `-`, upper-cased: an attribute name before any `[`.
fn att_name(input: &mut Cursor<'_>) -> String {
    String::from_utf8_lossy(
        input.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
    )
    .to_ascii_uppercase()
}

fn fetch_att(input: &mut Cursor<'_>) -> Result<FetchAtt, ParseErrorKind> {
    let name = att_name(input);
    let simple = match name.as_str() {
        "ENVELOPE" => Some(FetchAtt::Envelope),
        "FLAGS" => Some(FetchAtt::Flags),
        "INTERNALDATE" => Some(FetchAtt::InternalDate),
        "RFC822.SIZE" => Some(FetchAtt::Rfc822Size),
        "BODYSTRUCTURE" => Some(FetchAtt::BodyStructure),
        "UID" => Some(FetchAtt::Uid),
        "MODSEQ" => Some(FetchAtt::ModSeq),
        "RFC822" => Some(FetchAtt::Rfc822),
        "RFC822.HEADER" => Some(FetchAtt::Rfc822Header),
        "RFC822.TEXT" => Some(FetchAtt::Rfc822Text),
        "BODY" if input.peek() != Some(b'[') => Some(FetchAtt::Body),
        _ => None,
    };
    if let Some(att) = simple {
        return Ok(att);
    }
    let (peek, binary) = match name.as_str() {
        "BODY" => (false, false),
        "BODY.PEEK" => (true, false),
        "BINARY" => (false, true),
        "BINARY.PEEK" => (true, true),
        "BINARY.SIZE" => {
            let (part, spec) = section(input, true)?;
            debug_assert!(spec.is_none());
            return Ok(FetchAtt::BinarySize { part });
        }
        "" if input.at_eol() => return Err(ParseErrorKind::MissingArgument),
        _ => return Err(ParseErrorKind::InvalidArgument),
    };
    let (part, spec) = section(input, binary)?;
    let partial = if input.peek() == Some(b'<') {
        input.expect(b'<')?;
        let origin = number64(input)?;
        input.expect(b'.')?;
        let len = u64::from(nz_number(input)?);
        input.expect(b'>')?;
        Some((origin, len))
    } else {
        None
    };
    Ok(FetchAtt::Section {
        peek,
        binary,
        part,
        spec,
        partial,
    })
}

/// `"[" [section-spec] "]"`; for BINARY only a part number.
fn section(
    input: &mut Cursor<'_>,
    binary: bool,
) -> Result<(Vec<u32>, Option<SectionSpec>), ParseErrorKind> {
    input.expect(b'[')?;
    let mut part = Vec::new();
    let mut spec = None;
    while input.peek().is_some_and(|b| b.is_ascii_digit()) {
        part.push(nz_number(input)?);
        if part.len() > 64 {
            return Err(ParseErrorKind::InvalidArgument);
        }
        if input.peek() != Some(b'.') {
            break;
        }
        input.expect(b'.')?;
        if !input.peek().is_some_and(|b| b.is_ascii_digit()) {
            break;
        }
    }
    if input.peek() != Some(b']') {
        if binary {
            return Err(ParseErrorKind::InvalidArgument);
        }
        let word = att_name(input);
        spec = Some(match word.as_str() {
            "HEADER" => SectionSpec::Header,
            "TEXT" => SectionSpec::Text,
            "MIME" if !part.is_empty() => SectionSpec::Mime,
            "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                input.sp()?;
                input.expect(b'(')?;
                let mut fields = Vec::new();
                loop {
                    if fields.len() == IMAP_HEADER_FIELDS_MAX {
                        return Err(ParseErrorKind::InvalidArgument);
                    }
                    let field = input.astring()?;
                    let field = String::from_utf8_lossy(field.as_bytes()).to_ascii_uppercase();
                    if field.is_empty() || field.contains(':') || field.contains(' ') {
                        return Err(ParseErrorKind::InvalidArgument);
                    }
                    fields.push(field);
                    if input.peek() == Some(b')') {
                        break;
                    }
                    input.sp()?;
                }
                input.expect(b')')?;
                SectionSpec::HeaderFields {
                    not: word.ends_with(".NOT"),
                    fields,
                }
            }
            _ => return Err(ParseErrorKind::InvalidArgument),
        });
    }
    input.expect(b']')?;
    Ok((part, spec))
}

/// The section as it is echoed: `1.HEADER.FIELDS (FROM TO)`.
fn section_name(part: &[u32], spec: Option<&SectionSpec>) -> String {
    let mut out: Vec<String> = part.iter().map(u32::to_string).collect();
    match spec {
        None => {}
        Some(SectionSpec::Header) => out.push("HEADER".into()),
        Some(SectionSpec::Text) => out.push("TEXT".into()),
        Some(SectionSpec::Mime) => out.push("MIME".into()),
        Some(SectionSpec::HeaderFields { not, fields }) => out.push(format!(
            "HEADER.FIELDS{} ({})",
            if *not { ".NOT" } else { "" },
            fields.join(" ")
        )),
    }
    out.join(".")
}

/// The fields of a header (blank line included or not) named in `fields` (or, with
/// `not`, all others), followed by the blank line.
pub fn filter_header(header: &[u8], fields: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name_end = line.iter().position(|&b| b == b':').unwrap_or(line.len());
            let name = String::from_utf8_lossy(&line[..name_end]);
            let name = name.trim_end();
            let listed = fields.iter().any(|f| f.eq_ignore_ascii_case(name));
            keep = listed != not && name_end < line.len();
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A `(start, end)` range cut down by a partial `<origin.len>`.
fn cut(range: (u64, u64), partial: Option<(u64, u64)>) -> (u64, u64) {
    match partial {
        None => range,
        Some((origin, len)) => {
            let start = range.0.saturating_add(origin).min(range.1);
            (start, start.saturating_add(len).min(range.1))
        }
    }
}

fn cut_bytes(data: &[u8], partial: Option<(u64, u64)>) -> &[u8] {
    let (s, e) = cut((0, data.len() as u64), partial);
    data.get(s as usize..e as usize).unwrap_or_default()
}

/// Why an item could not be answered (the command then ends in NO).
enum ItemError {
    UnknownCte,
    Limit,
    Expunged,
}

impl Core {
    pub(crate) fn fetch(&mut self, tag: Tag, args: FetchArgs, backend: &mut dyn ImapBackend) {
        if args.vanished && (!self.enabled.qresync || !args.uid || args.changedsince.is_none()) {
            return self.respond(
                Some(&tag),
                Status::Bad,
                "VANISHED needs QRESYNC, UID FETCH and CHANGEDSINCE",
            );
        }
        if args.changedsince.is_some() || args.items.contains(&FetchAtt::ModSeq) {
            self.enabled.condstore = true;
        }
        self.refresh(backend, false);
        let Some(uids) = self.resolve(&tag, &args.set, args.uid) else {
            return;
        };
        let Some(selected) = &self.selected else {
            return;
        };
        let unseen: Vec<u32> = if selected.read_only || !args.items.iter().any(FetchAtt::sets_seen)
        {
            Vec::new()
        } else {
            uids.iter()
                .filter_map(|&u| selected.index_of(u).map(|i| &selected.messages[i]))
                .filter(|m| {
                    !m.flags.system.contains(SystemFlags::SEEN) && !selected.is_expunged(m.uid)
                })
                .filter(|m| args.changedsince.is_none_or(|c| m.modseq > c))
                .map(|m| m.uid)
                .collect()
        };
        if unseen.is_empty() {
            return self.fetch_answer(tag, args, &[], 0, backend);
        }
        let seen = Flags {
            system: SystemFlags(SystemFlags::SEEN),
            keywords: Vec::new(),
        };
        let staged = backend.store_flags(&selected.name, &unseen, FlagMode::Add, &seen);
        match staged {
            Ok(_) => self.wait_for(tag, staged, AfterCommit::Fetch(Box::new(args))),
            // \Seen could not be staged: answer without it.
            Err(_) => self.fetch_answer(tag, args, &[], 0, backend),
        }
    }

    /// The UIDs a set names, or `None` after a BAD for sequence numbers that do not exist.
    pub(crate) fn resolve(&mut self, tag: &Tag, set: &SequenceSet, uid: bool) -> Option<Vec<u32>> {
        let selected = self.selected.as_ref()?;
        if uid {
            let uids = selected.uids();
            let largest = uids.last().copied().unwrap_or(0);
            return Some(set.resolve(&uids, largest, Some(&selected.saved)));
        }
        let count = selected.messages.len() as u32;
        if matches!(set, SequenceSet::Saved) {
            return Some(set.resolve(&[], 0, Some(&selected.saved)));
        }
        if !set.within(count) {
            self.respond(Some(tag), Status::Bad, "Invalid message sequence number");
            return None;
        }
        let seqs: Vec<u32> = (1..=count).collect();
        let picked = set.resolve(&seqs, count, None);
        Some(
            picked
                .iter()
                .filter_map(|&s| selected.messages.get(s as usize - 1).map(|m| m.uid))
                .collect(),
        )
    }

    /// Writes the FETCH responses; `seen` were just given `\Seen` by this command.
    pub(crate) fn fetch_answer(
        &mut self,
        tag: Tag,
        args: FetchArgs,
        seen: &[u32],
        seen_modseq: u64,
        backend: &mut dyn ImapBackend,
    ) {
        // Our own \Seen: this answer shows it, so the refresh does not announce it.
        self.refresh_quiet(backend, false, seen);
        if let Some(selected) = &mut self.selected {
            // Known set even when the refresh could not learn it (the list is copied
            // only then).
            for &uid in seen {
                if let Some(i) = selected.index_of(uid)
                    && (!selected.messages[i]
                        .flags
                        .system
                        .contains(SystemFlags::SEEN)
                        || selected.messages[i].modseq < seen_modseq)
                {
                    let m = &mut std::sync::Arc::make_mut(&mut selected.messages)[i];
                    m.flags.system.0 |= SystemFlags::SEEN;
                    m.modseq = m.modseq.max(seen_modseq);
                }
            }
        }
        let Some(uids) = self.resolve(&tag, &args.set, args.uid) else {
            return;
        };
        let Some(selected) = &self.selected else {
            return;
        };
        let mailbox = selected.name.clone();
        if args.vanished
            && let Some(since) = args.changedsince
            && let Ok(changes) = backend.changes(&mailbox, since)
        {
            let mut gone = changes.expunged;
            gone.sort_unstable();
            let largest = selected.uidnext.saturating_sub(1);
            let gone = args.set.resolve(&gone, largest, Some(&selected.saved));
            if !gone.is_empty() {
                self.untagged(&format!("VANISHED (EARLIER) {}", format_set(&gone)));
            }
        }
        let mut failed: Option<ItemError> = None;
        let needs_layout = args.items.iter().any(FetchAtt::needs_layout);
        let needs_live = !needs_layout && args.items.iter().any(FetchAtt::is_whole_body);
        // ENVELOPE is the only item that needs the structure: the backend need only read
        // the envelopes (the layout holds nothing else, and nothing else is looked at).
        let envelope_only = needs_layout
            && args
                .items
                .iter()
                .filter(|a| a.needs_layout())
                .all(|a| matches!(a, FetchAtt::Envelope));
        for batch in uids.chunks(IMAP_FETCH_LAYOUT_BATCH) {
            let Some(selected) = &self.selected else {
                return;
            };
            let wanted: Vec<(usize, MessageMeta)> = batch
                .iter()
                .filter_map(|&uid| selected.index_of(uid))
                .map(|i| (i, selected.messages[i].clone()))
                .filter(|(_, meta)| args.changedsince.is_none_or(|c| meta.modseq > c))
                .collect();
            let uids = || wanted.iter().map(|(_, m)| m.uid).collect::<Vec<u32>>();
            let mut layouts = if envelope_only {
                backend
                    .envelopes(&mailbox, &uids())
                    .into_iter()
                    .map(|e| e.map(MessageLayout::of_envelope))
                    .collect()
            } else if needs_layout {
                backend.layouts(&mailbox, &uids())
            } else {
                Vec::new()
            }
            .into_iter();
            let live = if needs_live {
                backend.live(&mailbox, &uids())
            } else {
                Vec::new()
            };
            for (n, (i, meta)) in wanted.into_iter().enumerate() {
                if needs_live && !live.get(n).copied().unwrap_or(false) {
                    failed = Some(ItemError::Expunged);
                    continue;
                }
                let layout = match layouts.next() {
                    Some(Ok(layout)) => Some(layout),
                    Some(Err(_)) => {
                        failed = Some(ItemError::Expunged);
                        continue;
                    }
                    None if needs_layout => {
                        failed = Some(ItemError::Expunged);
                        continue;
                    }
                    None => None,
                };
                if let Err(e) = self.fetch_one(
                    i + 1,
                    &meta,
                    layout.as_ref(),
                    &args,
                    seen,
                    &mailbox,
                    backend,
                ) {
                    failed = Some(e);
                }
            }
        }
        match failed {
            None => self.respond(Some(&tag), Status::Ok, "FETCH completed"),
            Some(ItemError::UnknownCte) => self.respond(
                Some(&tag),
                Status::No,
                "[UNKNOWN-CTE] Unknown content-transfer-encoding",
            ),
            Some(ItemError::Limit) => {
                self.respond(Some(&tag), Status::No, "[LIMIT] Part too big to decode")
            }
            Some(ItemError::Expunged) => self.respond(
                Some(&tag),
                Status::No,
                "[EXPUNGEISSUED] Some messages were expunged",
            ),
        }
    }

    /// One message's FETCH response; `layout` is there when an item needs it.
    #[allow(clippy::too_many_arguments)]
    fn fetch_one(
        &mut self,
        seq: usize,
        meta: &MessageMeta,
        layout: Option<&MessageLayout>,
        args: &FetchArgs,
        seen: &[u32],
        mailbox: &str,
        backend: &mut dyn ImapBackend,
    ) -> Result<(), ItemError> {
        let mut error = None;
        self.raw(format!("* {seq} FETCH (").as_bytes());
        let mut first = true;
        let mut sep = |core: &mut Core| {
            if !first {
                core.raw(b" ");
            }
            first = false;
        };
        if args.uid && !args.items.contains(&FetchAtt::Uid) {
            sep(self);
            self.raw(format!("UID {}", meta.uid).as_bytes());
        }
        for item in &args.items {
            sep(self);
            if let Err(e) = self.fetch_item(mailbox, meta, layout, item, backend) {
                error = Some(e);
            }
        }
        if seen.contains(&meta.uid) && !args.items.contains(&FetchAtt::Flags) {
            sep(self);
            self.raw(format!("FLAGS ({})", meta.flags.to_imap()).as_bytes());
        }
        if args.changedsince.is_some() && !args.items.contains(&FetchAtt::ModSeq) {
            sep(self);
            self.raw(format!("MODSEQ ({})", meta.modseq).as_bytes());
        }
        self.raw(b")\r\n");
        error.map_or(Ok(()), Err)
    }

    fn fetch_item(
        &mut self,
        mailbox: &str,
        meta: &MessageMeta,
        layout: Option<&MessageLayout>,
        item: &FetchAtt,
        backend: &mut dyn ImapBackend,
    ) -> Result<(), ItemError> {
        let uid = meta.uid;
        let empty = MessageLayout {
            size: meta.size,
            envelope: b"NIL".to_vec(),
            bodystructure: b"NIL".to_vec(),
            body: b"NIL".to_vec(),
            parts: Vec::new(),
            fields: Default::default(),
        };
        let layout = layout.unwrap_or(&empty);
        match item {
            FetchAtt::Uid => self.raw(format!("UID {uid}").as_bytes()),
            FetchAtt::Flags => self.raw(format!("FLAGS ({})", meta.flags.to_imap()).as_bytes()),
            FetchAtt::InternalDate => {
                self.raw(format!("INTERNALDATE {}", format_date_time(meta.internaldate)).as_bytes())
            }
            FetchAtt::Rfc822Size => self.raw(format!("RFC822.SIZE {}", meta.size).as_bytes()),
            FetchAtt::ModSeq => self.raw(format!("MODSEQ ({})", meta.modseq).as_bytes()),
            FetchAtt::Envelope => {
                self.raw(b"ENVELOPE ");
                self.raw(&layout.envelope);
            }
            FetchAtt::Body => {
                self.raw(b"BODY ");
                self.raw(&layout.body);
            }
            FetchAtt::BodyStructure => {
                self.raw(b"BODYSTRUCTURE ");
                self.raw(&layout.bodystructure);
            }
            FetchAtt::Rfc822 => {
                self.raw(b"RFC822 ");
                self.literal_range(mailbox, uid, (0, meta.size));
            }
            FetchAtt::Rfc822Header => {
                self.raw(b"RFC822.HEADER ");
                let range = layout.section(&[], SectionText::Header).unwrap_or((0, 0));
                self.literal_range(mailbox, uid, range);
            }
            FetchAtt::Rfc822Text => {
                self.raw(b"RFC822.TEXT ");
                let range = layout.section(&[], SectionText::Text).unwrap_or((0, 0));
                self.literal_range(mailbox, uid, range);
            }
            FetchAtt::Section {
                binary: false,
                part,
                spec,
                partial,
                ..
            } => {
                let origin = partial.map(|(o, _)| format!("<{o}>")).unwrap_or_default();
                self.raw(
                    format!("BODY[{}]{origin} ", section_name(part, spec.as_ref())).as_bytes(),
                );
                let text = match spec {
                    None => SectionText::Body,
                    Some(SectionSpec::Header | SectionSpec::HeaderFields { .. }) => {
                        SectionText::Header
                    }
                    Some(SectionSpec::Text) => SectionText::Text,
                    Some(SectionSpec::Mime) => SectionText::Mime,
                };
                let range = if item.is_whole_body() {
                    (0, meta.size)
                } else {
                    layout.section(part, text).unwrap_or((0, 0))
                };
                match spec {
                    Some(SectionSpec::HeaderFields { not, fields }) => {
                        let header = backend
                            .read(mailbox, uid, range.0, range.1)
                            .map_err(|_| ItemError::Expunged);
                        let filtered = filter_header(&header.unwrap_or_default(), fields, *not);
                        self.literal_bytes(cut_bytes(&filtered, *partial));
                    }
                    _ => self.literal_range(mailbox, uid, cut(range, *partial)),
                }
            }
            FetchAtt::Section {
                binary: true,
                part,
                partial,
                ..
            } => {
                let origin = partial.map(|(o, _)| format!("<{o}>")).unwrap_or_default();
                self.raw(format!("BINARY[{}]{origin} ", section_name(part, None)).as_bytes());
                match binary_content(layout, part) {
                    Binary::Range(range) => self.literal_range(mailbox, uid, cut(range, *partial)),
                    Binary::Decode(range, encoding) => {
                        if range.1 - range.0 > IMAP_DECODE_BYTES_MAX {
                            self.raw(b"NIL");
                            return Err(ItemError::Limit);
                        }
                        let data = backend.read(mailbox, uid, range.0, range.1);
                        let data = decode_part(&data.unwrap_or_default(), encoding);
                        // Decoded content goes as literal8 whatever it holds, as Dovecot
                        // sends it (tests/tests/imap_fetch_parity.rs).
                        self.literal8_bytes(cut_bytes(&data, *partial));
                    }
                    Binary::Unknown => {
                        self.raw(b"NIL");
                        return Err(ItemError::UnknownCte);
                    }
                }
            }
            FetchAtt::BinarySize { part } => {
                let size = match binary_content(layout, part) {
                    Binary::Range(range) => range.1 - range.0,
                    Binary::Decode(range, encoding) => {
                        if range.1 - range.0 > IMAP_DECODE_BYTES_MAX {
                            self.raw(
                                format!("BINARY.SIZE[{}] NIL", section_name(part, None)).as_bytes(),
                            );
                            return Err(ItemError::Limit);
                        }
                        let data = backend.read(mailbox, uid, range.0, range.1);
                        decode_part(&data.unwrap_or_default(), encoding).len() as u64
                    }
                    Binary::Unknown => {
                        self.raw(
                            format!("BINARY.SIZE[{}] NIL", section_name(part, None)).as_bytes(),
                        );
                        return Err(ItemError::UnknownCte);
                    }
                };
                self.raw(format!("BINARY.SIZE[{}] {size}", section_name(part, None)).as_bytes());
            }
        }
        Ok(())
    }

    /// `{n}\r\n` and the message bytes, streamed by the engine.
    fn literal_range(&mut self, mailbox: &str, uid: u32, (start, end): (u64, u64)) {
        let len = end.saturating_sub(start);
        self.raw(format!("{{{len}}}\r\n").as_bytes());
        if len > 0 {
            self.message_bytes(mailbox, uid, start, end);
        }
    }

    /// `~{n}` and bytes the session holds.
    fn literal8_bytes(&mut self, data: &[u8]) {
        self.raw(format!("~{{{}}}\r\n", data.len()).as_bytes());
        self.raw(data);
    }

    /// A literal of bytes the session holds (`~{n}` when they include NUL).
    fn literal_bytes(&mut self, data: &[u8]) {
        let prefix = if data.contains(&0) { "~" } else { "" };
        self.raw(format!("{prefix}{{{}}}\r\n", data.len()).as_bytes());
        self.raw(data);
    }
}

enum Binary {
    /// Sent as stored.
    Range((u64, u64)),
    /// Decoded first.
    Decode((u64, u64), TransferEncoding),
    Unknown,
}

fn binary_content(layout: &MessageLayout, part: &[u32]) -> Binary {
    if part.is_empty() {
        return Binary::Range((0, layout.size));
    }
    let Some(idx) = layout.find_part(part) else {
        return Binary::Range((0, 0));
    };
    let Some(info) = layout.parts.get(idx) else {
        return Binary::Range((0, 0));
    };
    let range = layout.section(part, SectionText::Body).unwrap_or((0, 0));
    if info.kind != PartKind::Single {
        return Binary::Range(range);
    }
    match info.encoding {
        TransferEncoding::SevenBit | TransferEncoding::EightBit | TransferEncoding::Binary => {
            Binary::Range(range)
        }
        TransferEncoding::Base64 | TransferEncoding::QuotedPrintable => {
            Binary::Decode(range, info.encoding)
        }
        TransferEncoding::Other => Binary::Unknown,
    }
}

/// Decodes a part's body by its transfer encoding.
pub fn decode_part(data: &[u8], encoding: TransferEncoding) -> Vec<u8> {
    match encoding {
        TransferEncoding::Base64 => decode::base64(data),
        TransferEncoding::QuotedPrintable => decode::quoted_printable(data),
        _ => data.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &[u8]) -> Result<Vec<FetchAtt>, ParseErrorKind> {
        let mut input = Cursor::new(text);
        parse(&mut input, false).map(|a| a.items)
    }

    #[test]
    fn parses_sections_and_partials() {
        let parsed =
            items(b" 1 (BODY.PEEK[1.2.HEADER.FIELDS.NOT (from \"To\")]<5.10> BINARY[3] UID)")
                .expect("valid");
        assert_eq!(
            parsed[0],
            FetchAtt::Section {
                peek: true,
                binary: false,
                part: vec![1, 2],
                spec: Some(SectionSpec::HeaderFields {
                    not: true,
                    fields: vec!["FROM".into(), "TO".into()]
                }),
                partial: Some((5, 10)),
            }
        );
        assert_eq!(items(b" 1 FAST").expect("macro").len(), 3);
        assert!(items(b" 1 BODY[MIME]").is_err());
        assert!(items(b" 1 BINARY[HEADER]").is_err());
        assert!(items(b" 1 BODY[1]<1.0>").is_err());
        assert_eq!(
            section_name(&[1], Some(&SectionSpec::Mime)),
            "1.MIME".to_owned()
        );
    }

    #[test]
    fn header_fields_filter() {
        let header = b"From: a\r\nTo: b\r\n  c\r\nSubject: s\r\n\r\n";
        assert_eq!(
            filter_header(header, &["TO".into()], false),
            b"To: b\r\n  c\r\n\r\n"
        );
        assert_eq!(
            filter_header(header, &["TO".into()], true),
            b"From: a\r\nSubject: s\r\n\r\n"
        );
    }
}
