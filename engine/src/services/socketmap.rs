//! The Postfix socketmap service (issue 4, `socketmap_table(5)`): per recipient,
//! which LMTP socket owns it (`transport`), whether it may receive mail now
//! (`recipient`, the same check LMTP makes at RCPT), and where the forwarding
//! database sends it (`virtual`). With these Postfix refuses unknown recipients at
//! SMTP time and delivers straight to the owning shard.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpStream;
use protocols::lmtp::RecipientCheck;
use protocols::socketmap::{MapName, SocketmapEvent, SocketmapReply, SocketmapSession};
use store::Address;

use crate::config::{LmtpTransport, Service};
use crate::conn::Conn;
use crate::limits::{READ_CHUNK_BYTES, SOCKETMAP_IDLE_SECONDS};
use crate::mesh::{Request, Response};
use crate::services::{Goodbyes, next_input, shard_lmtp_addr};
use crate::shard::Shard;

pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _guard = shard.register_session(Service::Socketmap, peer, None);
    let mut conn = Conn::plain(stream);
    let mut session = SocketmapSession::new();
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    loop {
        while let Some(out) = session.poll_output() {
            if conn.write_all(&out).await.is_err() {
                return;
            }
        }
        if let Some(event) = session.poll_event() {
            match event {
                SocketmapEvent::Lookup { map, key } => {
                    let reply = lookup(&shard, &map, &key).await;
                    let _ = session.reply(reply);
                }
                SocketmapEvent::Close => {
                    conn.close().await;
                    return;
                }
            }
            continue;
        }
        const BYE: Goodbyes = Goodbyes {
            stopping: b"",
            idle: b"",
        };
        let room = session.input_room().clamp(1, buf.len());
        let idle = Duration::from_secs(SOCKETMAP_IDLE_SECONDS);
        let Some(n) = next_input(&shard, &mut conn, &mut buf[..room], idle, &BYE).await else {
            conn.close().await;
            return;
        };
        let _ = session.handle_input(&buf[..n]);
    }
}

async fn lookup(shard: &Rc<Shard>, map: &MapName, key: &str) -> SocketmapReply {
    // Postfix also asks for bare domains and `@domain`: no entry is keyed by those.
    let Ok((user, _detail)) = Address::parse_recipient(key) else {
        return SocketmapReply::NotFound;
    };
    match map {
        MapName::Transport if shard.config.lmtp_transport == LmtpTransport::Unix => {
            match shard.config.lmtp_unix_path(shard.owner_of(&user)) {
                Some(path) => match std::path::absolute(&path) {
                    Ok(p) => SocketmapReply::lmtp_unix(&p.to_string_lossy()),
                    Err(_) => SocketmapReply::Temp("no path for the owner's LMTP socket".into()),
                },
                None => SocketmapReply::Temp("LMTP unix sockets are off".into()),
            }
        }
        MapName::Transport => {
            let Some(lmtp) = shard.config.listen_addr(Service::Lmtp) else {
                return SocketmapReply::Temp("LMTP is not configured".into());
            };
            match shard_lmtp_addr(lmtp, shard.owner_of(&user)) {
                Some(own) => {
                    let host = if own.ip().is_unspecified() {
                        "127.0.0.1".to_owned()
                    } else {
                        own.ip().to_string()
                    };
                    SocketmapReply::lmtp_inet(&host, own.port())
                }
                None => SocketmapReply::Temp("no LMTP port for the owning shard".into()),
            }
        }
        MapName::Recipient => {
            let owner = shard.owner_of(&user);
            let req = Request::ValidateRecipient {
                address: user,
                mail_size: None,
            };
            match shard.call(owner, req).await {
                Ok(Response::Recipient(RecipientCheck::Accept)) => SocketmapReply::recipient_ok(),
                Ok(Response::Recipient(RecipientCheck::Unknown | RecipientCheck::Disabled)) => {
                    SocketmapReply::NotFound
                }
                Ok(Response::Recipient(
                    RecipientCheck::OverQuota | RecipientCheck::MessageOverQuota,
                )) => SocketmapReply::Temp("mailbox full".into()),
                _ => SocketmapReply::Temp("store unavailable".into()),
            }
        }
        MapName::Virtual => {
            let store = shard.store.clone();
            let who = user.clone();
            let entry = glommio::executor()
                .spawn_blocking(move || store.forward(&who))
                .await;
            match entry {
                Ok(Some(f)) => {
                    let mut targets: Vec<String> =
                        f.targets.iter().map(|t| t.as_str().to_owned()).collect();
                    if f.keep_copy {
                        targets.push(user.to_string());
                    }
                    SocketmapReply::virtual_targets(targets)
                }
                Ok(None) => SocketmapReply::NotFound,
                Err(e) => {
                    tracing::warn!("socketmap virtual {user}: {e}");
                    SocketmapReply::Temp("forwarding database unreadable".into())
                }
            }
        }
        MapName::Other(name) => SocketmapReply::Perm(format!("no map named {name}")),
    }
}
