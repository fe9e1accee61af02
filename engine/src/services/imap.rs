//! Drives a sans-IO `ImapSession` over a connection: reads feed `handle_input`,
//! output is written as it appears, and a LOGIN is checked by the user's owning
//! shard. When the owner is another shard, the connection moves there (`handoff`)
//! with its unparsed bytes and live TLS state, and the owner answers the LOGIN and
//! runs the rest of the session.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use futures::future::{Either, select};
use glommio::net::TcpStream;
use protocols::imap::{ImapConfig, ImapEvent, ImapHandoff, ImapSession, LoginOutcome};
use store::Address;

use crate::config::Service;
use crate::conn::{Conn, TlsState};
use crate::handoff::{self, Handoff, SessionHandoff};
use crate::limits::READ_CHUNK_BYTES;
use crate::mesh::{AuthOutcome, Request, Response, Secret};
use crate::shard::{SessionGuard, Shard};

const CAPABILITIES: [&str; 3] = ["IMAP4rev1", "ID", "LITERAL+"];

pub fn session_config(tls_on: bool) -> ImapConfig {
    let caps: Vec<String> = CAPABILITIES.iter().map(|c| c.to_string()).collect();
    ImapConfig {
        capabilities: caps.clone(),
        capabilities_authenticated: caps,
        login_allowed: true,
        server_name: "msgstore".into(),
        starttls_available: !tls_on,
    }
}

pub async fn serve(shard: Rc<Shard>, service: Service, stream: TcpStream, peer: SocketAddr) {
    let guard = shard.register_session(service, peer, None);
    let conn = if service == Service::Imaps {
        match Conn::start_tls(stream, shard.tls.clone()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("imaps {peer}: {e}");
                return;
            }
        }
    } else {
        Conn::plain(stream)
    };
    let session = ImapSession::new(session_config(conn.is_tls()));
    drive(shard, service, conn, peer, session, guard).await;
}

/// Continues a session handed over by another shard after its LOGIN succeeded.
#[allow(clippy::too_many_arguments)]
pub async fn adopt(
    shard: Rc<Shard>,
    service: Service,
    fd: OwnedFd,
    tls: Option<TlsState>,
    peer: SocketAddr,
    user: Address,
    state: ImapHandoff,
) {
    let conn = Conn::from_parts(handoff::attach(fd), tls);
    let mut session = ImapSession::from_handoff(state);
    session.login_result(LoginOutcome::Ok {
        user: user.to_string(),
    });
    let guard = shard.register_session(service, peer, Some(user));
    drive(shard, service, conn, peer, session, guard).await;
}

async fn drive(
    shard: Rc<Shard>,
    service: Service,
    mut conn: Conn,
    peer: SocketAddr,
    mut session: ImapSession,
    guard: SessionGuard,
) {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    loop {
        while let Some(out) = session.poll_output() {
            if conn.write_all(&out).await.is_err() {
                return;
            }
        }
        if let Some(event) = session.poll_event() {
            match event {
                ImapEvent::Close => {
                    conn.close().await;
                    return;
                }
                ImapEvent::StartTls => {
                    let (stream, tls) = conn.into_parts();
                    debug_assert!(tls.is_none(), "STARTTLS is only offered in plaintext");
                    conn = match Conn::start_tls(stream, shard.tls.clone()) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!("starttls {peer}: {e}");
                            return;
                        }
                    };
                    session.tls_started();
                }
                ImapEvent::Login {
                    username, password, ..
                } => match login(&shard, service, &username, password).await {
                    Ok(user) => {
                        let owner = shard.owner_of(&user);
                        if owner == shard.id {
                            session.login_result(LoginOutcome::Ok {
                                user: user.to_string(),
                            });
                            guard.set_user(user);
                        } else {
                            drop(guard);
                            move_to_owner(&shard, service, owner, conn, peer, user, session).await;
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
        let room = session.input_room().clamp(1, buf.len());
        let read = {
            let read = std::pin::pin!(conn.read(&mut buf[..room]));
            match select(read, shard.shutdown.wait()).await {
                Either::Left((r, _)) => Some(r),
                Either::Right(_) => None,
            }
        };
        let n = match read {
            Some(Ok(n)) => n,
            Some(Err(_)) => return,
            None => {
                let _ = conn
                    .write_all(b"* BYE [UNAVAILABLE] Server shutting down\r\n")
                    .await;
                conn.close().await;
                return;
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
    service: Service,
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
        service,
    };
    match shard.call(owner, req).await {
        Ok(Response::Auth(AuthOutcome::Ok)) => Ok(user),
        Ok(Response::Auth(other)) => Err(other),
        Ok(_) | Err(_) => Err(AuthOutcome::Unavailable),
    }
}

async fn move_to_owner(
    shard: &Rc<Shard>,
    service: Service,
    owner: usize,
    conn: Conn,
    peer: SocketAddr,
    user: Address,
    session: ImapSession,
) {
    let state = session.into_handoff();
    let (stream, tls) = conn.into_parts();
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
        service,
        user,
        from_shard: shard.id,
        tls,
        session: SessionHandoff::Imap(Box::new(state)),
    };
    if let Err(e) = shard.handoff(owner, h).await {
        tracing::warn!("hand-off to shard {owner}: {e}");
    }
}
