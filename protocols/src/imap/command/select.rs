//! SELECT and EXAMINE (RFC 9051 §6.3.2–3), with CONDSTORE and QRESYNC parameters
//! (RFC 7162 §3.1.8, §3.2.5).

use crate::imap::backend::{ImapBackend, SystemFlags};
use crate::imap::command::{SequenceSet, format_set, number64, nz_number, sequence_set};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{Core, Selected, Status};
use crate::imap::types::{AString, Tag};

/// `QRESYNC (uidvalidity modseq [known-uids])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectArgs {
    pub mailbox: AString,
    pub read_only: bool,
    pub condstore: bool,
    pub qresync: Option<Qresync>,
}

/// `SP mailbox [SP "(" select-param *(SP select-param) ")"]`
pub fn parse(input: &mut Cursor<'_>, read_only: bool) -> Result<SelectArgs, ParseErrorKind> {
    input.sp()?;
    let mut args = SelectArgs {
        mailbox: input.astring()?,
        read_only,
        condstore: false,
        qresync: None,
    };
    if input.at_eol() {
        return Ok(args);
    }
    input.sp()?;
    input.expect(b'(')?;
    loop {
        let name = input.atom()?.to_ascii_uppercase();
        match name.as_str() {
            "CONDSTORE" => args.condstore = true,
            "QRESYNC" => {
                input.sp()?;
                input.expect(b'(')?;
                let uidvalidity = nz_number(input)?;
                input.sp()?;
                let modseq = number64(input)?;
                let mut known_uids = None;
                if input.peek() == Some(b' ') {
                    input.sp()?;
                    known_uids = Some(sequence_set(input)?);
                    if input.peek() == Some(b' ') {
                        // seq-match-data: only an optimisation for the server; skipped.
                        input.sp()?;
                        input.value()?;
                    }
                }
                input.expect(b')')?;
                args.qresync = Some(Qresync {
                    uidvalidity,
                    modseq,
                    known_uids,
                });
            }
            _ => return Err(ParseErrorKind::InvalidArgument),
        }
        if input.peek() == Some(b')') {
            break;
        }
        input.sp()?;
    }
    input.expect(b')')?;
    Ok(args)
}

impl Core {
    pub(crate) fn select(&mut self, tag: Tag, args: SelectArgs, backend: &mut dyn ImapBackend) {
        let Some(name) = self.mailbox_name(&tag, &args.mailbox) else {
            return;
        };
        if args.qresync.is_some() && !self.enabled.qresync {
            return self.respond(Some(&tag), Status::Bad, "QRESYNC is not enabled");
        }
        if args.condstore {
            self.enabled.condstore = true;
        }
        let had_mailbox = self.selected.is_some();
        self.leave_mailbox(backend);
        if had_mailbox && (self.enabled.qresync || self.enabled.condstore || self.enabled.rev2) {
            self.untagged("OK [CLOSED] Previous mailbox closed");
        }
        let snapshot = match backend.select(&name, args.read_only) {
            Ok(snapshot) => snapshot,
            Err(error) => return self.respond(Some(&tag), Status::No, &error.response()),
        };
        let read_only = args.read_only || snapshot.read_only;
        let mut messages = snapshot.messages;
        if !messages.is_sorted_by(|a, b| a.uid < b.uid) {
            let list = std::sync::Arc::make_mut(&mut messages);
            list.sort_by_key(|m| m.uid);
            list.dedup_by_key(|m| m.uid);
        }
        let mut keywords = snapshot.keywords;
        for m in messages.iter() {
            for k in &m.flags.keywords {
                if !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    keywords.push(k.clone());
                }
            }
        }
        let system: Vec<&str> = SystemFlags::NAMES.iter().map(|(_, n)| *n).collect();
        let mut all = system.join(" ");
        for k in &keywords {
            all.push(' ');
            all.push_str(k);
        }
        self.untagged(&format!("FLAGS ({all})"));
        if read_only {
            self.untagged("OK [PERMANENTFLAGS ()] Read-only mailbox");
        } else {
            let star = if snapshot.keywords_creatable {
                " \\*"
            } else {
                ""
            };
            self.untagged(&format!(
                "OK [PERMANENTFLAGS ({all}{star})] Flags permitted"
            ));
        }
        self.untagged(&format!("{} EXISTS", messages.len()));
        if !self.enabled.rev2 {
            self.untagged(&format!("{} RECENT", snapshot.recent));
            if let Some(i) = messages
                .iter()
                .position(|m| !m.flags.system.contains(SystemFlags::SEEN))
            {
                self.untagged(&format!("OK [UNSEEN {}] First unseen", i + 1));
            }
        }
        self.untagged(&format!(
            "OK [UIDVALIDITY {}] UIDs valid",
            snapshot.uidvalidity
        ));
        self.untagged(&format!(
            "OK [UIDNEXT {}] Predicted next UID",
            snapshot.uidnext
        ));
        self.untagged(&format!(
            "OK [HIGHESTMODSEQ {}] Highest",
            snapshot.highestmodseq
        ));
        if self.enabled.rev2 {
            let line = format!("LIST () \"/\" {}", self.wire_name(&snapshot.name));
            self.untagged(&line);
        }
        self.selected = Some(Selected {
            name: snapshot.name,
            read_only,
            uidvalidity: snapshot.uidvalidity,
            uidnext: snapshot.uidnext,
            highestmodseq: snapshot.highestmodseq,
            messages,
            expunged: Vec::new(),
            keywords,
            keywords_creatable: snapshot.keywords_creatable,
            saved: Vec::new(),
        });
        self.changed = false;
        if let Some(qresync) = &args.qresync {
            self.qresync(qresync, backend);
        }
        let (code, verb) = match (read_only, args.read_only) {
            (true, true) => ("READ-ONLY", "EXAMINE"),
            (true, false) => ("READ-ONLY", "SELECT"),
            (false, _) => ("READ-WRITE", "SELECT"),
        };
        self.respond(
            Some(&tag),
            Status::Ok,
            &format!("[{code}] {verb} completed"),
        );
    }

    /// Tells a resynchronising client what changed since its modseq (RFC 7162 §3.2.5.1).
    fn qresync(&mut self, qresync: &Qresync, backend: &mut dyn ImapBackend) {
        let Some(selected) = &self.selected else {
            return;
        };
        if qresync.uidvalidity != selected.uidvalidity {
            return;
        }
        let Ok(changes) = backend.changes(&selected.name, qresync.modseq) else {
            return;
        };
        let largest = selected.uidnext.saturating_sub(1);
        let mut lines = Vec::new();
        if let Some(live) = &changes.live_uids {
            // The change log no longer reaches back: every UID below UIDNEXT that is not
            // live may have vanished. Sent as ranges (never enumerated: UIDs go to 2^32).
            let mut live = live.clone();
            live.sort_unstable();
            let mut gaps = Vec::new();
            let mut next = 1u32;
            for &uid in live
                .iter()
                .chain(std::iter::once(&largest.saturating_add(1)))
            {
                if uid > next {
                    let end = uid - 1;
                    gaps.push(if end == next {
                        next.to_string()
                    } else {
                        format!("{next}:{end}")
                    });
                }
                next = next.max(uid.saturating_add(1));
            }
            if !gaps.is_empty() {
                lines.push(format!("VANISHED (EARLIER) {}", gaps.join(",")));
            }
        } else {
            let mut vanished: Vec<u32> = changes.expunged.clone();
            vanished.sort_unstable();
            vanished.dedup();
            if let Some(known) = &qresync.known_uids {
                vanished = known.resolve(&vanished, largest, None);
            }
            vanished.retain(|&u| selected.index_of(u).is_none());
            if !vanished.is_empty() {
                lines.push(format!("VANISHED (EARLIER) {}", format_set(&vanished)));
            }
        }
        for meta in &changes.updated {
            if let Some(i) = selected.index_of(meta.uid) {
                let m = &selected.messages[i];
                lines.push(format!(
                    "{} FETCH (UID {} FLAGS ({}) MODSEQ ({}))",
                    i + 1,
                    m.uid,
                    m.flags.to_imap(),
                    m.modseq
                ));
            }
        }
        for line in lines {
            self.untagged(&line);
        }
    }

    /// CLOSE: expunges `\Deleted` messages silently (when read-write), then leaves.
    pub(crate) fn close_mailbox(&mut self, tag: Tag, backend: &mut dyn ImapBackend) {
        let Some(selected) = &self.selected else {
            return;
        };
        let deleted: Vec<u32> = selected
            .messages
            .iter()
            .filter(|m| m.flags.system.contains(SystemFlags::DELETED))
            .map(|m| m.uid)
            .collect();
        if selected.read_only || deleted.is_empty() {
            self.leave_mailbox(backend);
            return self.respond(Some(&tag), Status::Ok, "CLOSE completed");
        }
        let staged = backend.expunge(&selected.name, &deleted);
        self.wait_for(
            tag,
            staged,
            crate::imap::session::AfterCommit::Expunge {
                uid: false,
                close: true,
            },
        );
    }
}
