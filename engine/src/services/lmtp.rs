//! The LMTP delivery channel (issue 4): drives a sans-IO `LmtpSession`. Each RCPT
//! is validated by the shard that owns the recipient, so unknown, disabled and
//! over-quota recipients are refused before the message is sent; after the data,
//! each owning shard gets the message once with its recipients, stores it with one
//! group commit, and only then is each recipient answered.
//!
//! The same session runs on the shared TCP port, on each shard's own TCP port
//! (`lmtp + 1 + shard`) and on each shard's unix socket (`listen.lmtp_unix`,
//! `shard-N.sock`). On a shard's own socket a recipient of another shard is not
//! refused: like the shared port, it is validated and delivered by its owner over
//! the mesh (DESIGN §2: an MTA that got the hash right pays no hop; one that did
//! not — a stale shard count, a forward to another shard's user — still delivers).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{Either, select};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::{TcpStream, UnixStream};
use protocols::lmtp::{LmtpConfig, LmtpEvent, LmtpSession, RecipientCheck, Reply};
use store::Address;

use crate::config::Service;
use crate::limits::LMTP_IDLE_SECONDS;
use crate::mesh::{DeliveryResult, Request, Response};
use crate::shard::Shard;
use protocols::limits::LMTP_INPUT_BUFFER_BYTES_MAX as LMTP_READ_BYTES;

/// A client on TCP (the shared port or the shard's own).
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _guard = shard.register_session(Service::Lmtp, peer, None);
    session(&shard, stream).await;
}

/// A client on the shard's unix socket (shown with the unspecified address).
pub async fn serve_unix(shard: Rc<Shard>, stream: UnixStream) {
    let peer = SocketAddr::from(([0, 0, 0, 0], 0));
    let _guard = shard.register_session(Service::Lmtp, peer, None);
    session(&shard, stream).await;
}

/// LMTP never runs TLS, so the session works on the bare stream, TCP or unix.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(shard: &Rc<Shard>, mut conn: S) {
    let mut session = LmtpSession::new(LmtpConfig {
        server_name: "msgstore".into(),
        ..LmtpConfig::default()
    });
    let mut message: Vec<u8> = Vec::new();
    // The length of the Return-Path line `message` begins with (0: no data yet).
    let mut prefix = 0;
    // Messages arrive in bulk: reads as large as the session can take (its input
    // limit) rather than the 4 KB chunks of the line protocols, so a message of tens of
    // kilobytes is a read or two, not a dozen.
    let mut buf = vec![0u8; LMTP_READ_BYTES];
    // Replies not yet sent. A pipelining client (RFC 2920) sends MAIL, its RCPTs and
    // DATA at once: their replies go out in one send, when the session next waits for
    // input or before a delivery, rather than one send each. Only a recipient check
    // (on the shard or over the mesh, never on disk) runs while replies wait.
    let mut unsent: Vec<u8> = Vec::new();
    loop {
        if let Some(out) = session.poll_output() {
            if unsent.is_empty() {
                unsent = out;
            } else {
                unsent.extend_from_slice(&out);
            }
        }
        if let Some(event) = session.poll_event() {
            match event {
                LmtpEvent::ValidateRecipient { address, mail_size } => {
                    let check = validate(shard, &address, mail_size).await;
                    session.recipient_checked(check);
                }
                // The stored message begins with its Return-Path line, written with the
                // first piece: the pieces are copied once, into the buffer every
                // recipient's copy shares.
                LmtpEvent::Data { bytes } if message.is_empty() => {
                    let from = session.mail_from();
                    prefix = return_path_len(from);
                    message = Vec::with_capacity(prefix + bytes.len());
                    push_return_path(&mut message, from);
                    message.extend_from_slice(&bytes);
                }
                LmtpEvent::Data { bytes } => message.extend_from_slice(&bytes),
                LmtpEvent::DiscardData => {
                    message.clear();
                    prefix = 0;
                }
                LmtpEvent::Deliver {
                    mail_from,
                    recipients,
                    ..
                } => {
                    if flush(&mut conn, &mut unsent).await.is_err() {
                        return;
                    }
                    let data = std::mem::take(&mut message);
                    let had = std::mem::take(&mut prefix);
                    let replies = deliver(shard, &mail_from, &recipients, data, had).await;
                    for (i, reply) in replies.into_iter().enumerate() {
                        session.recipient_result(i, reply);
                    }
                }
                LmtpEvent::Close => {
                    let _ = flush(&mut conn, &mut unsent).await;
                    let _ = conn.close().await;
                    return;
                }
            }
            continue;
        }
        if flush(&mut conn, &mut unsent).await.is_err() {
            return;
        }
        let room = session.input_room().clamp(1, buf.len());
        let idle = Duration::from_secs(LMTP_IDLE_SECONDS);
        // A connection that ends mid-message delivers nothing.
        let got = {
            let read = std::pin::pin!(conn.read(&mut buf[..room]));
            let timer = std::pin::pin!(glommio::timer::sleep(idle));
            let stop = std::pin::pin!(select(shard.shutdown.wait(), timer));
            match select(read, stop).await {
                Either::Left((Ok(n), _)) => Ok(n),
                Either::Left((Err(_), _)) => Ok(0),
                Either::Right((Either::Left(_), _)) => {
                    Err(&b"421 4.3.2 Server shutting down\r\n"[..])
                }
                Either::Right((Either::Right(_), _)) => {
                    Err(&b"421 4.4.2 Idle for too long\r\n"[..])
                }
            }
        };
        match got {
            Ok(0) => {
                let _ = conn.close().await;
                return;
            }
            Ok(n) => {
                let _ = session.handle_input(&buf[..n]);
            }
            Err(bye) => {
                let _ = conn.write_all(bye).await;
                let _ = conn.close().await;
                return;
            }
        }
    }
}

/// Sends the replies held in `unsent`, if any.
async fn flush<S: AsyncWrite + Unpin>(conn: &mut S, unsent: &mut Vec<u8>) -> std::io::Result<()> {
    if !unsent.is_empty() {
        conn.write_all(unsent).await?;
        unsent.clear();
    }
    Ok(())
}

fn return_path_len(mail_from: &str) -> usize {
    b"Return-Path: <>\r\n".len() + mail_from.len()
}

fn push_return_path(out: &mut Vec<u8>, mail_from: &str) {
    out.extend_from_slice(b"Return-Path: <");
    out.extend_from_slice(mail_from.as_bytes());
    out.extend_from_slice(b">\r\n");
}

async fn validate(shard: &Rc<Shard>, address: &str, mail_size: Option<u64>) -> RecipientCheck {
    let Ok((user, _folder)) = Address::parse_recipient(address) else {
        return RecipientCheck::Unknown;
    };
    let owner = shard.owner_of(&user);
    match shard
        .call(
            owner,
            Request::ValidateRecipient {
                address: user,
                mail_size,
            },
        )
        .await
    {
        Ok(Response::Recipient(check)) => check,
        _ => RecipientCheck::TemporaryFailure,
    }
}

/// Delivers to every recipient, each owning shard once; one reply per recipient.
/// `message` is the data as the session collected it: a Return-Path line of `had`
/// bytes and the body (nothing at all when there was no data).
async fn deliver(
    shard: &Rc<Shard>,
    mail_from: &str,
    recipients: &[String],
    mut message: Vec<u8>,
    had: usize,
) -> Vec<Reply> {
    let prefix = return_path_len(mail_from);
    let mut line = Vec::with_capacity(prefix);
    push_return_path(&mut line, mail_from);
    if message.get(..had) != Some(&line[..]) {
        // No data (an empty message), or a line for another sender than this
        // transaction's (`LmtpSession::mail_from` says it cannot be): the right line
        // and the body.
        line.extend_from_slice(message.get(had..).unwrap_or_default());
        message = line;
    }
    let message = Arc::new(message);
    // The body alone, for the outbound queue (external forwards), which adds its own
    // Return-Path.
    let body = || message[prefix..].to_vec();

    let mut replies: Vec<Option<Reply>> = vec![None; recipients.len()];
    // Where each recipient's copies go, after the forwarding database.
    let mut targets: Vec<(usize, Address, Option<String>)> = Vec::new();
    // Recipients forwarded outside the store, with their external targets.
    let mut external: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, r) in recipients.iter().enumerate() {
        let Ok((user, folder)) = Address::parse_recipient(r) else {
            replies[i] = Some(Reply::temporary_failure());
            continue;
        };
        match resolve(shard, &user).await {
            Err(e) => {
                tracing::warn!("forwarding of {user}: {e}");
                replies[i] = Some(Reply::temporary_failure());
            }
            Ok(res) if res.loop_detected => {
                let why = res.problem.unwrap_or_else(|| "forwarding loop".into());
                tracing::warn!("{user}: {why}");
                replies[i] =
                    Reply::new(554, "5.4.6", &format!("Forwarding loop for <{user}>")).ok();
            }
            Ok(res) if !res.external.is_empty() && !relay_configured(shard) => {
                // Without a relay the mail could not leave: defer the whole recipient
                // (nothing delivered), so the MTA's retry does not duplicate.
                tracing::warn!(
                    "{user}: forwards outside the store ({}), but no [outbound] relay is set",
                    res.external.join(", ")
                );
                replies[i] =
                    Reply::new(451, "4.3.0", "No relay configured for external forwarding").ok();
            }
            Ok(res) => {
                if !res.external.is_empty() {
                    external.push((i, res.external));
                }
                for (local, detail) in res.local_targets {
                    // The recipient's own +folder applies to the address itself; a
                    // forward target files into the +folder its entry names.
                    let f = if local == user {
                        folder.clone()
                    } else {
                        detail
                    };
                    targets.push((i, local, f));
                }
            }
        }
    }
    // External targets are queued durably before anything is answered; a recipient
    // whose copies cannot be queued is deferred and gets no local copy either. (The
    // other way round — queued, then a local copy fails and the recipient gets a
    // 4xx — the MTA's retry queues the external copy again: at least once.)
    if !external.is_empty() {
        let mut all: Vec<String> = Vec::new();
        for (_, list) in &external {
            for t in list {
                if !all.iter().any(|a| a.eq_ignore_ascii_case(t)) {
                    all.push(t.clone());
                }
            }
        }
        let queued = match shard.outbound.get() {
            Some(q) => q.enqueue(Arc::new(body()), mail_from, all).await,
            None => Err(store::StoreError::InvalidValue {
                field: "outbound",
                reason: "no queue on this shard".into(),
            }),
        };
        match queued {
            Ok(id) => tracing::info!("queued {id} from <{mail_from}> for external forwards"),
            Err(e) => {
                tracing::warn!("outbound queue: {e}");
                for (i, _) in &external {
                    replies[*i] = Some(Reply::temporary_failure());
                }
                targets.retain(|(i, _, _)| replies[*i].is_none());
            }
        }
    }
    // owner -> (recipient index, address, folder); one copy per address.
    let mut by_owner: BTreeMap<usize, Vec<(usize, Address, Option<String>)>> = BTreeMap::new();
    let mut copies: BTreeMap<(Address, Option<String>), Vec<usize>> = BTreeMap::new();
    for (i, user, folder) in targets {
        copies.entry((user, folder)).or_default().push(i);
    }
    for ((user, folder), owners) in &copies {
        by_owner.entry(shard.owner_of(user)).or_default().push((
            owners[0],
            user.clone(),
            folder.clone(),
        ));
    }
    let calls = by_owner.into_iter().map(|(owner, list)| {
        let message = message.clone();
        async move {
            let keys: Vec<(Address, Option<String>)> = list
                .iter()
                .map(|(_, u, f)| (u.clone(), f.clone()))
                .collect();
            let recipients = keys.clone();
            let answer = shard
                .call(
                    owner,
                    Request::Deliver {
                        message,
                        recipients,
                    },
                )
                .await;
            (keys, answer)
        }
    });
    // The worst result of a recipient's copies is its reply.
    let mut outcome: Vec<Option<DeliveryResult>> = vec![None; recipients.len()];
    for (keys, answer) in futures::future::join_all(calls).await {
        let results = match answer {
            Ok(Response::Delivered(results)) => results,
            _ => vec![DeliveryResult::TemporaryFailure("shard unavailable".into()); keys.len()],
        };
        for (key, result) in keys.into_iter().zip(results) {
            for i in copies.get(&key).into_iter().flatten() {
                let slot = &mut outcome[*i];
                if severity(&result) > slot.as_ref().map_or(0, severity) {
                    *slot = Some(result.clone());
                }
            }
        }
    }
    replies
        .into_iter()
        .zip(outcome)
        .enumerate()
        .map(|(i, (reply, result))| match (reply, result) {
            (Some(r), _) => r,
            (None, Some(DeliveryResult::Stored)) => Reply::delivered(),
            (None, Some(DeliveryResult::OverQuota)) => Reply::mailbox_full(),
            (None, Some(DeliveryResult::TemporaryFailure(_))) => Reply::temporary_failure(),
            // Every copy left through the queue (it is durable there).
            (None, None) if queued_only(&external, i) => Reply::delivered(),
            // No local copy at all (cannot happen for an accepted recipient).
            (None, None) => Reply::temporary_failure(),
        })
        .collect()
}

fn relay_configured(shard: &Shard) -> bool {
    shard.outbound.get().is_some_and(|q| q.has_relay())
}

/// Recipient `i` had external targets (and, if we got here, they were queued).
fn queued_only(external: &[(usize, Vec<String>)], i: usize) -> bool {
    external.iter().any(|(r, _)| *r == i)
}

/// Orders results so a recipient's reply is its worst copy's.
fn severity(r: &DeliveryResult) -> u8 {
    match r {
        DeliveryResult::Stored => 1,
        DeliveryResult::OverQuota => 2,
        DeliveryResult::TemporaryFailure(_) => 3,
    }
}

/// Follows the forwarding database for `user`. Most recipients have no entry and are an
/// account here: that is two lookups in the page cache (a failed open, a stat), done
/// on the shard, which costs less than the round trip to a helper thread. Anything else
/// (an entry to follow, reads of entries in any bucket) runs on a helper thread.
async fn resolve(
    shard: &Rc<Shard>,
    user: &Address,
) -> Result<store::forward::Resolution, store::StoreError> {
    let store = shard.store.clone();
    if store.forward(user)?.is_none() && store.profile_path(user).is_file() {
        return Ok(store::forward::Resolution {
            local: vec![user.clone()],
            // As the walk files it: with the +detail its canonical name gives (none).
            local_targets: vec![(
                user.clone(),
                Address::parse_recipient(user.as_str())
                    .ok()
                    .and_then(|(_, detail)| detail),
            )],
            ..store::forward::Resolution::default()
        });
    }
    let user = user.clone();
    glommio::executor()
        .spawn_blocking(move || {
            store::forward::resolve(&store, &user, |a| store.profile_path(a).is_file())
        })
        .await
}
