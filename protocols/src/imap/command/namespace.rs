//! NAMESPACE (RFC 2342): one personal namespace; shared and public ones come with ACL.

use crate::imap::session::{Core, Status};
use crate::imap::types::Tag;

impl Core {
    pub(crate) fn namespace(&mut self, tag: &Tag) {
        self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
        self.respond(Some(tag), Status::Ok, "NAMESPACE completed");
    }
}
