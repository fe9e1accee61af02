//! Drives a sans-IO `ImapSession` over a connection: reads feed `handle_input`,
//! output is written as it appears, and a LOGIN is checked by the user's owning
//! shard. When the owner is another shard, the connection moves there (`handoff`)
//! with its unparsed bytes and live TLS state, and the owner answers the LOGIN and
//! runs the rest of the session.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{Either, select};
use glommio::io::BufferedFile;
use glommio::net::TcpStream;
use protocols::imap::backend::BackendError;
use protocols::imap::command::compress::COMPRESS_CAPABILITY;
use protocols::imap::{
    AUTHENTICATED_CAPABILITIES, ImapConfig, ImapEvent, ImapHandoff, ImapSession, LoginOutcome,
    MailboxEvent, Transmit,
};
use store::Address;

use crate::admin::proto::{AdminRequest, AdminResponse};
use crate::config::Service;
use crate::conn::{Conn, TlsState};
use crate::handoff::{self, SessionHandoff};
use crate::limits::{IMAP_FETCH_CHUNK_BYTES, READ_CHUNK_BYTES};
use crate::mesh::{AuthOutcome, Request, Response};
use crate::services::auth::{self, login};
use crate::services::imap_append::stage_deferred;
use crate::services::imap_backend::{StoreBackend, completion, map_err};
use crate::services::{Input, move_to_owner, open_conn, wait_input};
use crate::shard::{SessionGuard, Shard};

/// Advertised before login; after it, everything the session implements.
const CAPABILITIES: [&str; 5] = ["IMAP4rev1", "IMAP4rev2", "ID", "LITERAL+", "ENABLE"];

/// `plaintext_allowed`: whether a password may cross this listener without TLS
/// (`auth.plaintext_without_tls`); when not, LOGIN waits for STARTTLS.
pub fn session_config(tls_on: bool, plaintext_allowed: bool) -> ImapConfig {
    // Built once per thread and shared by its sessions: a copy of ~30 strings per
    // connection was a good part of what an idle connection cost.
    thread_local! {
        static LISTS: (Arc<[String]>, Arc<[String]>) = (
            CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            AUTHENTICATED_CAPABILITIES
                .iter()
                .copied()
                .chain([COMPRESS_CAPABILITY])
                .map(|c| c.to_string())
                .chain([format!("APPENDLIMIT={}", StoreBackend::APPEND_LIMIT)])
                .collect(),
        );
    }
    let (capabilities, capabilities_authenticated) = LISTS.with(|l| l.clone());
    ImapConfig {
        capabilities,
        capabilities_authenticated,
        login_allowed: tls_on || plaintext_allowed,
        server_name: "msgstore".into(),
        starttls_available: !tls_on,
        sasl: protocols::sasl::SaslPolicy::disabled(),
    }
}

pub async fn serve(shard: Rc<Shard>, service: Service, stream: TcpStream, peer: SocketAddr) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let guard = shard.register_session(service, peer, None);
    let Some(conn) = open_conn(&shard, service == Service::Imaps, stream, peer) else {
        return;
    };
    let plaintext_allowed = shard.config.auth.plaintext_allowed(local);
    let mut config = session_config(conn.is_tls(), plaintext_allowed);
    config.sasl = auth::sasl_policy(&shard);
    let session = ImapSession::new(config);
    drive(shard, service, conn, peer, session, guard, None).await;
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
    let mut backend = StoreBackend::new(shard.clone(), user.clone());
    session.login_result_with(
        LoginOutcome::Ok {
            user: user.to_string(),
        },
        &mut backend,
    );
    let guard = shard.register_session(service, peer, Some(user));
    drive(shard, service, conn, peer, session, guard, Some(backend)).await;
}

async fn drive(
    shard: Rc<Shard>,
    service: Service,
    mut conn: Conn,
    peer: SocketAddr,
    mut session: ImapSession,
    guard: SessionGuard,
    mut backend: Option<StoreBackend>,
) {
    // Filled by each read and empty (no allocation) while waiting for the client: most
    // connections are idle most of the time.
    let mut buf: Vec<u8> = Vec::new();
    // The selected mailbox and the modseq its session has seen.
    let mut watching: Option<(u32, u64)> = None;
    let mut pace = Pace::new(shard.config.limits.imap_commands_per_second, Instant::now());
    loop {
        // The answers so far go out together with the small message bodies among them
        // (a FETCH of a body is one send, not three), up to IMAP_FETCH_CHUNK_BYTES a
        // send; dropped before the wait for input, so an idle connection holds none.
        let mut out: Vec<u8> = Vec::new();
        while let Some(t) = session.poll_transmit() {
            let sent = match t {
                Transmit::Bytes(bytes) => {
                    if out.is_empty() {
                        out = bytes;
                    } else {
                        out.extend_from_slice(&bytes);
                    }
                    flush_full(&mut conn, &mut out).await
                }
                Transmit::Message {
                    mailbox,
                    uid,
                    start,
                    end,
                } => match backend.as_ref() {
                    Some(b) => {
                        Box::pin(send_message(
                            b, &mut conn, &mut out, &mailbox, uid, start, end,
                        ))
                        .await
                    }
                    None => Err(std::io::Error::other("no store before login")),
                },
            };
            if sent.is_err() {
                conn.close().await;
                return;
            }
        }
        if !out.is_empty() && conn.write_all(&out).await.is_err() {
            conn.close().await;
            return;
        }
        drop(out);
        if let Some(event) = session.poll_event() {
            match event {
                ImapEvent::Close => {
                    conn.close().await;
                    return;
                }
                ImapEvent::StartTls => {
                    let (stream, tls) = conn.into_parts();
                    debug_assert!(tls.is_none(), "STARTTLS is only offered in plaintext");
                    conn = match Conn::start_tls(stream, shard.tls.current()) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!("starttls {peer}: {e}");
                            return;
                        }
                    };
                    session.tls_started();
                }
                ImapEvent::Compress => {
                    // The OK went out above, uncompressed; the rest is deflated.
                    conn.start_deflate();
                    session.compress_started();
                }
                ImapEvent::SaslCredentials(request) => {
                    let answer = Box::pin(auth::sasl_credentials(&shard, peer, request)).await;
                    session.sasl_credentials(answer);
                }
                event @ (ImapEvent::Login { .. } | ImapEvent::SaslFinished { .. }) => {
                    match Box::pin(login_event(&shard, service, peer, event)).await {
                        Ok(user) => {
                            let owner = shard.owner_of(&user);
                            if owner == shard.id {
                                let mut b = StoreBackend::new(shard.clone(), user.clone());
                                session.login_result_with(
                                    LoginOutcome::Ok {
                                        user: user.to_string(),
                                    },
                                    &mut b,
                                );
                                backend = Some(b);
                                guard.set_user(user);
                            } else {
                                drop(guard);
                                let state = SessionHandoff::Imap(Box::new(session.into_handoff()));
                                Box::pin(move_to_owner(
                                    &shard, service, owner, conn, peer, user, state,
                                ))
                                .await;
                                return;
                            }
                        }
                        Err(AuthOutcome::Unavailable) => {
                            session.login_result(LoginOutcome::Unavailable)
                        }
                        Err(_) => session.login_result(LoginOutcome::Failed),
                    }
                }
            }
            continue;
        }
        if let Some(event) = session.poll_mailbox_event() {
            if let (MailboxEvent::Wait(pending), Some(b)) = (&event, backend.as_mut()) {
                let staged = match b.take_deferred(*pending) {
                    // A large APPEND: its file is made durable before it is staged.
                    Some(d) => Box::pin(stage_deferred(&shard, b.user(), d))
                        .await
                        .map(Some),
                    None => Ok(b.take_ticket(*pending)),
                };
                let result = match (staged, b.take_admin(*pending)) {
                    (Err(e), _) => Err(e),
                    (Ok(Some(ticket)), _) => Box::pin(shard.mail.commit(ticket))
                        .await
                        .map(completion)
                        .map_err(map_err),
                    (Ok(None), Some(request)) => Box::pin(account_change(&shard, request)).await,
                    (Ok(None), None) => Err(BackendError::Unavailable),
                };
                session.completed(*pending, result, b);
            }
            continue;
        }
        // Follow the selected mailbox's changes (deliveries, other sessions).
        let selected = backend.as_ref().and_then(|b| b.selected_id());
        if selected != watching.map(|(id, _)| id) {
            watching = selected.map(|id| (id, 0));
        }
        // Past `limits.imap_commands_per_second`, hold the next read back (in steps of
        // at most a second, so changes and shutdown are still seen between them).
        if let Some(wait) = pace.delay(session.commands_seen(), Instant::now()) {
            shard.stats.borrow_mut().commands_slowed += 1;
            glommio::timer::sleep(wait.min(Duration::from_secs(1))).await;
            continue;
        }
        let room = session.input_room().clamp(1, READ_CHUNK_BYTES);
        let limits = &shard.config.limits;
        let idle = Duration::from_secs(if session.user().is_some() {
            limits.idle_imap_seconds
        } else {
            limits.idle_preauth_seconds
        });
        let input = {
            let read = std::pin::pin!(wait_input(&shard, conn.read_vec(&mut buf, room), idle));
            let change = std::pin::pin!(ChangeWait {
                shard: &shard,
                user: backend.as_ref().map(|b| b.user()),
                watching,
            });
            match select(read, change).await {
                Either::Left((input, _)) => Some(input),
                Either::Right((seen, _)) => {
                    watching = watching.map(|(id, _)| (id, seen));
                    None
                }
            }
        };
        let Some(input) = input else {
            if let Some(b) = backend.as_mut() {
                session.mailbox_changed(b);
            }
            continue;
        };
        let bye: &[u8] = match input {
            Input::Read(n) if n > 0 => {
                // An overflow has queued a BYE and a Close event; the loop sends them.
                let _ = match backend.as_mut() {
                    Some(b) => session.handle_input_with(&buf[..n], b),
                    None => session.handle_input(&buf[..n]),
                };
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

/// A LOGIN, or the end of an AUTHENTICATE: checked and counted by `services::auth`.
async fn login_event(
    shard: &Rc<Shard>,
    service: Service,
    peer: SocketAddr,
    event: ImapEvent,
) -> Result<Address, AuthOutcome> {
    match event {
        ImapEvent::Login {
            username, password, ..
        } => login(shard, service, peer, &username, password).await,
        ImapEvent::SaslFinished {
            username, success, ..
        } => auth::sasl_finished(shard, service, peer, username.as_deref(), success).await,
        _ => Err(AuthOutcome::Unavailable),
    }
}

/// Resolves when the watched mailbox has a change newer than the modseq seen;
/// never when nothing is selected.
struct ChangeWait<'a> {
    shard: &'a Shard,
    user: Option<&'a Address>,
    watching: Option<(u32, u64)>,
}

impl std::future::Future for ChangeWait<'_> {
    type Output = u64;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<u64> {
        match (self.user, self.watching) {
            (Some(user), Some((id, seen))) => self
                .shard
                .mail
                .with(|ms| ms.notifier().poll_change(user, id, seen, cx)),
            _ => std::task::Poll::Pending,
        }
    }
}

/// Writes `out` once it holds a send's worth.
async fn flush_full(conn: &mut Conn, out: &mut Vec<u8>) -> std::io::Result<()> {
    if out.len() < IMAP_FETCH_CHUNK_BYTES {
        return Ok(());
    }
    conn.write_all(out).await?;
    out.clear();
    Ok(())
}

/// Streams bytes `start..end` of a message file as the body of a literal the
/// session has already announced, after the bytes in `out` (a small body is added to
/// them, to go out in one send with what follows); a short file is an error (the
/// connection ends, since the literal's length is out).
async fn send_message(
    backend: &StoreBackend,
    conn: &mut Conn,
    out: &mut Vec<u8>,
    mailbox: &str,
    uid: u32,
    start: u64,
    end: u64,
) -> std::io::Result<()> {
    let path = backend
        .message_path(mailbox, uid)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if end.saturating_sub(start) >= crate::limits::SENDFILE_MIN_BYTES
        && !conn.is_tls()
        && !conn.is_compressed()
        && let Ok(file) = std::fs::File::open(&path)
        && file.metadata().is_ok_and(|m| m.len() >= end)
    {
        // Plain connection: the kernel copies page cache to the socket.
        if !out.is_empty() {
            conn.write_all(out).await?;
            out.clear();
        }
        return conn.send_file(&file, start, end - start).await;
    }
    let file = BufferedFile::open(&path)
        .await
        .map_err(std::io::Error::from)?;
    let mut pos = start;
    let mut result = Ok(());
    while pos < end {
        let want = ((end - pos) as usize).min(IMAP_FETCH_CHUNK_BYTES);
        let chunk = match file.read_at(pos, want).await {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => {
                result = Err(std::io::Error::other(
                    "message file shorter than its index says",
                ));
                break;
            }
            Err(e) => {
                result = Err(std::io::Error::from(e));
                break;
            }
        };
        pos += chunk.len() as u64;
        let sent = if out.is_empty() && chunk.len() >= IMAP_FETCH_CHUNK_BYTES {
            conn.write_all(&chunk).await
        } else {
            out.extend_from_slice(&chunk);
            flush_full(conn, out).await
        };
        if let Err(e) = sent {
            result = Err(e);
            break;
        }
    }
    let _ = file.close().await;
    result
}

/// Runs an account change a session asked for (SETQUOTA) on the account's owning
/// shard, like the admin socket does.
async fn account_change(
    shard: &Rc<Shard>,
    request: AdminRequest,
) -> Result<protocols::imap::backend::Completion, BackendError> {
    let Some(address) = request.address().and_then(|a| Address::parse(a).ok()) else {
        return Err(BackendError::NoSuchMailbox);
    };
    match shard
        .call(shard.owner_of(&address), Request::Admin(request))
        .await
    {
        Ok(Response::Admin(AdminResponse::Account(_) | AdminResponse::Done)) => {
            Ok(protocols::imap::backend::Completion::Done)
        }
        // The account does not exist (or cannot be read): the root is unknown.
        Ok(Response::Admin(AdminResponse::Error { .. })) => Err(BackendError::NoSuchMailbox),
        Ok(_) | Err(_) => Err(BackendError::Unavailable),
    }
}

/// A token bucket over the session's command count: `rate` commands a second, at most
/// `rate` saved up (the burst). Spent after the fact, so a pipelined batch goes through
/// and the reads after it wait until the bucket is back to zero.
struct Pace {
    rate: f64,
    tokens: f64,
    last: Instant,
    seen: u64,
}

impl Pace {
    fn new(rate: u32, now: Instant) -> Pace {
        let rate = f64::from(rate.max(1));
        Pace {
            rate,
            tokens: rate,
            last: now,
            seen: 0,
        }
    }

    /// How long to hold the next read back, once the session has read `seen` commands.
    fn delay(&mut self, seen: u64, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.tokens -= seen.saturating_sub(self.seen) as f64;
        self.seen = seen;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_lets_a_burst_through_then_holds_reads_back_until_the_rate_allows() {
        let t0 = Instant::now();
        let mut pace = Pace::new(100, t0);
        assert_eq!(pace.delay(100, t0), None, "a full burst is free");
        let wait = pace.delay(150, t0).expect("50 over the burst");
        assert_eq!(wait, Duration::from_millis(500));
        // After waiting it out, nothing more is owed; a second later the burst is back.
        assert_eq!(pace.delay(150, t0 + wait), None);
        assert_eq!(pace.delay(250, t0 + wait + Duration::from_secs(1)), None);
        assert!(
            pace.delay(251, t0 + wait + Duration::from_secs(1))
                .is_some()
        );
    }

    #[test]
    fn pace_never_saves_more_than_one_burst() {
        let t0 = Instant::now();
        let mut pace = Pace::new(10, t0);
        assert_eq!(pace.delay(0, t0 + Duration::from_secs(3600)), None);
        assert!(pace.delay(11, t0 + Duration::from_secs(3600)).is_some());
    }
}
