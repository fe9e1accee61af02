//! Moving an authenticated connection to the shard that owns its user (DESIGN §2):
//! the socket, the bytes already read but not parsed, and the session state travel
//! in one mesh message.
//!
//! glommio 0.9's `TcpStream` cannot give up its fd, so the fd is duplicated
//! (close-on-exec) and the original stream dropped; the owner rebuilds a stream from
//! the duplicate. Only a `NonBuffered` stream is handed off: a buffered one would
//! hold bytes the owner never sees.
#![allow(unsafe_code)]

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use glommio::net::TcpStream;

use crate::config::Service;
use store::Address;

/// Everything a session needs to continue on another shard. `Send`.
pub struct Handoff {
    pub fd: OwnedFd,
    pub peer: SocketAddr,
    pub service: Service,
    pub user: Address,
    /// The shard the connection was accepted on, for the statistics.
    pub from_shard: usize,
    /// The live TLS session, when the connection is encrypted.
    pub tls: Option<crate::conn::TlsState>,
    pub session: SessionHandoff,
}

pub enum SessionHandoff {
    Imap(Box<protocols::imap::ImapHandoff>),
    Pop3(Box<protocols::pop3::Pop3Handoff>),
}

/// Detaches the socket from this shard's executor.
pub fn detach(stream: TcpStream) -> std::io::Result<OwnedFd> {
    // SAFETY: `stream` owns this fd and is alive for the whole borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let dup = rustix::io::fcntl_dupfd_cloexec(borrowed, 0)?;
    drop(stream);
    Ok(dup)
}

/// Binds a handed-off socket to the current shard's executor.
pub fn attach(fd: OwnedFd) -> TcpStream {
    // SAFETY: `into_raw_fd` gives up ownership of a valid, open socket fd; the new
    // stream becomes its only owner.
    unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }
}
