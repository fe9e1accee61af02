//! LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9) with LIST-EXTENDED (RFC 5258),
//! CHILDREN, SPECIAL-USE (RFC 6154) and LIST-STATUS (RFC 5819).

use crate::imap::backend::{ImapBackend, MailboxInfo};
use crate::imap::command::status::{StatusItem, format_items, items as status_items};
use crate::imap::limits::{IMAP_LIST_PATTERNS_MAX, IMAP_LIST_STATUS_MAX};
use crate::imap::mailbox_name::{self, SEPARATOR};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{Core, Status};
use crate::imap::types::{AString, Tag, is_astring_char};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListArgs {
    pub lsub: bool,
    /// Selection options were given or RETURN was: LIST-EXTENDED rules apply.
    pub extended: bool,
    pub select_subscribed: bool,
    pub select_special_use: bool,
    pub recursive_match: bool,
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    pub return_status: Option<Vec<StatusItem>>,
    pub reference: Option<AString>,
    pub patterns: Vec<AString>,
}

/// `list-mailbox`: `1*list-char / string`.
fn list_mailbox(input: &mut Cursor<'_>) -> Result<AString, ParseErrorKind> {
    match input.peek() {
        Some(b'"' | b'{') => input.string(),
        _ => {
            let text = input.take_while(|b| is_astring_char(b) || b == b'%' || b == b'*');
            if text.is_empty() {
                return Err(if input.at_eol() {
                    ParseErrorKind::MissingArgument
                } else {
                    ParseErrorKind::InvalidArgument
                });
            }
            AString::new(text.to_vec()).map_err(|_| ParseErrorKind::InvalidArgument)
        }
    }
}

fn options(
    input: &mut Cursor<'_>,
    mut each: impl FnMut(&str, &mut Cursor<'_>) -> Result<(), ParseErrorKind>,
) -> Result<(), ParseErrorKind> {
    input.expect(b'(')?;
    while input.peek() != Some(b')') {
        let name = input.atom()?.to_ascii_uppercase();
        each(name.as_str(), input)?;
        if input.peek() == Some(b' ') {
            input.sp()?;
        } else {
            break;
        }
    }
    input.expect(b')')
}

/// `SP [list-select-opts SP] mailbox SP mbox-or-pat [SP list-return-opts]`
pub fn parse(input: &mut Cursor<'_>, lsub: bool) -> Result<ListArgs, ParseErrorKind> {
    let mut args = ListArgs {
        lsub,
        ..ListArgs::default()
    };
    input.sp()?;
    if !lsub && input.peek() == Some(b'(') {
        args.extended = true;
        options(input, |name, _| {
            match name {
                "SUBSCRIBED" => args.select_subscribed = true,
                "SPECIAL-USE" => args.select_special_use = true,
                "RECURSIVEMATCH" => args.recursive_match = true,
                "REMOTE" => {}
                _ => return Err(ParseErrorKind::InvalidArgument),
            }
            Ok(())
        })?;
        input.sp()?;
        if args.recursive_match && !args.select_subscribed && !args.select_special_use {
            // RFC 5258 §3: RECURSIVEMATCH alone is an error.
            return Err(ParseErrorKind::InvalidArgument);
        }
    }
    args.reference = Some(input.astring()?);
    input.sp()?;
    if !lsub && input.peek() == Some(b'(') {
        args.extended = true;
        input.expect(b'(')?;
        loop {
            if args.patterns.len() == IMAP_LIST_PATTERNS_MAX {
                return Err(ParseErrorKind::InvalidArgument);
            }
            args.patterns.push(list_mailbox(input)?);
            if input.peek() == Some(b')') {
                break;
            }
            input.sp()?;
        }
        input.expect(b')')?;
    } else {
        args.patterns.push(list_mailbox(input)?);
    }
    if !lsub && !input.at_eol() {
        input.sp()?;
        let word = input.atom()?.to_ascii_uppercase();
        if word.as_str() != "RETURN" {
            return Err(ParseErrorKind::InvalidArgument);
        }
        input.sp()?;
        args.extended = true;
        let mut status = None;
        options(input, |name, input| {
            match name {
                "SUBSCRIBED" => args.return_subscribed = true,
                "CHILDREN" => args.return_children = true,
                "SPECIAL-USE" => args.return_special_use = true,
                "MYRIGHTS" => {}
                "STATUS" => {
                    input.sp()?;
                    status = Some(status_items(input)?);
                }
                _ => return Err(ParseErrorKind::InvalidArgument),
            }
            Ok(())
        })?;
        args.return_status = status;
    }
    Ok(args)
}

/// Whether `name` matches `pattern` (`*` anything, `%` anything but the separator).
pub fn matches(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|i| matches(rest, &name[i..])),
        Some(('%', rest)) => {
            for i in 0..=name.len() {
                if matches(rest, &name[i..]) {
                    return true;
                }
                if name.get(i) == Some(&SEPARATOR) {
                    return false;
                }
            }
            false
        }
        Some((c, rest)) => name.first() == Some(c) && matches(rest, &name[1..]),
    }
}

/// One row of the answer.
struct Row {
    info: MailboxInfo,
    has_children: bool,
    child_subscribed: bool,
}

impl Core {
    pub(crate) fn list(&mut self, tag: &Tag, args: &ListArgs, backend: &mut dyn ImapBackend) {
        let verb = if args.lsub { "LSUB" } else { "LIST" };
        let reference = match &args.reference {
            Some(r) => match mailbox_name::from_wire(r.as_bytes(), self.enabled.utf8) {
                Ok(r) => r,
                Err(_) => return self.respond(Some(tag), Status::Bad, "Invalid reference"),
            },
            None => String::new(),
        };
        let mut patterns = Vec::new();
        for p in &args.patterns {
            let Ok(text) = mailbox_name::from_wire(p.as_bytes(), self.enabled.utf8) else {
                return self.respond(Some(tag), Status::Bad, "Invalid mailbox pattern");
            };
            if text.is_empty() && !args.extended && args.patterns.len() == 1 {
                // `LIST "" ""`: the hierarchy separator and root.
                if !args.lsub {
                    self.untagged("LIST (\\Noselect) \"/\" \"\"");
                }
                return self.respond(Some(tag), Status::Ok, &format!("{verb} completed"));
            }
            let full = mailbox_name::canonical_inbox(&format!("{reference}{text}"));
            patterns.push(full.chars().collect::<Vec<char>>());
        }
        let mailboxes = match backend.list() {
            Ok(list) => list,
            Err(error) => return self.respond(Some(tag), Status::No, &error.response()),
        };
        let rows = tree(mailboxes);
        let subscribed_only = args.lsub || args.select_subscribed;
        let mut answered = 0usize;
        for row in &rows {
            let name: Vec<char> = row.info.name.chars().collect();
            if !patterns.iter().any(|p| matches(p, &name)) {
                continue;
            }
            let mut childinfo = false;
            if subscribed_only && !row.info.subscribed {
                if args.recursive_match && row.child_subscribed {
                    childinfo = true;
                } else if args.lsub
                    && row.child_subscribed
                    && !patterns.iter().all(|p| p.contains(&'*'))
                {
                    // LSUB with %: a parent of a subscribed child shows as \Noselect.
                } else {
                    continue;
                }
            }
            if args.select_special_use && row.info.special_use.is_none() {
                continue;
            }
            let mut attrs: Vec<&str> = Vec::new();
            if row.info.nonexistent && args.extended {
                attrs.push("\\NonExistent");
            } else if row.info.noselect || (args.lsub && !row.info.subscribed) {
                attrs.push("\\Noselect");
            }
            if !args.lsub && (!row.info.nonexistent || row.has_children) {
                attrs.push(if row.has_children {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            if (args.return_subscribed || args.select_subscribed) && row.info.subscribed {
                attrs.push("\\Subscribed");
            }
            if let Some(u) = row.info.special_use
                && !args.lsub
            {
                attrs.push(u.as_imap());
            }
            let mut line = format!(
                "{verb} ({}) \"/\" {}",
                attrs.join(" "),
                self.wire_name(&row.info.name)
            );
            if childinfo {
                line.push_str(" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            self.untagged(&line);
            answered += 1;
            if let Some(items) = &args.return_status
                && !row.info.noselect
                && !row.info.nonexistent
                && answered <= IMAP_LIST_STATUS_MAX
                && let Ok(status) = backend.status(&row.info.name)
            {
                let line = format!(
                    "STATUS {} ({})",
                    self.wire_name(&row.info.name),
                    format_items(items, &status)
                );
                self.untagged(&line);
            }
        }
        self.respond(Some(tag), Status::Ok, &format!("{verb} completed"));
    }
}

/// Every mailbox with the parents it implies (as `\Noselect` names), sorted, with
/// whether each has children and subscribed descendants.
fn tree(mailboxes: Vec<MailboxInfo>) -> Vec<Row> {
    let mut all: Vec<MailboxInfo> = mailboxes;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all.dedup_by(|a, b| a.name == b.name);
    let mut implied = Vec::new();
    for m in &all {
        let mut prefix = String::new();
        let parts: Vec<&str> = m.name.split(SEPARATOR).collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push(SEPARATOR);
            }
            prefix.push_str(part);
            if all
                .binary_search_by(|x| x.name.as_str().cmp(&prefix))
                .is_err()
            {
                implied.push(MailboxInfo {
                    name: prefix.clone(),
                    noselect: true,
                    nonexistent: true,
                    special_use: None,
                    subscribed: false,
                });
            }
        }
    }
    all.extend(implied);
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all.dedup_by(|a, b| a.name == b.name);
    let names: Vec<(String, bool, bool)> = all
        .iter()
        .map(|m| (m.name.clone(), m.nonexistent && !m.noselect, m.subscribed))
        .collect();
    all.into_iter()
        .map(|info| {
            let prefix = format!("{}{SEPARATOR}", info.name);
            let children = names.iter().filter(|(n, _, _)| n.starts_with(&prefix));
            let mut has_children = false;
            let mut child_subscribed = false;
            for (_, _, subscribed) in children {
                has_children = true;
                child_subscribed |= *subscribed;
            }
            Row {
                info,
                has_children,
                child_subscribed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        matches(&p, &n)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "a/b/c"));
        assert!(m("%", "abc"));
        assert!(!m("%", "a/b"));
        assert!(m("a/%", "a/b"));
        assert!(!m("a/%", "a/b/c"));
        assert!(m("a*c", "a/b/c"));
        assert!(m("INBOX", "INBOX"));
        assert!(!m("INBOX", "INBOX/x"));
    }
}
