//! Mailboxes of one user: the list (`list`), names (`name`), and per mailbox the index
//! (`index`), the cache (`cache`) and one file per message (`mail/<id>/<uid>`).
//!
//! ```text
//! <user dir>/mailboxes            the list: names, ids, UIDVALIDITY, subscriptions
//! <user dir>/usage                bytes and messages in use (see `quota`)
//! <user dir>/mail/<id>/index      fixed-size records, one per message
//! <user dir>/mail/<id>/cache      precomputed IMAP answers, appended
//! <user dir>/mail/<id>/<uid>      the message, CRLF, exactly the bytes a client downloads
//! ```
//!
//! Opening a mailbox reads `index` only, never a message file. All writes here go to the
//! page cache with no sync of their own: durability comes from the journal and the
//! checkpoint (see `journal`), so these modules never call fsync.

pub(crate) mod apply;
pub mod cache;
pub mod index;
pub mod list;
pub mod name;
pub mod view;

pub use cache::{Cache, CacheRef};
pub use index::{Index, Record, SystemFlags};
pub use list::{MailboxEntry, MailboxList, SpecialUse};
pub use view::{MailboxView, MessageInfo, Status, ViewChanges};

use std::path::{Path, PathBuf};

/// Directory of mailboxes inside a user directory.
pub const MAIL_DIR: &str = "mail";

/// `<user dir>/mail/<id>`.
pub fn mailbox_dir(user_dir: &Path, id: u32) -> PathBuf {
    user_dir.join(MAIL_DIR).join(id.to_string())
}

/// `<user dir>/mail/<id>/<uid>`.
pub fn message_path(user_dir: &Path, id: u32, uid: u32) -> PathBuf {
    mailbox_dir(user_dir, id).join(uid.to_string())
}
