//! A shard-local, reusable wake-up: `notify` wakes every task waiting at that
//! moment. Waiters capture the generation when they start waiting, so a notify
//! between a check and the wait is never lost. Single-threaded (`Rc`), no atomics.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Clone, Default)]
pub struct LocalEvent {
    inner: Rc<RefCell<Inner>>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    waiters: Vec<Waker>,
}

impl LocalEvent {
    pub fn notify(&self) {
        let waiters = {
            let mut inner = self.inner.borrow_mut();
            inner.generation = inner.generation.wrapping_add(1);
            std::mem::take(&mut inner.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    /// Resolves at the next `notify` after this call.
    pub fn wait(&self) -> Wait {
        Wait {
            inner: self.inner.clone(),
            generation: self.inner.borrow().generation,
        }
    }
}

pub struct Wait {
    inner: Rc<RefCell<Inner>>,
    generation: u64,
}

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.inner.borrow_mut();
        if inner.generation != self.generation {
            return Poll::Ready(());
        }
        if !inner.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            inner.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
