//! Change notifications inside a shard (DESIGN §3): sessions with a mailbox open (and
//! IDLE) learn of new messages, expunges and flag changes as soon as they are applied.
//!
//! Per mailbox a bounded log of changes by modseq and the wakers of the sessions waiting.
//! Shard-local: plain owned data, woken with `std::task::Waker` (no atomics of ours).

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll, Waker};

use crate::address::Address;
use crate::limits::CHANGES_PER_MAILBOX_MAX;

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Appended,
    Expunged,
    Flags,
}

/// One change of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub modseq: u64,
    pub uid: u32,
    pub kind: ChangeKind,
}

#[derive(Debug, Default)]
struct Channel {
    log: VecDeque<Change>,
    /// Lowest modseq the log no longer holds changes above (readers older than this resync).
    truncated_at: u64,
    highest: u64,
    wakers: Vec<Waker>,
    /// Sessions with the mailbox selected; the channel goes when the last one leaves.
    watchers: u32,
}

/// Every watched mailbox of a shard, by (user, mailbox id).
#[derive(Debug, Default)]
pub struct Notifier {
    channels: HashMap<(Address, u32), Channel>,
}

impl Notifier {
    /// Records a change and wakes every waiting session of the mailbox.
    pub fn publish(&mut self, user: &Address, mailbox: u32, change: Change) {
        let Some(ch) = self.channels.get_mut(&(user.clone(), mailbox)) else {
            return;
        };
        if ch.log.len() >= CHANGES_PER_MAILBOX_MAX
            && let Some(old) = ch.log.pop_front()
        {
            ch.truncated_at = ch.truncated_at.max(old.modseq);
        }
        ch.log.push_back(change);
        ch.highest = ch.highest.max(change.modseq);
        for w in ch.wakers.drain(..) {
            w.wake();
        }
    }

    /// Starts keeping changes of a mailbox from `highest_modseq` on (a session selects it).
    /// Each `watch` is paired with one [`Notifier::unwatch`].
    pub fn watch(&mut self, user: &Address, mailbox: u32, highest_modseq: u64) {
        let ch = self.channels.entry((user.clone(), mailbox)).or_default();
        if ch.watchers == 0 && ch.log.is_empty() {
            // A new channel (or one only a waiter created): the log starts here.
            ch.highest = ch.highest.max(highest_modseq);
            ch.truncated_at = ch.highest;
        }
        ch.watchers += 1;
    }

    /// One session stopped watching; the log goes with the last one.
    pub fn unwatch(&mut self, user: &Address, mailbox: u32) {
        let key = (user.clone(), mailbox);
        let Some(ch) = self.channels.get_mut(&key) else {
            return;
        };
        ch.watchers = ch.watchers.saturating_sub(1);
        if ch.watchers == 0 {
            self.channels.remove(&key);
        }
    }

    /// Ready with the mailbox's highest modseq once it is above `since`; otherwise the
    /// waker is kept and woken by the next `publish`.
    pub fn poll_change(
        &mut self,
        user: &Address,
        mailbox: u32,
        since: u64,
        cx: &mut Context<'_>,
    ) -> Poll<u64> {
        let ch = self.channels.entry((user.clone(), mailbox)).or_default();
        if ch.highest > since {
            return Poll::Ready(ch.highest);
        }
        if !ch.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            ch.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Changes with a modseq above `since`, oldest first; `None` when the log no longer
    /// reaches back that far (the session re-reads the index instead). Costs a walk of
    /// the log (at most `CHANGES_PER_MAILBOX_MAX`), never of the mailbox.
    pub fn changes_since(&self, user: &Address, mailbox: u32, since: u64) -> Option<Vec<Change>> {
        let ch = self.channels.get(&(user.clone(), mailbox))?;
        if since < ch.truncated_at || ch.watchers == 0 {
            return None;
        }
        Some(
            ch.log
                .iter()
                .filter(|c| c.modseq > since)
                .copied()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn wakes_and_logs() -> crate::Result<()> {
        let user = Address::parse("a@b.c")?;
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut n = Notifier::default();
        n.watch(&user, 1, 5);
        assert_eq!(n.poll_change(&user, 1, 5, &mut cx), Poll::Pending);
        let change = Change {
            modseq: 6,
            uid: 3,
            kind: ChangeKind::Appended,
        };
        n.publish(&user, 1, change);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(n.poll_change(&user, 1, 5, &mut cx), Poll::Ready(6));
        assert_eq!(n.changes_since(&user, 1, 5), Some(vec![change]));
        assert_eq!(n.changes_since(&user, 1, 4), None);
        Ok(())
    }

    #[test]
    fn log_lives_while_any_session_watches() -> crate::Result<()> {
        let user = Address::parse("a@b.c")?;
        let mut n = Notifier::default();
        n.watch(&user, 1, 5);
        n.watch(&user, 1, 5);
        let change = |modseq, kind| Change {
            modseq,
            uid: 7,
            kind,
        };
        n.publish(&user, 1, change(6, ChangeKind::Flags));
        n.unwatch(&user, 1);
        n.publish(&user, 1, change(7, ChangeKind::Expunged));
        assert_eq!(
            n.changes_since(&user, 1, 5),
            Some(vec![
                change(6, ChangeKind::Flags),
                change(7, ChangeKind::Expunged)
            ])
        );
        assert_eq!(n.changes_since(&user, 1, 6).map(|c| c.len()), Some(1));
        n.unwatch(&user, 1);
        assert_eq!(n.changes_since(&user, 1, 5), None);
        // A later session starts a fresh log at its own snapshot.
        n.watch(&user, 1, 9);
        assert_eq!(n.changes_since(&user, 1, 9), Some(vec![]));
        assert_eq!(n.changes_since(&user, 1, 8), None);
        Ok(())
    }

    #[test]
    fn truncated_log_sends_readers_back_to_the_index() -> crate::Result<()> {
        let user = Address::parse("a@b.c")?;
        let mut n = Notifier::default();
        n.watch(&user, 1, 0);
        for m in 1..=(CHANGES_PER_MAILBOX_MAX as u64 + 10) {
            n.publish(
                &user,
                1,
                Change {
                    modseq: m,
                    uid: m as u32,
                    kind: ChangeKind::Appended,
                },
            );
        }
        assert_eq!(n.changes_since(&user, 1, 0), None);
        assert_eq!(n.changes_since(&user, 1, 5), None);
        let recent = n.changes_since(&user, 1, CHANGES_PER_MAILBOX_MAX as u64);
        assert_eq!(recent.map(|c| c.len()), Some(10));
        Ok(())
    }
}
