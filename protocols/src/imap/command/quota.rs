//! GETQUOTA, GETQUOTAROOT and SETQUOTA (RFC 9208). SETQUOTA is for accounts with
//! the manage flag (the backend decides); the quota root of a user's own mail is
//! `""`, another account's is its address.

use crate::imap::backend::{ImapBackend, Quota};
use crate::imap::command::number64;
use crate::imap::mailbox_name::quote;
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{AfterCommit, Core, Status};
use crate::imap::types::{AString, Tag};

/// At most this many `resource limit` pairs in one SETQUOTA: RFC 9208 defines
/// five resources, so more can only be junk.
const SETQUOTA_RESOURCES_MAX: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetQuotaArgs {
    pub root: AString,
    /// `(name, limit)`, names upper-cased. Empty = remove every limit.
    pub resources: Vec<(String, u64)>,
}

/// `SP quota-root-name SP "(" [resource SP limit *(SP resource SP limit)] ")"`
pub fn parse_set(input: &mut Cursor<'_>) -> Result<SetQuotaArgs, ParseErrorKind> {
    input.sp()?;
    let root = input.astring()?;
    input.sp()?;
    input.expect(b'(')?;
    let mut resources = Vec::new();
    while input.peek() != Some(b')') {
        if !resources.is_empty() {
            input.sp()?;
        }
        if resources.len() == SETQUOTA_RESOURCES_MAX {
            return Err(ParseErrorKind::InvalidArgument);
        }
        let name = input.atom()?.to_ascii_uppercase();
        input.sp()?;
        let limit = number64(input)?;
        resources.push((name.as_str().to_owned(), limit));
    }
    input.expect(b')')?;
    Ok(SetQuotaArgs { root, resources })
}

impl Core {
    fn quota_line(&mut self, quota: &Quota) {
        let resources: Vec<String> = quota
            .resources
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.usage, r.limit))
            .collect();
        let line = format!("QUOTA {} ({})", quote(&quota.root), resources.join(" "));
        self.untagged(&line);
    }

    pub(crate) fn get_quota(&mut self, tag: &Tag, root: &AString, backend: &mut dyn ImapBackend) {
        let root = String::from_utf8_lossy(root.as_bytes()).into_owned();
        match backend.quota(&root) {
            Ok(quota) => {
                self.quota_line(&quota);
                self.respond(Some(tag), Status::Ok, "GETQUOTA completed");
            }
            Err(_) => self.respond(Some(tag), Status::No, "[NONEXISTENT] No such quota root"),
        }
    }

    pub(crate) fn set_quota(
        &mut self,
        tag: Tag,
        args: SetQuotaArgs,
        backend: &mut dyn ImapBackend,
    ) {
        let root = String::from_utf8_lossy(args.root.as_bytes()).into_owned();
        let mut storage = None;
        for (name, limit) in &args.resources {
            if name != "STORAGE" {
                // RFC 9208 §4.1.3: a resource the root does not have is refused.
                let text = format!("[CANNOT] Unsupported resource {name}");
                return self.respond(Some(&tag), Status::No, &text);
            }
            storage = Some(*limit);
        }
        let staged = backend.set_quota(&root, storage);
        self.wait_for(tag, staged, AfterCommit::Simple("SETQUOTA completed"));
    }

    pub(crate) fn get_quota_root(
        &mut self,
        tag: &Tag,
        mailbox: &AString,
        backend: &mut dyn ImapBackend,
    ) {
        let Some(name) = self.mailbox_name(tag, mailbox) else {
            return;
        };
        match backend.quota_roots(&name) {
            Ok(quotas) => {
                let mut line = format!("QUOTAROOT {}", self.wire_name(&name));
                for q in &quotas {
                    line.push(' ');
                    line.push_str(&quote(&q.root));
                }
                self.untagged(&line);
                for q in &quotas {
                    self.quota_line(q);
                }
                self.respond(Some(tag), Status::Ok, "GETQUOTAROOT completed");
            }
            Err(error) => self.respond(Some(tag), Status::No, &error.response()),
        }
    }
}
