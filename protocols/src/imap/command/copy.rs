//! COPY, MOVE and their UID forms (RFC 9051 §6.4.7–8, RFC 6851), answering `[COPYUID]`
//! (RFC 4315).

use crate::imap::backend::{BackendError, Completion, ImapBackend};
use crate::imap::command::{SequenceSet, format_set, sequence_set};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{AfterCommit, Core, Status};
use crate::imap::types::{AString, Tag};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs {
    pub uid: bool,
    pub is_move: bool,
    pub set: SequenceSet,
    pub mailbox: AString,
}

/// `SP sequence-set SP mailbox`
pub fn parse(input: &mut Cursor<'_>, uid: bool, is_move: bool) -> Result<CopyArgs, ParseErrorKind> {
    input.sp()?;
    let set = sequence_set(input)?;
    input.sp()?;
    Ok(CopyArgs {
        uid,
        is_move,
        set,
        mailbox: input.astring()?,
    })
}

/// `[COPYUID v source target]` for the pairs, in source order.
fn copyuid(uidvalidity: u32, pairs: &[(u32, u32)]) -> String {
    let mut pairs = pairs.to_vec();
    pairs.sort_unstable();
    let source: Vec<String> = pairs.iter().map(|p| p.0.to_string()).collect();
    let target: Vec<String> = pairs.iter().map(|p| p.1.to_string()).collect();
    let ascending = pairs.windows(2).all(|w| w[0].1 < w[1].1);
    if ascending {
        let s: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let t: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        return format!(
            "[COPYUID {uidvalidity} {} {}]",
            format_set(&s),
            format_set(&t)
        );
    }
    format!(
        "[COPYUID {uidvalidity} {} {}]",
        source.join(","),
        target.join(",")
    )
}

impl Core {
    pub(crate) fn copy(&mut self, tag: Tag, args: CopyArgs, backend: &mut dyn ImapBackend) {
        let Some(target) = self.mailbox_name(&tag, &args.mailbox) else {
            return;
        };
        if args.is_move && self.selected.as_ref().is_some_and(|s| s.read_only) {
            return self.respond(Some(&tag), Status::No, "[READ-ONLY] Mailbox is read-only");
        }
        self.refresh(backend, false);
        let Some(uids) = self.resolve(&tag, &args.set, args.uid) else {
            return;
        };
        let Some(selected) = &self.selected else {
            return;
        };
        let uids: Vec<u32> = uids
            .into_iter()
            .filter(|&u| !selected.is_expunged(u))
            .collect();
        let verb = if args.is_move { "MOVE" } else { "COPY" };
        if uids.is_empty() {
            self.refresh(backend, args.is_move);
            return self.respond(
                Some(&tag),
                Status::Ok,
                &format!("No messages, {verb} completed"),
            );
        }
        let staged = if args.is_move {
            backend.move_messages(&selected.name, &uids, &target)
        } else {
            backend.copy(&selected.name, &uids, &target)
        };
        if let Err(BackendError::NoSuchMailbox) = staged {
            return self.respond(Some(&tag), Status::No, "[TRYCREATE] Mailbox doesn't exist");
        }
        self.wait_for(
            tag,
            staged,
            AfterCommit::Copy {
                is_move: args.is_move,
            },
        );
    }

    pub(crate) fn copy_done(
        &mut self,
        tag: Tag,
        is_move: bool,
        completion: Completion,
        backend: &mut dyn ImapBackend,
    ) {
        let (code, moved) = match completion {
            Completion::Copied { uidvalidity, uids } if !uids.is_empty() => {
                let moved: Vec<u32> = uids.iter().map(|p| p.0).collect();
                (format!("{} ", copyuid(uidvalidity, &uids)), moved)
            }
            _ => (String::new(), Vec::new()),
        };
        if !is_move {
            self.refresh(backend, true);
            return self.respond(Some(&tag), Status::Ok, &format!("{code}COPY completed"));
        }
        if !code.is_empty() {
            self.untagged(&format!("OK {code}Moved"));
        }
        if let Some(selected) = &mut self.selected {
            for uid in moved {
                if selected.index_of(uid).is_some()
                    && let Err(at) = selected.expunged.binary_search(&uid)
                {
                    selected.expunged.insert(at, uid);
                }
            }
        }
        self.refresh(backend, true);
        self.respond(Some(&tag), Status::Ok, "MOVE completed");
    }
}
