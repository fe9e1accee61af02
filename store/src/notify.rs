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
    pub fn watch(&mut self, user: &Address, mailbox: u32, highest_modseq: u64) {
        let ch = self.channels.entry((user.clone(), mailbox)).or_default();
        if ch.highest == 0 {
            ch.highest = highest_modseq;
            ch.truncated_at = highest_modseq;
        }
    }

    /// Stops watching when no session needs it any more.
    pub fn unwatch(&mut self, user: &Address, mailbox: u32) {
        self.channels.remove(&(user.clone(), mailbox));
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
    /// reaches back that far (the session re-reads the index instead).
    pub fn changes_since(&self, user: &Address, mailbox: u32, since: u64) -> Option<Vec<Change>> {
        let ch = self.channels.get(&(user.clone(), mailbox))?;
        if since < ch.truncated_at {
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
}
