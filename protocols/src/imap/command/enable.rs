//! ENABLE (RFC 5161): CONDSTORE, QRESYNC (implies CONDSTORE), UTF8=ACCEPT (RFC 6855),
//! IMAP4rev2 (RFC 9051). Unknown capabilities are ignored, as the RFC asks.

use crate::imap::session::{Core, Status};
use crate::imap::types::{Atom, Tag};

impl Core {
    pub(crate) fn enable(&mut self, tag: &Tag, capabilities: &[Atom]) {
        let mut newly = Vec::new();
        for capability in capabilities {
            let flag = match capability.as_str() {
                "CONDSTORE" => &mut self.enabled.condstore,
                "QRESYNC" => &mut self.enabled.qresync,
                "UTF8=ACCEPT" => &mut self.enabled.utf8,
                "IMAP4REV2" => &mut self.enabled.rev2,
                _ => continue,
            };
            if !*flag {
                *flag = true;
                newly.push(if capability.as_str() == "IMAP4REV2" {
                    "IMAP4rev2"
                } else {
                    capability.as_str()
                });
            }
        }
        if self.enabled.qresync && !self.enabled.condstore {
            self.enabled.condstore = true;
        }
        if self.enabled.rev2 {
            // IMAP4rev2 names mailboxes in UTF-8 (RFC 9051 §5.1).
            self.enabled.utf8 = true;
        }
        let line = if newly.is_empty() {
            "ENABLED".to_owned()
        } else {
            format!("ENABLED {}", newly.join(" "))
        };
        self.untagged(&line);
        self.respond(Some(tag), Status::Ok, "ENABLE completed");
    }
}
