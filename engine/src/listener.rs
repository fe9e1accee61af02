//! Listening sockets. glommio's `TcpListener::bind` sets SO_REUSEPORT but not
//! SO_REUSEADDR, so a restart fails while connections the old server closed sit in
//! TIME_WAIT on the port. The socket is made here with both, then given to glommio.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};

use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

use crate::limits::LISTEN_BACKLOG;

/// A listening socket on `addr` that every shard may bind too (SO_REUSEPORT).
pub fn bind_shared(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: `into_raw_fd` hands over a valid, bound and listening socket that
    // nothing else owns; the glommio listener becomes its only owner.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}
