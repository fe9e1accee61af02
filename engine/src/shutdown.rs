//! A shard-local stop signal: services and sessions wait on it next to their I/O.
//! Local to one executor (`Rc`), so no atomics.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Rc<RefCell<Inner>>,
}

#[derive(Default)]
struct Inner {
    triggered: bool,
    waiters: Vec<Waker>,
}

impl Shutdown {
    pub fn trigger(&self) {
        let waiters = {
            let mut inner = self.inner.borrow_mut();
            inner.triggered = true;
            std::mem::take(&mut inner.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.borrow().triggered
    }

    /// Resolves once `trigger` has been called.
    pub fn wait(&self) -> Wait {
        Wait {
            inner: self.inner.clone(),
        }
    }
}

pub struct Wait {
    inner: Rc<RefCell<Inner>>,
}

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.inner.borrow_mut();
        if inner.triggered {
            Poll::Ready(())
        } else {
            if !inner.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                inner.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        }
    }
}
