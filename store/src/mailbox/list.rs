//! The mailbox list of one user: `<user dir>/mailboxes`, text in the line format of the
//! store's small files (see `textfile`):
//!
//! ```text
//! msgstore-mailboxes 2                 magic and version
//! applied_seq 1700000000000123         journal sequence number of the last change applied
//! next_id 3                            next mailbox id; ids are never reused within a user
//! uidvalidity_next 1700000002          lower bound of the next UIDVALIDITY handed out
//! mailbox_1 1700000000 1 - 1025 1030 INBOX   one line per mailbox, key `mailbox_<id>`,
//! mailbox_2 1700000001 1 sent 0 0 Sent         value: <uidvalidity> <subscribed 0|1>
//!                                              <special-use> <uid_bound> <modseq_bound> <name>
//! crc32 0123abcd                       CRC-32 (IEEE) of every preceding byte
//! ```
//!
//! Special-use is `-` or one of `sent drafts trash junk archive`. The name runs to the end of
//! the line (it may hold spaces, never a control character). Lines are written in id order.
//! Version policy as for `profile`: anything an older reader would misread bumps the version.
//! Version 1 had no bounds (`<uidvalidity> <subscribed> <special-use> <name>`); it is still
//! read, with both bounds 0 (unknown).
//!
//! UIDNEXT and HIGHESTMODSEQ themselves live in the mailbox's `index` (they change with every
//! delivery). The bounds here make them survive the loss of the index: `uid_bound` is above
//! every UID ever handed out in the mailbox and `modseq_bound` is at or above every modseq,
//! so a reconstruct that finds no index can keep UIDVALIDITY (no UID can be reused) and
//! never lowers HIGHESTMODSEQ. They are reserved in steps (`limits::UID_RESERVE_STEP`): the
//! store stages a list record raising them *before* the first record that would pass them,
//! in the same group commit, so the bound is durable whenever a UID beyond the old bound is.
//! 0 means unknown (a version 1 file, a mailbox never written to).
//!
//! The list changes only on create/delete/rename/subscribe/special-use and bound
//! reservations, each a journal record that carries these exact bytes (see `journal`), so a
//! torn write of this file after a crash is repaired by replay.
//!
//! A user with no `mailboxes` file has the default list: INBOX with id 1 and UIDVALIDITY the
//! account's creation time, so the first delivery needs no mailbox-list write at all.

use std::path::Path;

use crate::error::{Result, StoreError};
use crate::limits::MAILBOXES_PER_USER_MAX;
use crate::mailbox::name::{INBOX, SEPARATOR, ancestors, canonical, is_self_or_child};
use crate::textfile;

/// File name inside the user directory.
pub const MAILBOXES_FILE: &str = "mailboxes";
/// Magic word on the first line.
pub const MAILBOXES_MAGIC: &str = "msgstore-mailboxes";
/// The only version this build reads and writes.
pub const MAILBOXES_VERSION: u32 = 2;
/// The older version this build still reads (no UID/modseq bounds).
pub const MAILBOXES_VERSION_V1: u32 = 1;
/// INBOX's id in a fresh account.
pub const INBOX_ID: u32 = 1;

/// RFC 6154 special-use attributes the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    /// The word in the `mailboxes` file.
    pub fn as_word(self) -> &'static str {
        match self {
            SpecialUse::Sent => "sent",
            SpecialUse::Drafts => "drafts",
            SpecialUse::Trash => "trash",
            SpecialUse::Junk => "junk",
            SpecialUse::Archive => "archive",
        }
    }

    /// The IMAP attribute (`\Sent`…).
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }

    /// Parses a file word or an IMAP attribute, case-insensitively.
    pub fn parse(text: &str) -> Option<SpecialUse> {
        let word = text.strip_prefix('\\').unwrap_or(text).to_ascii_lowercase();
        [
            SpecialUse::Sent,
            SpecialUse::Drafts,
            SpecialUse::Trash,
            SpecialUse::Junk,
            SpecialUse::Archive,
        ]
        .into_iter()
        .find(|s| s.as_word() == word)
    }
}

/// One mailbox of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxEntry {
    /// Names the folder `mail/<id>/`; never reused within a user.
    pub id: u32,
    /// Canonical name (see `name::canonical`).
    pub name: String,
    pub uidvalidity: u32,
    pub subscribed: bool,
    pub special_use: Option<SpecialUse>,
    /// Above every UID ever handed out in this mailbox; 0 = unknown (see the module doc).
    pub uid_bound: u32,
    /// At or above every modseq ever handed out in this mailbox; 0 = unknown.
    pub modseq_bound: u64,
}

/// The whole list, in id order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxList {
    /// Journal sequence number of the change this list reflects; replay skips older changes.
    pub applied_seq: u64,
    pub next_id: u32,
    pub uidvalidity_next: u32,
    pub mailboxes: Vec<MailboxEntry>,
}

impl MailboxList {
    /// The list of a user who never changed it: INBOX only.
    pub fn default_for(created_unix: u64) -> MailboxList {
        let uidvalidity = u32::try_from(created_unix).unwrap_or(u32::MAX).max(1);
        MailboxList {
            applied_seq: 0,
            next_id: INBOX_ID + 1,
            uidvalidity_next: uidvalidity.saturating_add(1),
            mailboxes: vec![MailboxEntry {
                id: INBOX_ID,
                name: INBOX.to_owned(),
                uidvalidity,
                subscribed: true,
                special_use: None,
                uid_bound: 0,
                modseq_bound: 0,
            }],
        }
    }

    /// The mailbox called `name` (any spelling of INBOX).
    pub fn get(&self, name: &str) -> Option<&MailboxEntry> {
        let name = canonical(name).ok()?;
        self.mailboxes.iter().find(|m| m.name == name)
    }

    /// The mailbox with this id.
    pub fn by_id(&self, id: u32) -> Option<&MailboxEntry> {
        self.mailboxes.iter().find(|m| m.id == id)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut MailboxEntry> {
        self.mailboxes.iter_mut().find(|m| m.name == name)
    }

    fn new_uidvalidity(&mut self, now_unix: u64) -> u32 {
        let now = u32::try_from(now_unix).unwrap_or(u32::MAX);
        let v = now.max(self.uidvalidity_next).max(1);
        self.uidvalidity_next = v.saturating_add(1);
        v
    }

    fn add(&mut self, name: String, special_use: Option<SpecialUse>, now_unix: u64) -> Result<u32> {
        if self.mailboxes.len() >= MAILBOXES_PER_USER_MAX {
            return Err(StoreError::MailboxNotAllowed {
                action: "create",
                name,
                reason: "too many mailboxes",
            });
        }
        let id = self.next_id;
        self.next_id = id.checked_add(1).ok_or(StoreError::MailboxNotAllowed {
            action: "create",
            name: name.clone(),
            reason: "mailbox ids exhausted",
        })?;
        let uidvalidity = self.new_uidvalidity(now_unix);
        self.mailboxes.push(MailboxEntry {
            id,
            name,
            uidvalidity,
            subscribed: false,
            special_use,
            uid_bound: 0,
            modseq_bound: 0,
        });
        Ok(id)
    }

    /// Creates `name` and any missing parents (RFC 3501 §6.3.3); returns the new ids.
    pub fn create(
        &mut self,
        name: &str,
        special_use: Option<SpecialUse>,
        now_unix: u64,
    ) -> Result<Vec<u32>> {
        let name = canonical(name)?;
        if self.get(&name).is_some() {
            return Err(StoreError::MailboxExists { name });
        }
        let mut ids = Vec::new();
        for parent in ancestors(&name) {
            if self.get(parent).is_none() {
                ids.push(self.add(parent.to_owned(), None, now_unix)?);
            }
        }
        ids.push(self.add(name, special_use, now_unix)?);
        Ok(ids)
    }

    /// Deletes `name`; returns its id. INBOX and mailboxes with children are refused.
    pub fn delete(&mut self, name: &str) -> Result<u32> {
        let name = canonical(name)?;
        let refuse = |reason| StoreError::MailboxNotAllowed {
            action: "delete",
            name: name.clone(),
            reason,
        };
        if name == INBOX {
            return Err(refuse("INBOX cannot be deleted"));
        }
        let pos = self
            .mailboxes
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| StoreError::NoSuchMailbox { name: name.clone() })?;
        if self
            .mailboxes
            .iter()
            .any(|m| m.name != name && is_self_or_child(&m.name, &name))
        {
            return Err(refuse("it has child mailboxes"));
        }
        Ok(self.mailboxes.remove(pos).id)
    }

    /// Renames `from` (and its children) to `to`. Renaming INBOX moves INBOX's messages
    /// (its id) to `to` and leaves a new, empty INBOX; INBOX's children stay (RFC 3501 §6.3.5).
    pub fn rename(&mut self, from: &str, to: &str, now_unix: u64) -> Result<()> {
        let from = canonical(from)?;
        let to = canonical(to)?;
        if self.get(&from).is_none() {
            return Err(StoreError::NoSuchMailbox { name: from });
        }
        if self.get(&to).is_some() {
            return Err(StoreError::MailboxExists { name: to });
        }
        if is_self_or_child(&to, &from) || to == INBOX {
            return Err(StoreError::MailboxNotAllowed {
                action: "rename",
                name: from,
                reason: "the new name lies inside the old one or is INBOX",
            });
        }
        for parent in ancestors(&to) {
            if self.get(parent).is_none() && !is_self_or_child(parent, &from) {
                self.add(parent.to_owned(), None, now_unix)?;
            }
        }
        if from == INBOX {
            if let Some(inbox) = self.get_mut(INBOX) {
                inbox.name = to;
                inbox.special_use = None;
            }
            let id = self.add(INBOX.to_owned(), None, now_unix)?;
            if let Some(inbox) = self.mailboxes.iter_mut().find(|m| m.id == id) {
                inbox.subscribed = true;
            }
            return Ok(());
        }
        for m in &mut self.mailboxes {
            if is_self_or_child(&m.name, &from) {
                m.name = format!("{to}{}", &m.name[from.len()..]);
            }
        }
        Ok(())
    }

    /// Sets or clears the subscription of an existing mailbox.
    pub fn subscribe(&mut self, name: &str, subscribed: bool) -> Result<()> {
        let name = canonical(name)?;
        match self.get_mut(&name) {
            Some(m) => {
                m.subscribed = subscribed;
                Ok(())
            }
            None => Err(StoreError::NoSuchMailbox { name }),
        }
    }

    /// Sets or clears the special-use attribute of an existing mailbox.
    pub fn set_special_use(&mut self, name: &str, special_use: Option<SpecialUse>) -> Result<()> {
        let name = canonical(name)?;
        match self.get_mut(&name) {
            Some(m) => {
                m.special_use = special_use;
                Ok(())
            }
            None => Err(StoreError::NoSuchMailbox { name }),
        }
    }

    /// Raises the bounds of mailbox `id` so that `uid_next` and `modseq` lie within them,
    /// with `uid_step`/`modseq_step` to spare. False when no change was needed (or the
    /// mailbox is gone).
    pub fn reserve(
        &mut self,
        id: u32,
        uid_next: u32,
        modseq: u64,
        uid_step: u32,
        modseq_step: u64,
    ) -> bool {
        let Some(m) = self.mailboxes.iter_mut().find(|m| m.id == id) else {
            return false;
        };
        let mut changed = false;
        if uid_next > m.uid_bound {
            m.uid_bound = uid_next.saturating_add(uid_step);
            changed = true;
        }
        if modseq > m.modseq_bound {
            m.modseq_bound = modseq.saturating_add(modseq_step);
            changed = true;
        }
        changed
    }

    /// True when some other mailbox lies below `name` (IMAP `\HasChildren`).
    pub fn has_children(&self, name: &str) -> bool {
        self.mailboxes
            .iter()
            .any(|m| m.name != name && is_self_or_child(&m.name, name))
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut owned: Vec<(String, String)> = vec![
            ("applied_seq".into(), self.applied_seq.to_string()),
            ("next_id".into(), self.next_id.to_string()),
            ("uidvalidity_next".into(), self.uidvalidity_next.to_string()),
        ];
        let mut sorted: Vec<&MailboxEntry> = self.mailboxes.iter().collect();
        sorted.sort_by_key(|m| m.id);
        for m in sorted {
            debug_assert!(m.id < self.next_id, "mailbox id at or above next_id");
            owned.push((
                format!("mailbox_{}", m.id),
                format!(
                    "{} {} {} {} {} {}",
                    m.uidvalidity,
                    u8::from(m.subscribed),
                    m.special_use.map_or("-", SpecialUse::as_word),
                    m.uid_bound,
                    m.modseq_bound,
                    m.name
                ),
            ));
        }
        let fields: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        textfile::encode(MAILBOXES_MAGIC, MAILBOXES_VERSION, &fields)
    }

    /// Parses the file; anything off is `Corrupt`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<MailboxList> {
        let (mut fields, version) =
            match textfile::decode(path, bytes, MAILBOXES_MAGIC, MAILBOXES_VERSION) {
                Ok(f) => (f, MAILBOXES_VERSION),
                Err(e) => {
                    match textfile::decode(path, bytes, MAILBOXES_MAGIC, MAILBOXES_VERSION_V1) {
                        Ok(f) => (f, MAILBOXES_VERSION_V1),
                        Err(_) => return Err(e),
                    }
                }
            };
        let mut take = |key: &str| textfile::take(path, &mut fields, key);
        let applied_seq = textfile::number(path, "applied_seq", take("applied_seq")?)?;
        let next_id: u32 = textfile::number(path, "next_id", take("next_id")?)?;
        let uidvalidity_next =
            textfile::number(path, "uidvalidity_next", take("uidvalidity_next")?)?;
        let corrupt = |reason: String| StoreError::corrupt(path, reason);
        let mut mailboxes: Vec<MailboxEntry> = Vec::with_capacity(fields.len());
        for (key, value) in fields {
            let id: u32 = key
                .strip_prefix("mailbox_")
                .ok_or_else(|| corrupt(format!("unknown key {key}")))
                .and_then(|id| textfile::number(path, key, id))?;
            let fields_before_name = if version == MAILBOXES_VERSION_V1 {
                3
            } else {
                5
            };
            let mut parts = value.splitn(fields_before_name + 1, ' ');
            let mut next = || parts.next().unwrap_or_default();
            let (uidvalidity, subscribed, special) = (next(), next(), next());
            let (uid_bound, modseq_bound) = if version == MAILBOXES_VERSION_V1 {
                (0, 0)
            } else {
                let (u, m) = (next(), next());
                (
                    textfile::number(path, key, u)?,
                    textfile::number(path, key, m)?,
                )
            };
            let name = next();
            let uidvalidity = textfile::number(path, key, uidvalidity)?;
            let subscribed = match subscribed {
                "0" => false,
                "1" => true,
                other => return Err(corrupt(format!("{key}: subscribed is {other:?}"))),
            };
            let special_use = match special {
                "-" => None,
                word => Some(
                    SpecialUse::parse(word)
                        .ok_or_else(|| corrupt(format!("{key}: special-use {word:?}")))?,
                ),
            };
            let canon = canonical(name).map_err(|e| corrupt(format!("{key}: {e}")))?;
            if canon != name || id == 0 || id >= next_id {
                return Err(corrupt(format!("{key}: bad id or name {name:?}")));
            }
            if mailboxes.iter().any(|m| m.name == name || m.id >= id) {
                return Err(corrupt(format!("{key}: duplicate or out of order")));
            }
            mailboxes.push(MailboxEntry {
                id,
                name: name.to_owned(),
                uidvalidity,
                subscribed,
                special_use,
                uid_bound,
                modseq_bound,
            });
        }
        if !mailboxes.iter().any(|m| m.name == INBOX) {
            return Err(corrupt("no INBOX".into()));
        }
        let _ = SEPARATOR;
        Ok(MailboxList {
            applied_seq,
            next_id,
            uidvalidity_next,
            mailboxes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("mailboxes")
    }

    #[test]
    fn known_answer_bytes() -> Result<()> {
        let mut list = MailboxList::default_for(1_700_000_000);
        list.create("Sent", Some(SpecialUse::Sent), 1_700_000_000)?;
        list.subscribe("Sent", true)?;
        list.applied_seq = 7;
        assert!(list.reserve(1, 1, 2, 1024, 1024));
        assert!(!list.reserve(1, 1025, 1026, 1024, 1024));
        let bytes = list.to_bytes()?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = "msgstore-mailboxes 2\napplied_seq 7\nnext_id 3\n\
                    uidvalidity_next 1700000002\nmailbox_1 1700000000 1 - 1025 1026 INBOX\n\
                    mailbox_2 1700000001 1 sent 0 0 Sent\n";
        assert_eq!(
            text,
            format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()))
        );
        assert_eq!(MailboxList::parse(p(), &bytes)?, list);
        // Version 1 (no bounds) is still read, with unknown (0) bounds.
        let v1 = "msgstore-mailboxes 1\napplied_seq 7\nnext_id 3\n\
                  uidvalidity_next 1700000002\nmailbox_1 1700000000 1 - INBOX\n\
                  mailbox_2 1700000001 1 sent My Sent\n";
        let v1 = format!("{v1}crc32 {:08x}\n", crc32fast::hash(v1.as_bytes()));
        let old = MailboxList::parse(p(), v1.as_bytes())?;
        assert_eq!(old.mailboxes[1].name, "My Sent");
        assert_eq!(
            (old.mailboxes[0].uid_bound, old.mailboxes[0].modseq_bound),
            (0, 0)
        );
        Ok(())
    }

    #[test]
    fn create_delete_rename() -> Result<()> {
        let mut list = MailboxList::default_for(100);
        assert_eq!(list.create("a/b/c", None, 5)?, vec![2, 3, 4]);
        assert!(matches!(list.create("A/../x", None, 5).map(|_| ()), Ok(())));
        assert!(matches!(
            list.create("a/b", None, 5),
            Err(StoreError::MailboxExists { .. })
        ));
        assert!(matches!(
            list.delete("a/b"),
            Err(StoreError::MailboxNotAllowed { .. })
        ));
        assert!(matches!(
            list.delete("inbox"),
            Err(StoreError::MailboxNotAllowed { .. })
        ));
        list.rename("a", "z/y", 5)?;
        let names: Vec<&str> = list.mailboxes.iter().map(|m| m.name.as_str()).collect();
        assert!(names.contains(&"z/y/b/c") && names.contains(&"z") && !names.contains(&"a"));
        assert_eq!(list.get_or("z/y/b")?.id, 3);
        assert!(matches!(
            list.rename("z", "z/q", 5),
            Err(StoreError::MailboxNotAllowed { .. })
        ));
        // Renaming INBOX keeps its id (its messages) under the new name; a new INBOX appears.
        list.rename("Inbox", "Old", 5)?;
        assert_eq!(list.get_or("Old")?.id, INBOX_ID);
        let inbox = list.get_or("INBOX")?;
        assert!(inbox.id > INBOX_ID && inbox.uidvalidity != 100);
        // UIDVALIDITY never repeats within a user.
        let mut seen: Vec<u32> = list.mailboxes.iter().map(|m| m.uidvalidity).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), list.mailboxes.len());
        assert_eq!(list.delete("z/y/b/c")?, 4);
        let again = MailboxList::parse(p(), &list.to_bytes()?)?;
        assert_eq!(again, list);
        Ok(())
    }

    #[test]
    fn damage_is_corrupt() -> Result<()> {
        let bytes = MailboxList::default_for(1).to_bytes()?;
        for len in 0..bytes.len() {
            assert!(MailboxList::parse(p(), &bytes[..len]).is_err());
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(MailboxList::parse(p(), &b).is_err(), "flip {i}");
        }
        Ok(())
    }

    impl MailboxList {
        fn get_or(&self, name: &str) -> Result<&MailboxEntry> {
            self.get(name)
                .ok_or(StoreError::NoSuchMailbox { name: name.into() })
        }
    }
}
