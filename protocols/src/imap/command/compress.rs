//! COMPRESS (RFC 4978): `COMPRESS DEFLATE` in the authenticated state. On OK both sides
//! deflate everything after the OK's CRLF; the engine wraps the connection
//! ([`ImapEvent::Compress`](crate::imap::ImapEvent::Compress)) and calls
//! [`ImapSession::compress_started`](crate::imap::ImapSession::compress_started).
//! Bytes pipelined behind the command are dropped: the client may only start
//! compressing after our OK, so they cannot be commands we can read.

use crate::imap::session::{Core, ImapEvent, Status};
use crate::imap::types::{Atom, Tag};

/// The capability that announces it (authenticated state, until it is on).
pub const COMPRESS_CAPABILITY: &str = "COMPRESS=DEFLATE";

impl Core {
    pub(crate) fn compress(&mut self, tag: &Tag, mechanism: &Atom) {
        let offered = self
            .config
            .capabilities_authenticated
            .iter()
            .any(|c| c.eq_ignore_ascii_case(COMPRESS_CAPABILITY));
        if !offered {
            return self.respond(Some(tag), Status::Bad, "Unknown command");
        }
        if self.compress_active {
            return self.respond(
                Some(tag),
                Status::No,
                "[COMPRESSIONACTIVE] DEFLATE active via COMPRESS",
            );
        }
        if !mechanism.as_str().eq_ignore_ascii_case("DEFLATE") {
            return self.respond(
                Some(tag),
                Status::No,
                "[CANNOT] Unknown compression mechanism",
            );
        }
        self.respond(Some(tag), Status::Ok, "DEFLATE active");
        self.framer.discard_buffered();
        self.compress_active = true;
        self.compress_pending = true;
        self.events.push_back(ImapEvent::Compress);
    }
}
