//! Mailbox names: UTF-8, hierarchy separator `/`, `INBOX` case-insensitive.
//!
//! Names are never paths: a mailbox's files live under `mail/<id>/`, so a name only has
//! to be something a client can send back and a `mailboxes` line can hold.

use crate::error::{Result, StoreError};
use crate::limits::{MAILBOX_COMPONENT_BYTES_MAX, MAILBOX_DEPTH_MAX, MAILBOX_NAME_BYTES_MAX};

/// The hierarchy separator.
pub const SEPARATOR: char = '/';
/// The one mailbox every user has.
pub const INBOX: &str = "INBOX";

/// Validates a name and returns its canonical form: a first component that is `inbox` in
/// any case becomes `INBOX` (RFC 3501 §5.1), everything else is kept as given.
pub fn canonical(name: &str) -> Result<String> {
    let bad = |reason| StoreError::InvalidMailboxName {
        name: name.chars().take(80).collect(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.len() > MAILBOX_NAME_BYTES_MAX {
        return Err(bad("name too long"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("control character in name"));
    }
    let mut depth = 0;
    for component in name.split(SEPARATOR) {
        depth += 1;
        if component.is_empty() {
            return Err(bad("empty hierarchy component"));
        }
        if component.len() > MAILBOX_COMPONENT_BYTES_MAX {
            return Err(bad("hierarchy component too long"));
        }
        if component.trim() != component {
            return Err(bad("component starts or ends with white space"));
        }
    }
    if depth > MAILBOX_DEPTH_MAX {
        return Err(bad("hierarchy too deep"));
    }
    let (first, rest) = match name.split_once(SEPARATOR) {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    if first.eq_ignore_ascii_case(INBOX) {
        return Ok(match rest {
            Some(rest) => format!("{INBOX}{SEPARATOR}{rest}"),
            None => INBOX.to_owned(),
        });
    }
    Ok(name.to_owned())
}

/// True when `name` is `parent` or lies below it.
pub fn is_self_or_child(name: &str, parent: &str) -> bool {
    name == parent
        || (name.len() > parent.len()
            && name.starts_with(parent)
            && name[parent.len()..].starts_with(SEPARATOR))
}

/// The names of every ancestor of `name`, outermost first (`a`, `a/b` for `a/b/c`).
pub fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(SEPARATOR).map(move |(i, _)| &name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("inbox").ok().as_deref(), Some("INBOX"));
        assert_eq!(canonical("InBox/Sub").ok().as_deref(), Some("INBOX/Sub"));
        assert_eq!(canonical("Inboxes").ok().as_deref(), Some("Inboxes"));
        assert_eq!(
            canonical("Ünïcödé/日本").ok().as_deref(),
            Some("Ünïcödé/日本")
        );
        for bad in [
            "", "/a", "a/", "a//b", "a\0b", "a\nb", "a\u{7f}", " a", "a/b ",
        ] {
            assert!(canonical(bad).is_err(), "{bad:?}");
        }
        assert!(canonical(&"x".repeat(MAILBOX_NAME_BYTES_MAX + 1)).is_err());
        assert!(canonical(&"x".repeat(MAILBOX_COMPONENT_BYTES_MAX + 1)).is_err());
        assert!(canonical(&vec!["a"; MAILBOX_DEPTH_MAX + 1].join("/")).is_err());
        assert!(canonical(&vec!["a"; MAILBOX_DEPTH_MAX].join("/")).is_ok());
    }

    #[test]
    fn hierarchy() {
        assert!(is_self_or_child("a/b", "a"));
        assert!(is_self_or_child("a", "a"));
        assert!(!is_self_or_child("ab", "a"));
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(ancestors("a").count(), 0);
    }
}
