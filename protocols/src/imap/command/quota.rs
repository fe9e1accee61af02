//! GETQUOTA and GETQUOTAROOT (RFC 9208). SETQUOTA is for MANAGE accounts, later.

use crate::imap::backend::{ImapBackend, Quota};
use crate::imap::mailbox_name::quote;
use crate::imap::session::{Core, Status};
use crate::imap::types::{AString, Tag};

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
