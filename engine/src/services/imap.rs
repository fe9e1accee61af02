//! Drives a sans-IO `ImapSession` over a socket: reads feed `handle_input`, output
//! is written as it appears, and a LOGIN is checked by the user's owning shard. When
//! the owner is another shard, the connection moves there (`handoff`) with its
//! unparsed bytes, and the owner answers the LOGIN and runs the rest of the session.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use futures::future::{Either, select};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use protocols::imap::{ImapConfig, ImapEvent, ImapHandoff, ImapSession, LoginOutcome};
use store::Address;

use crate::config::Service;
use crate::handoff::{self, Handoff, SessionHandoff};
use crate::limits::READ_CHUNK_BYTES;
use crate::mesh::{AuthOutcome, Request, Response, Secret};
use crate::shard::{SessionGuard, Shard};

pub fn session_config() -> ImapConfig {
    ImapConfig {
        capabilities: vec!["IMAP4rev1".into(), "ID".into(), "LITERAL+".into()],
        capabilities_authenticated: vec!["IMAP4rev1".into(), "ID".into(), "LITERAL+".into()],
        login_allowed: true,
        server_name: "msgstore".into(),
    }
}

pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let guard = shard.register_session(Service::Imap, peer, None);
    let session = ImapSession::new(session_config());
    drive(shard, stream, peer, session, guard).await;
}

/// Continues a session handed over by another shard after its LOGIN succeeded.
pub async fn adopt(
    shard: Rc<Shard>,
    fd: OwnedFd,
    peer: SocketAddr,
    user: Address,
    state: ImapHandoff,
) {
    let stream = handoff::attach(fd);
    let mut session = ImapSession::from_handoff(state);
    session.login_result(LoginOutcome::Ok {
        user: user.to_string(),
    });
    let guard = shard.register_session(Service::Imap, peer, Some(user));
    drive(shard, stream, peer, session, guard).await;
}

async fn drive(
    shard: Rc<Shard>,
    mut stream: TcpStream,
    peer: SocketAddr,
    mut session: ImapSession,
    guard: SessionGuard,
) {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    loop {
        while let Some(out) = session.poll_output() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
        if let Some(event) = session.poll_event() {
            match event {
                ImapEvent::Close => {
                    let _ = stream.close().await;
                    return;
                }
                ImapEvent::Login {
                    username, password, ..
                } => match login(&shard, &username, password).await {
                    Ok(user) => {
                        let owner = shard.owner_of(&user);
                        if owner == shard.id {
                            session.login_result(LoginOutcome::Ok {
                                user: user.to_string(),
                            });
                            guard.set_user(user);
                        } else {
                            drop(guard);
                            move_to_owner(&shard, owner, stream, peer, user, session).await;
                            return;
                        }
                    }
                    Err(AuthOutcome::Unavailable) => {
                        session.login_result(LoginOutcome::Unavailable)
                    }
                    Err(_) => session.login_result(LoginOutcome::Failed),
                },
            }
            continue;
        }
        let n = {
            let read = std::pin::pin!(stream.read(&mut buf));
            match select(read, shard.shutdown.wait()).await {
                Either::Left((Ok(n), _)) => n,
                Either::Left((Err(_), _)) => return,
                Either::Right(_) => {
                    let _ = stream
                        .write_all(b"* BYE [UNAVAILABLE] Server shutting down\r\n")
                        .await;
                    let _ = stream.close().await;
                    return;
                }
            }
        };
        if n == 0 {
            return;
        }
        // An overflow has queued a BYE and a Close event; the loop sends them.
        let _ = session.handle_input(&buf[..n]);
    }
}

/// Asks the owning shard to check the password. A name that is not an address can
/// own nothing, so it fails like an unknown user.
async fn login(
    shard: &Rc<Shard>,
    username: &[u8],
    password: Secret,
) -> Result<Address, AuthOutcome> {
    let user = std::str::from_utf8(username)
        .ok()
        .and_then(|u| Address::parse(u).ok())
        .ok_or(AuthOutcome::Failed)?;
    let owner = shard.owner_of(&user);
    let req = Request::Authenticate {
        address: user.clone(),
        password,
        service: Service::Imap,
    };
    match shard.call(owner, req).await {
        Ok(Response::Auth(AuthOutcome::Ok)) => Ok(user),
        Ok(Response::Auth(other)) => Err(other),
        Ok(_) | Err(_) => Err(AuthOutcome::Unavailable),
    }
}

async fn move_to_owner(
    shard: &Rc<Shard>,
    owner: usize,
    stream: TcpStream,
    peer: SocketAddr,
    user: Address,
    session: ImapSession,
) {
    let state = session.into_handoff();
    let fd = match handoff::detach(stream) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!("hand-off of {user} to shard {owner}: {e}");
            return;
        }
    };
    let h = Handoff {
        fd,
        peer,
        service: Service::Imap,
        user,
        from_shard: shard.id,
        session: SessionHandoff::Imap(Box::new(state)),
    };
    if let Err(e) = shard.handoff(owner, h).await {
        tracing::warn!("hand-off to shard {owner}: {e}");
    }
}
