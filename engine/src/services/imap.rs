//! Drives a sans-IO `ImapSession` over a connection: reads feed `handle_input`,
//! output is written as it appears, and a LOGIN is checked by the user's owning
//! shard. When the owner is another shard, the connection moves there (`handoff`)
//! with its unparsed bytes and live TLS state, and the owner answers the LOGIN and
//! runs the rest of the session.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpStream;
use protocols::imap::{ImapConfig, ImapEvent, ImapHandoff, ImapSession, LoginOutcome};
use store::Address;

use crate::config::Service;
use crate::conn::{Conn, TlsState};
use crate::handoff::{self, Handoff, SessionHandoff};
use crate::limits::READ_CHUNK_BYTES;
use crate::mesh::AuthOutcome;
use crate::services::auth::login;
use crate::services::{Input, read_input};
use crate::shard::{SessionGuard, Shard};

const CAPABILITIES: [&str; 3] = ["IMAP4rev1", "ID", "LITERAL+"];

/// `plaintext_allowed`: whether a password may cross this listener without TLS
/// (`auth.plaintext_without_tls`); when not, LOGIN waits for STARTTLS.
pub fn session_config(tls_on: bool, plaintext_allowed: bool) -> ImapConfig {
    let caps: Vec<String> = CAPABILITIES.iter().map(|c| c.to_string()).collect();
    ImapConfig {
        capabilities: caps.clone(),
        capabilities_authenticated: caps,
        login_allowed: tls_on || plaintext_allowed,
        server_name: "msgstore".into(),
        starttls_available: !tls_on,
    }
}

pub async fn serve(shard: Rc<Shard>, service: Service, stream: TcpStream, peer: SocketAddr) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
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
    let plaintext_allowed = shard.config.auth.plaintext_allowed(local);
    let session = ImapSession::new(session_config(conn.is_tls(), plaintext_allowed));
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
                } => match login(&shard, service, peer, &username, password).await {
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
        let limits = &shard.config.limits;
        let idle = Duration::from_secs(if session.user().is_some() {
            limits.idle_imap_seconds
        } else {
            limits.idle_preauth_seconds
        });
        let bye: &[u8] = match read_input(&shard, &mut conn, &mut buf[..room], idle).await {
            Input::Read(n) if n > 0 => {
                // An overflow has queued a BYE and a Close event; the loop sends them.
                let _ = session.handle_input(&buf[..n]);
                continue;
            }
            Input::Read(_) | Input::Failed => return,
            Input::Stopping => b"* BYE [UNAVAILABLE] Server shutting down\r\n",
            Input::Idle => b"* BYE Autologout; idle for too long\r\n",
        };
        let _ = conn.write_all(bye).await;
        conn.close().await;
        return;
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
