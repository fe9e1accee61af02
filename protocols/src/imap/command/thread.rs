//! THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES, over the messages
//! the search keys match, from precomputed keys
//! ([`SortKeys`](crate::imap::backend::SortKeys)).
//!
//! The answer equals Dovecot 2.3's (tests/tests/imap_sort.rs), so where Dovecot reads
//! the RFC its own way we do too:
//! - a message whose Message-ID another message already has is threaded as if it had
//!   none (the first keeps the id); References wins over In-Reply-To, which counts
//!   only when References has no valid id;
//! - a link that would make a loop is ignored, and a message's own References
//!   replace a parent an earlier message implied for it, but links between its
//!   references never replace one already there;
//! - children and roots sort by (sent date, else internal date; then UID), a dummy
//!   root by its oldest child; a dummy root with one child is replaced by the child
//!   before the subjects are gathered (step 5);
//! - ORDEREDSUBJECT sorts by (base subject, date, sequence) and orders threads by the
//!   date of their first message, then its number.

use std::collections::HashMap;

use crate::imap::backend::ImapBackend;
use crate::imap::command::search::{SearchKey, parse_keys};
use crate::imap::command::sort::{Item, SortCriterion, charset_known, sort_items};
use crate::imap::parser::{Cursor, ParseErrorKind};
use crate::imap::session::{Core, Status};
use crate::imap::types::Tag;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadArgs {
    pub uid: bool,
    pub algorithm: ThreadAlgorithm,
    /// Upper-cased; an unknown one is `NO [BADCHARSET]`.
    pub charset: String,
    pub key: SearchKey,
}

/// `SP thread-alg SP charset 1*(SP search-key)`
pub fn parse(input: &mut Cursor<'_>, uid: bool) -> Result<ThreadArgs, ParseErrorKind> {
    input.sp()?;
    let algorithm = match input.atom()?.to_ascii_uppercase().as_str() {
        "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
        "REFERENCES" => ThreadAlgorithm::References,
        _ => return Err(ParseErrorKind::InvalidArgument),
    };
    input.sp()?;
    let charset = String::from_utf8_lossy(input.astring()?.as_bytes()).to_ascii_uppercase();
    let key = parse_keys(input)?;
    Ok(ThreadArgs {
        uid,
        algorithm,
        charset,
        key,
    })
}

/// A thread tree node for output: a message number (0 for a dummy) and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tree {
    pub number: u32,
    pub children: Vec<Tree>,
}

/// Writes threads the way Dovecot does: `(1 2 (3)(4 5))`, a dummy root as `((1)(2))`.
pub(crate) fn write_threads(roots: &[Tree]) -> String {
    let mut out = String::from("THREAD ");
    for root in roots {
        write_node(&mut out, root);
    }
    out
}

/// One node among several siblings (or a root): parenthesised.
fn write_node(out: &mut String, node: &Tree) {
    if node.children.is_empty() {
        out.push_str(&format!("({})", node.number));
        return;
    }
    out.push('(');
    if node.number != 0 {
        out.push_str(&format!("{} ", node.number));
    }
    write_children(out, &node.children);
    out.push(')');
}

fn write_children(out: &mut String, children: &[Tree]) {
    if let [only] = children {
        out.push_str(&only.number.to_string());
        if !only.children.is_empty() {
            out.push(' ');
            write_children(out, &only.children);
        }
        return;
    }
    for child in children {
        write_node(out, child);
    }
}

/// ORDEREDSUBJECT: threads of equal base subject, each a root and its flat children.
pub(crate) fn ordered_subject(mut items: Vec<Item>, uid: bool) -> Vec<Tree> {
    sort_items(
        &mut items,
        &[
            (SortCriterion::Subject, false),
            (SortCriterion::Date, false),
        ],
    );
    let number = |i: &Item| if uid { i.uid } else { i.seq };
    let mut threads: Vec<(i64, Vec<u32>)> = Vec::new();
    let mut prev: Option<&str> = None;
    for item in &items {
        if prev != Some(item.keys.subject.as_str()) || threads.is_empty() {
            threads.push((item.date(), Vec::new()));
        }
        prev = Some(item.keys.subject.as_str());
        if let Some(t) = threads.last_mut() {
            t.1.push(number(item));
        }
    }
    threads.sort_by(|a, b| (a.0, a.1.first()).cmp(&(b.0, b.1.first())));
    threads
        .into_iter()
        .filter_map(|(_, msgs)| {
            let (&first, rest) = msgs.split_first()?;
            Some(Tree {
                number: first,
                children: rest
                    .iter()
                    .map(|&n| Tree {
                        number: n,
                        children: Vec::new(),
                    })
                    .collect(),
            })
        })
        .collect()
}

/// A node of the REFERENCES id table: a message (`item`) or a dummy.
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    item: Option<usize>,
    parent: usize,
    /// Some node has this one as parent (so it may be an ancestor).
    has_children: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Root {
    idx: usize,
    /// Sort position: the date and UID of the message (a dummy: its oldest child's).
    date: i64,
    uid: u32,
    dummy: bool,
    ignore: bool,
    root_idx1: usize,
    parent_root_idx1: usize,
    reply_or_forward: bool,
}

struct Threader<'a> {
    items: &'a [Item],
    /// Index 0 is unused: 0 means "no parent".
    nodes: Vec<Node>,
    /// Children of each node in the output tree (dummies between messages skipped).
    children: Vec<Vec<usize>>,
    roots: Vec<Root>,
}

impl<'a> Threader<'a> {
    fn exists(&self, idx: usize) -> bool {
        self.nodes[idx].item.is_some()
    }

    fn has_ancestor(&self, mut node: usize, ancestor: usize) -> bool {
        // A node nobody links to is nobody's ancestor: replies arriving in order
        // then cost nothing to link, however long the chain.
        if node != ancestor && !self.nodes[ancestor].has_children {
            return false;
        }
        while node != ancestor {
            node = self.nodes[node].parent;
            if node == 0 {
                return false;
            }
        }
        true
    }

    fn link(&mut self, parent: usize, child: usize) {
        if self.has_ancestor(parent, child) {
            // A loop (or a message referencing itself): ignored.
            return;
        }
        if self.nodes[child].parent == 0 {
            self.nodes[child].parent = parent;
            self.nodes[parent].has_children = true;
        }
        // Otherwise the first parent found is kept.
    }

    /// Step (1): the id table and parent links, messages in UID order.
    fn build(&mut self) {
        let mut ids: HashMap<&'a str, usize> = HashMap::new();
        let items = self.items;
        let mut id_of = |nodes: &mut Vec<Node>, id: &'a str| -> usize {
            if let Some(&idx) = ids.get(id) {
                return idx;
            }
            nodes.push(Node::default());
            ids.insert(id, nodes.len() - 1);
            nodes.len() - 1
        };
        for (n, item) in items.iter().enumerate() {
            let own = match &item.keys.message_id {
                Some(id) => {
                    let idx = id_of(&mut self.nodes, id);
                    if self.nodes[idx].item.is_none() {
                        idx
                    } else {
                        self.nodes.push(Node::default());
                        self.nodes.len() - 1
                    }
                }
                None => {
                    self.nodes.push(Node::default());
                    self.nodes.len() - 1
                }
            };
            self.nodes[own].item = Some(n);
            let refs: Vec<usize> = item
                .keys
                .references
                .iter()
                .map(|r| id_of(&mut self.nodes, r))
                .collect();
            for pair in refs.windows(2) {
                self.link(pair[0], pair[1]);
            }
            let parent = refs.last().copied().unwrap_or(0);
            if self.nodes[own].parent != parent && self.nodes[own].parent != 0 {
                self.nodes[own].parent = 0;
            }
            if parent != 0 {
                self.link(parent, own);
            }
        }
    }

    /// Steps (2)-(3): roots, and children attached to their first existing ancestor.
    fn shadows(&mut self) {
        self.children = vec![Vec::new(); self.nodes.len()];
        for idx in 1..self.nodes.len() {
            let node = self.nodes[idx];
            if node.parent == 0 {
                self.roots.push(Root {
                    idx,
                    dummy: node.item.is_none(),
                    ..Root::default()
                });
                continue;
            }
            if node.item.is_none() {
                continue;
            }
            let mut parent = node.parent;
            while !self.exists(parent) && self.nodes[parent].parent != 0 {
                parent = self.nodes[parent].parent;
            }
            self.children[parent].push(idx);
        }
    }

    /// (date, uid) of the message at a node.
    fn position(&self, idx: usize) -> (i64, u32) {
        match self.nodes.get(idx).and_then(|n| n.item) {
            Some(i) => (self.items[i].date(), self.items[i].uid),
            None => (0, 0),
        }
    }

    fn sorted_children(&self, idx: usize) -> Vec<usize> {
        let mut kids = self.children[idx].clone();
        kids.sort_by_key(|&c| self.position(c));
        kids
    }

    /// Step (4): roots by date, a dummy by its oldest child, a lone child promoted.
    fn sort_roots(&mut self) {
        for i in 0..self.roots.len() {
            let root = self.roots[i];
            if root.ignore {
                continue;
            }
            if root.dummy {
                let kids = self.sorted_children(root.idx);
                match kids.as_slice() {
                    [] => self.roots[i].ignore = true,
                    [only] => {
                        let (date, uid) = self.position(*only);
                        let r = &mut self.roots[i];
                        (r.idx, r.date, r.uid, r.dummy) = (*only, date, uid, false);
                    }
                    [first, ..] => {
                        let (date, uid) = self.position(*first);
                        (self.roots[i].date, self.roots[i].uid) = (date, uid);
                    }
                }
            } else {
                let (date, uid) = self.position(root.idx);
                (self.roots[i].date, self.roots[i].uid) = (date, uid);
            }
        }
        self.roots.sort_by_key(|r| (r.date, r.uid));
    }

    /// Step (5)(A)-(B): the subject table.
    fn gather_subjects(&mut self) {
        let mut table: HashMap<String, usize> = HashMap::new();
        for i in 0..self.roots.len() {
            self.roots[i].root_idx1 = i + 1;
            let root = self.roots[i];
            let idx = if !root.dummy {
                root.idx
            } else if !root.ignore {
                match self.sorted_children(root.idx).first() {
                    Some(&c) => c,
                    None => continue,
                }
            } else {
                continue;
            };
            let Some(item) = self.nodes[idx].item.map(|n| &self.items[n]) else {
                continue;
            };
            let subject = &item.keys.subject;
            if subject.is_empty() {
                continue;
            }
            let refwd = item.keys.reply_or_forward;
            match table.get(subject).copied() {
                None => {
                    table.insert(subject.clone(), i);
                }
                Some(h) => {
                    let held = self.roots[h];
                    if !held.dummy && (root.dummy || (held.reply_or_forward && !refwd)) {
                        self.roots[h].parent_root_idx1 = self.roots[i].root_idx1;
                        table.insert(subject.clone(), i);
                    } else {
                        self.roots[i].parent_root_idx1 = held.root_idx1;
                    }
                }
            }
            self.roots[i].reply_or_forward = refwd;
        }
    }

    /// Step (5)(C): one root merged into the thread of its subject.
    fn merge(&mut self, cur: usize) {
        // The chain of subject-table replacements ends at a root without a parent;
        // bounded by the number of roots all the same.
        let mut top = cur;
        for _ in 0..self.roots.len() {
            top = self.roots[top].parent_root_idx1.saturating_sub(1);
            if self.roots[top].parent_root_idx1 == 0 {
                break;
            }
        }
        let (c, t) = (self.roots[cur], self.roots[top]);
        if c.dummy {
            let moved = std::mem::take(&mut self.children[c.idx]);
            self.children[t.idx].extend(moved);
            self.roots[cur].ignore = true;
        } else if t.dummy || (c.reply_or_forward && !t.reply_or_forward) {
            self.children[t.idx].push(c.idx);
            self.roots[cur].ignore = true;
        } else {
            self.nodes.push(Node::default());
            self.children.push(vec![t.idx, c.idx]);
            let idx = self.nodes.len() - 1;
            let root_idx1 = self.roots.len() + 1;
            self.roots[top].parent_root_idx1 = root_idx1;
            self.roots[top].ignore = true;
            self.roots[cur].ignore = true;
            self.roots.push(Root {
                idx,
                dummy: true,
                root_idx1,
                ..Root::default()
            });
        }
    }

    fn merge_subjects(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.roots.len() {
            if self.roots[i].parent_root_idx1 != 0 && !self.roots[i].ignore {
                self.merge(i);
                changed = true;
            }
        }
        changed
    }

    fn number(&self, idx: usize, uid: bool) -> u32 {
        match self.nodes.get(idx).and_then(|n| n.item) {
            Some(i) if uid => self.items[i].uid,
            Some(i) => self.items[i].seq,
            None => 0,
        }
    }

    /// Writes the threads as [`write_threads`] does, with an explicit stack: a reply
    /// chain may be as deep as the mailbox is long.
    fn write(&self, roots: &[usize], uid: bool) -> String {
        enum Work {
            /// A node among siblings (or a root): parenthesised.
            Node(usize),
            /// The children of a node.
            Children(usize),
            Close,
        }
        let mut out = String::from("THREAD ");
        let mut stack: Vec<Work> = roots.iter().rev().map(|&r| Work::Node(r)).collect();
        while let Some(work) = stack.pop() {
            match work {
                Work::Close => out.push(')'),
                Work::Node(idx) => {
                    let number = self.number(idx, uid);
                    if self.children[idx].is_empty() {
                        out.push_str(&format!("({number})"));
                        continue;
                    }
                    out.push('(');
                    if number != 0 {
                        out.push_str(&format!("{number} "));
                    }
                    stack.push(Work::Close);
                    stack.push(Work::Children(idx));
                }
                Work::Children(idx) => {
                    let kids = self.sorted_children(idx);
                    if let [only] = kids.as_slice() {
                        out.push_str(&self.number(*only, uid).to_string());
                        if !self.children[*only].is_empty() {
                            out.push(' ');
                            stack.push(Work::Children(*only));
                        }
                    } else {
                        stack.extend(kids.iter().rev().map(|&k| Work::Node(k)));
                    }
                }
            }
        }
        out
    }
}

/// REFERENCES (RFC 5256 §3, as Dovecot does it): `items` in mailbox order; the
/// THREAD line.
pub(crate) fn references(items: &[Item], uid: bool) -> String {
    let mut t = Threader {
        items,
        nodes: vec![Node::default()],
        children: Vec::new(),
        roots: Vec::new(),
    };
    t.build();
    t.shadows();
    t.sort_roots();
    t.gather_subjects();
    if t.merge_subjects() {
        t.sort_roots();
    }
    let roots: Vec<usize> = t
        .roots
        .iter()
        .filter(|r| !r.ignore)
        .filter(|r| !r.dummy || !t.children[r.idx].is_empty())
        .map(|r| r.idx)
        .collect();
    t.write(&roots, uid)
}

impl Core {
    pub(crate) fn thread(&mut self, tag: &Tag, args: ThreadArgs, backend: &mut dyn ImapBackend) {
        if !charset_known(&args.charset) {
            return self.respond(
                Some(tag),
                Status::No,
                "[BADCHARSET (US-ASCII UTF-8)] Unknown charset",
            );
        }
        let items = match self.sort_items(&args.key, backend) {
            Ok(items) => items,
            Err(text) => return self.respond(Some(tag), Status::No, &text),
        };
        let line = match args.algorithm {
            ThreadAlgorithm::OrderedSubject => write_threads(&ordered_subject(items, args.uid)),
            ThreadAlgorithm::References => references(&items, args.uid),
        };
        self.untagged(&line);
        self.respond(Some(tag), Status::Ok, "THREAD completed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: u32) -> Tree {
        Tree {
            number: n,
            children: Vec::new(),
        }
    }

    fn item(n: u32, id: &str, refs: &[&str]) -> Item {
        Item {
            seq: n,
            uid: n,
            modseq: 1,
            internaldate: i64::from(n),
            size: 1,
            keys: crate::imap::backend::SortKeys {
                message_id: Some(id.to_owned()),
                references: refs.iter().map(|r| (*r).to_owned()).collect(),
                ..Default::default()
            },
        }
    }

    /// A reply chain as deep as a mailbox is long: linked in linear time and written
    /// without recursion.
    #[test]
    fn deep_chains_do_not_recurse() {
        let n = 100_000u32;
        let ids: Vec<String> = (0..=n).map(|i| format!("{i}@x")).collect();
        let items: Vec<Item> = (1..=n)
            .map(|i| item(i, &ids[i as usize], &[&ids[i as usize - 1]]))
            .collect();
        let line = references(&items, true);
        assert!(line.starts_with("THREAD (1 2 3 4 "), "{}", &line[..40]);
        assert!(line.ends_with(" 99999 100000)"));
    }

    #[test]
    fn loops_and_duplicates() {
        let items = [
            item(1, "a@x", &["b@x"]),
            item(2, "b@x", &["a@x"]),
            item(3, "a@x", &[]),
            item(4, "c@x", &["c@x"]),
        ];
        assert_eq!(references(&items, false), "THREAD (2 1)(3)(4)");
    }

    #[test]
    fn writes_like_dovecot() {
        let chain = Tree {
            number: 1,
            children: vec![Tree {
                number: 2,
                children: vec![leaf(3), leaf(4)],
            }],
        };
        let dummy = Tree {
            number: 0,
            children: vec![leaf(5), leaf(6)],
        };
        assert_eq!(
            write_threads(&[chain, dummy, leaf(7)]),
            "THREAD (1 2 (3)(4))((5)(6))(7)"
        );
        assert_eq!(write_threads(&[]), "THREAD ");
    }
}
