//! STORE and UID STORE (RFC 9051 §6.4.6) with UNCHANGEDSINCE (RFC 7162 §3.1.3).

use crate::imap::backend::{FlagMode, ImapBackend};
use crate::imap::command::{
    Flag, SequenceSet, flag_list, format_set, number64, sequence_set, to_flags,
};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{AfterCommit, Core, Status};
use crate::imap::types::Tag;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreArgs {
    pub uid: bool,
    pub set: SequenceSet,
    pub unchangedsince: Option<u64>,
    pub mode: FlagMode,
    pub silent: bool,
    pub flags: Vec<Flag>,
}

/// What STORE does once its flags are durable.
#[derive(Debug)]
pub(crate) struct StoreDone {
    uid: bool,
    silent: bool,
    /// The messages stored to (UIDs).
    targets: Vec<u32>,
    /// UNCHANGEDSINCE failures (UIDs).
    modified: Vec<u32>,
}

/// `SP sequence-set [SP "(" "UNCHANGEDSINCE" SP n ")"] SP ["+"/"-"] "FLAGS" [".SILENT"] SP flags`
pub fn parse(input: &mut Cursor<'_>, uid: bool) -> Result<StoreArgs, ParseErrorKind> {
    input.sp()?;
    let set = sequence_set(input)?;
    input.sp()?;
    let mut unchangedsince = None;
    if input.peek() == Some(b'(') {
        input.expect(b'(')?;
        let word = input.atom()?.to_ascii_uppercase();
        if word.as_str() != "UNCHANGEDSINCE" {
            return Err(ParseErrorKind::InvalidArgument);
        }
        input.sp()?;
        unchangedsince = Some(number64(input)?);
        input.expect(b')')?;
        input.sp()?;
    }
    let mode = match input.peek() {
        Some(b'+') => FlagMode::Add,
        Some(b'-') => FlagMode::Remove,
        _ => FlagMode::Replace,
    };
    if mode != FlagMode::Replace {
        input.take(1)?;
    }
    let word = input.atom()?.to_ascii_uppercase();
    let silent = match word.as_str() {
        "FLAGS" => false,
        "FLAGS.SILENT" => true,
        _ => return Err(ParseErrorKind::InvalidArgument),
    };
    input.sp()?;
    let flags = flag_list(input, true)?;
    Ok(StoreArgs {
        uid,
        set,
        unchangedsince,
        mode,
        silent,
        flags,
    })
}

impl Core {
    pub(crate) fn store(&mut self, tag: Tag, args: StoreArgs, backend: &mut dyn ImapBackend) {
        let flags = match to_flags(&args.flags) {
            Ok(flags) => flags,
            Err(why) => return self.respond(Some(&tag), Status::Bad, &why),
        };
        if self.selected.as_ref().is_some_and(|s| s.read_only) {
            return self.respond(Some(&tag), Status::No, "[READ-ONLY] Mailbox is read-only");
        }
        if args.unchangedsince.is_some() {
            self.enabled.condstore = true;
        }
        self.refresh(backend, false);
        let Some(uids) = self.resolve(&tag, &args.set, args.uid) else {
            return;
        };
        let Some(selected) = &self.selected else {
            return;
        };
        let unknown_keyword = flags
            .keywords
            .iter()
            .any(|k| !selected.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)));
        if unknown_keyword && !selected.keywords_creatable {
            return self.respond(Some(&tag), Status::No, "[CANNOT] No new keywords here");
        }
        let (mut targets, mut modified) = (Vec::new(), Vec::new());
        for uid in uids {
            let Some(i) = selected.index_of(uid) else {
                continue;
            };
            if selected.is_expunged(uid) {
                continue;
            }
            match args.unchangedsince {
                Some(since) if selected.messages[i].modseq > since => modified.push(uid),
                _ => targets.push(uid),
            }
        }
        let done = StoreDone {
            uid: args.uid,
            silent: args.silent,
            targets,
            modified,
        };
        if done.targets.is_empty() {
            return self.store_done(tag, done, backend);
        }
        let staged = backend.store_flags(&selected.name, &done.targets, args.mode, &flags);
        self.wait_for(tag, staged, AfterCommit::Store(done));
    }

    pub(crate) fn store_done(&mut self, tag: Tag, done: StoreDone, backend: &mut dyn ImapBackend) {
        self.refresh_quiet(backend, false, &done.targets);
        let Some(selected) = &self.selected else {
            return;
        };
        let mut lines = Vec::new();
        if !done.silent {
            for &uid in &done.targets {
                let Some(i) = selected.index_of(uid) else {
                    continue;
                };
                let m = &selected.messages[i];
                let mut line = format!("* {} FETCH (", i + 1);
                if done.uid {
                    line.push_str(&format!("UID {} ", m.uid));
                }
                line.push_str(&format!("FLAGS ({})", m.flags.to_imap()));
                if self.enabled.condstore {
                    line.push_str(&format!(" MODSEQ ({})", m.modseq));
                }
                line.push(')');
                lines.push(line);
            }
        }
        let modified: Vec<u32> = if done.uid {
            done.modified.clone()
        } else {
            done.modified
                .iter()
                .filter_map(|&u| selected.index_of(u).map(|i| i as u32 + 1))
                .collect()
        };
        for line in lines {
            self.text(&line);
        }
        if modified.is_empty() {
            self.respond(Some(&tag), Status::Ok, "STORE completed");
        } else {
            let text = format!(
                "[MODIFIED {}] Conditional STORE failed",
                format_set(&modified)
            );
            self.respond(Some(&tag), Status::Ok, &text);
        }
    }
}
