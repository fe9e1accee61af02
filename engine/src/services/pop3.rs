//! Drives a sans-IO `Pop3Session` (issue 6). Login happens where the connection
//! landed; the session then moves to the owning shard, which locks the maildrop
//! (INBOX; one POP3 session at a time), lists it, streams messages from their
//! ready-to-download files through the dot-stuffer in chunks (never a whole large
//! message in memory), and at QUIT expunges the deleted messages durably before
//! answering `+OK`.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use glommio::io::BufferedFile;
use glommio::net::TcpStream;
use protocols::pop3::{
    DotStuffer, LoginOutcome, MaildropError, Pop3Config, Pop3Event, Pop3Handoff, Pop3Session,
    RetrieveError,
};
use store::Address;
use store::mailbox::view::MailboxView;

use crate::config::Service;
use crate::conn::{Conn, TlsState};
use crate::handoff::{self, SessionHandoff};
use crate::limits::{POP3_RETR_CHUNK_BYTES, READ_CHUNK_BYTES};
use crate::mesh::AuthOutcome;
use crate::services::auth::{self, SaslAction, SaslDriver, login};
use crate::services::{Goodbyes, move_to_owner, next_input, open_conn};
use crate::shard::{MaildropLock, SessionGuard, Shard};

/// What the owning shard holds for an open maildrop.
struct Maildrop {
    user: Address,
    view: MailboxView,
    /// UIDs in message-number order (POP3 numbers are positions in this list).
    uids: Vec<u32>,
    _lock: MaildropLock,
}

pub async fn serve(shard: Rc<Shard>, service: Service, stream: TcpStream, peer: SocketAddr) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let guard = shard.register_session(service, peer, None);
    let Some(conn) = open_conn(&shard, service == Service::Pop3s, stream, peer) else {
        return;
    };
    let mut session = Pop3Session::new(Pop3Config {
        server_name: "msgstore".into(),
        apop_timestamp: auth::apop_timestamp(&shard),
        sasl_mechanisms: auth::sasl_policy(&shard)
            .enabled
            .iter()
            .map(|m| m.name().to_owned())
            .collect(),
        stls_available: !conn.is_tls(),
        plaintext_auth_allowed: shard.config.auth.plaintext_allowed(local),
    });
    if conn.is_tls() {
        session.set_tls_active();
    }
    drive(shard, service, conn, peer, session, guard, None).await;
}

#[allow(clippy::too_many_arguments)]
pub async fn adopt(
    shard: Rc<Shard>,
    service: Service,
    fd: OwnedFd,
    tls: Option<TlsState>,
    peer: SocketAddr,
    user: Address,
    state: Pop3Handoff,
) {
    let conn = Conn::from_parts(handoff::attach(fd), tls);
    let mut session = Pop3Session::from_handoff(state);
    session.login_result(LoginOutcome::Ok {
        user: user.to_string(),
    });
    let guard = shard.register_session(service, peer, Some(user));
    drive(shard, service, conn, peer, session, guard, None).await;
}

async fn drive(
    shard: Rc<Shard>,
    service: Service,
    mut conn: Conn,
    peer: SocketAddr,
    mut session: Pop3Session,
    guard: SessionGuard,
    mut maildrop: Option<Maildrop>,
) {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut sasl: Option<SaslDriver> = None;
    loop {
        while let Some(out) = session.poll_output() {
            if conn.write_all(&out).await.is_err() {
                return;
            }
        }
        if let Some(event) = session.poll_event() {
            match event {
                event @ (Pop3Event::Login { .. }
                | Pop3Event::LoginApop { .. }
                | Pop3Event::SaslStart { .. }
                | Pop3Event::SaslResponse { .. }) => {
                    let result =
                        match pop3_login(&shard, service, peer, &conn, &mut sasl, event).await {
                            SaslAction::Challenge(bytes) => {
                                session.sasl_challenge(&bytes);
                                continue;
                            }
                            SaslAction::Done(result) => result,
                        };
                    match result {
                        Ok(user) => {
                            let owner = shard.owner_of(&user);
                            if owner == shard.id {
                                session.login_result(LoginOutcome::Ok {
                                    user: user.to_string(),
                                });
                                guard.set_user(user);
                            } else {
                                drop(guard);
                                let state = SessionHandoff::Pop3(Box::new(session.into_handoff()));
                                move_to_owner(&shard, service, owner, conn, peer, user, state)
                                    .await;
                                return;
                            }
                        }
                        Err(AuthOutcome::NotPermitted) => {
                            session.login_result(LoginOutcome::NotPermitted)
                        }
                        Err(AuthOutcome::Unavailable) => {
                            session.login_result(LoginOutcome::Unavailable)
                        }
                        Err(_) => session.login_result(LoginOutcome::Failed),
                    }
                }
                Pop3Event::SaslAborted => sasl = None,
                Pop3Event::OpenMaildrop { user } => match open_maildrop(&shard, &user) {
                    Ok((drop_, listing)) => {
                        maildrop = Some(drop_);
                        session.maildrop_opened(listing);
                    }
                    Err(e) => session.maildrop_failed(e),
                },
                Pop3Event::StartTls => {
                    let (stream, _) = conn.into_parts();
                    conn = match Conn::start_tls(stream, shard.tls.current()) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!("stls {peer}: {e}");
                            return;
                        }
                    };
                    session.tls_started();
                }
                Pop3Event::Retrieve { msg, top_lines } => {
                    let Some(md) = maildrop.as_ref() else {
                        session.retrieve_failed(RetrieveError::Temporary);
                        continue;
                    };
                    if retrieve(&mut conn, &mut session, md, msg, top_lines)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Pop3Event::Update { deleted } => {
                    let ok = match maildrop.as_ref() {
                        Some(md) => expunge(&shard, md, &deleted).await,
                        None => deleted.is_empty(),
                    };
                    session.update_done(ok);
                    maildrop = None;
                }
                Pop3Event::Close => {
                    conn.close().await;
                    return;
                }
            }
            continue;
        }
        let room = session.input_room().clamp(1, buf.len());
        let limits = &shard.config.limits;
        let idle = Duration::from_secs(if session.user().is_some() {
            limits.idle_pop3_seconds
        } else {
            limits.idle_preauth_seconds
        });
        const BYE: Goodbyes = Goodbyes {
            stopping: b"-ERR [SYS/TEMP] Server shutting down\r\n",
            idle: b"-ERR Autologout; idle for too long\r\n",
        };
        // A dropped connection deletes nothing; the lock goes with `maildrop`.
        let Some(n) = next_input(&shard, &mut conn, &mut buf[..room], idle, &BYE).await else {
            conn.close().await;
            return;
        };
        let _ = session.handle_input(&buf[..n]);
    }
}

/// USER/PASS, APOP, or a step of AUTH: what to tell the client next.
async fn pop3_login(
    shard: &Rc<Shard>,
    service: Service,
    peer: SocketAddr,
    conn: &Conn,
    sasl: &mut Option<SaslDriver>,
    event: Pop3Event,
) -> SaslAction {
    match event {
        Pop3Event::Login { user, password } => {
            SaslAction::Done(login(shard, service, peer, user.as_bytes(), password).await)
        }
        Pop3Event::LoginApop {
            user,
            digest,
            timestamp,
        } => SaslAction::Done(auth::apop(shard, service, peer, &user, &digest, &timestamp).await),
        Pop3Event::SaslStart { mechanism, initial } => {
            let mut policy = auth::sasl_policy(shard);
            policy.tls_on = conn.is_tls();
            // The session offers (and accepts) PLAIN and LOGIN only where its
            // `plaintext_auth_allowed` or TLS lets it; it has already checked.
            policy.plaintext_allowed = true;
            let initial = initial.as_ref().map(|i| i.expose());
            let (driver, action) =
                SaslDriver::start(shard, service, peer, &policy, &mechanism, initial).await;
            *sasl = driver;
            action
        }
        Pop3Event::SaslResponse { response } => match sasl.as_mut() {
            Some(driver) => {
                let action = driver
                    .respond(shard, service, peer, response.expose())
                    .await;
                if matches!(action, SaslAction::Done(_)) {
                    *sasl = None;
                }
                action
            }
            None => SaslAction::Done(Err(AuthOutcome::Failed)),
        },
        _ => SaslAction::Done(Err(AuthOutcome::Unavailable)),
    }
}

/// Locks and lists the maildrop. UIDL is the UIDVALIDITY and the UID in hex: stable
/// across sessions, restarts and reconstruct (which keeps both).
fn open_maildrop(
    shard: &Rc<Shard>,
    user: &str,
) -> Result<(Maildrop, Vec<(u64, String)>), MaildropError> {
    let user = Address::parse(user).map_err(|_| MaildropError::Permanent)?;
    let lock = shard.lock_maildrop(&user).ok_or(MaildropError::InUse)?;
    let view = shard
        .mail
        .with(|ms| ms.open_mailbox(&user, "INBOX"))
        .map_err(|e| {
            tracing::warn!("pop3 maildrop of {user}: {e}");
            MaildropError::Temporary
        })?;
    let uidvalidity = view.uidvalidity();
    let mut uids = Vec::new();
    let mut listing = Vec::new();
    for rec in view.records() {
        uids.push(rec.uid);
        listing.push((rec.size, format!("{uidvalidity:08x}{:08x}", rec.uid)));
    }
    Ok((
        Maildrop {
            user,
            view,
            uids,
            _lock: lock,
        },
        listing,
    ))
}

/// RETR of a message whose file needs no dot-stuffing (precomputed at delivery:
/// no line starts with "." and it ends with CRLF) on a plain connection: the
/// `+OK`, the file by sendfile, then `"." CRLF`. `Ok(false)` when the message does
/// not qualify (the caller streams it through the stuffer instead).
async fn retrieve_by_sendfile(
    conn: &mut Conn,
    session: &mut Pop3Session,
    md: &Maildrop,
    uid: u32,
) -> std::io::Result<bool> {
    let Some(size) = md.view.get(uid).map(|r| r.size) else {
        return Ok(false);
    };
    if size < crate::limits::SENDFILE_MIN_BYTES {
        return Ok(false);
    }
    let ready = md
        .view
        .cache_record(uid)
        .ok()
        .and_then(|record| store::message::cache::pop3_ready(&record).ok().flatten());
    if ready != Some(true) {
        return Ok(false);
    }
    let Ok(file) = std::fs::File::open(md.view.message_path(uid)) else {
        return Ok(false);
    };
    match file.metadata() {
        Ok(meta) if meta.len() == size => {}
        _ => return Ok(false),
    }
    session.retrieve_started();
    let head = session.poll_output().unwrap_or_default();
    conn.write_all(&head).await?;
    if let Err(e) = conn.send_file(&file, 0, size).await {
        // The +OK is out: all that is left is to drop the connection.
        tracing::warn!("pop3 {} uid {uid}: sendfile: {e}", md.user);
        return Err(e);
    }
    session.retrieve_done();
    conn.write_all(b".\r\n").await?;
    Ok(true)
}

/// Streams message `msg` (0-based) through the dot-stuffer, in chunks.
async fn retrieve(
    conn: &mut Conn,
    session: &mut Pop3Session,
    md: &Maildrop,
    msg: usize,
    top_lines: Option<u32>,
) -> std::io::Result<()> {
    let Some(uid) = md.uids.get(msg).copied() else {
        session.retrieve_failed(RetrieveError::Gone);
        return Ok(());
    };
    if top_lines.is_none() && !conn.is_tls() && retrieve_by_sendfile(conn, session, md, uid).await?
    {
        return Ok(());
    }
    let file = match BufferedFile::open(md.view.message_path(uid)).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("pop3 {} uid {uid}: {e}", md.user);
            session.retrieve_failed(RetrieveError::Gone);
            return Ok(());
        }
    };
    session.retrieve_started();
    let mut out = session.poll_output().unwrap_or_default();
    let mut stuffer = match top_lines {
        Some(n) => DotStuffer::top(n),
        None => DotStuffer::new(),
    };
    let mut pos = 0u64;
    loop {
        if stuffer.is_done() {
            break;
        }
        let chunk = match file.read_at(pos, POP3_RETR_CHUNK_BYTES).await {
            Ok(c) => c,
            Err(e) => {
                // The +OK is out: all that is left is to drop the connection.
                tracing::warn!("pop3 {} uid {uid}: read: {e}", md.user);
                let _ = file.close().await;
                return Err(std::io::Error::other("message file unreadable"));
            }
        };
        if chunk.is_empty() {
            break;
        }
        pos += chunk.len() as u64;
        stuffer.push(&chunk, &mut out);
        conn.write_all(&out).await?;
        out.clear();
    }
    let _ = file.close().await;
    stuffer.finish(&mut out);
    session.retrieve_done();
    conn.write_all(&out).await
}

/// Expunges the messages DELE marked; `true` once durable.
async fn expunge(shard: &Rc<Shard>, md: &Maildrop, deleted: &[usize]) -> bool {
    let uids: Vec<u32> = deleted
        .iter()
        .filter_map(|i| md.uids.get(*i).copied())
        .collect();
    if uids.is_empty() {
        return true;
    }
    let ticket = match shard
        .mail
        .with(|ms| ms.stage_expunge(&md.user, "INBOX", &uids))
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("pop3 expunge for {}: {e}", md.user);
            return false;
        }
    };
    match shard.mail.commit(ticket).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("pop3 expunge for {}: {e}", md.user);
            false
        }
    }
}
