//! The poppassd password-change service (issue 6) for Eudora/Mulberry-era clients
//! and ISP scripts. The old password is checked like a login (same throttles); the
//! change runs on the shard that owns the account and takes effect for every
//! protocol at once.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpStream;
use protocols::poppassd::{
    PasswordChange, PasswordCheck, PoppassdConfig, PoppassdEvent, PoppassdSession,
};
use store::Address;

use crate::config::Service;
use crate::conn::Conn;
use crate::limits::READ_CHUNK_BYTES;
use crate::mesh::{AuthOutcome, Request, Response};
use crate::services::auth::login;
use crate::services::{Goodbyes, next_input};
use crate::shard::Shard;

pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _guard = shard.register_session(Service::Poppassd, peer, None);
    let mut conn = Conn::plain(stream);
    let mut session = PoppassdSession::new(PoppassdConfig {
        server_name: "msgstore".into(),
    });
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    loop {
        while let Some(out) = session.poll_output() {
            if conn.write_all(&out).await.is_err() {
                return;
            }
        }
        if let Some(event) = session.poll_event() {
            match event {
                PoppassdEvent::CheckPassword { user, old } => {
                    let check =
                        match login(&shard, Service::Poppassd, peer, user.as_bytes(), old).await {
                            Ok(_) => PasswordCheck::Correct,
                            Err(AuthOutcome::Unavailable) => PasswordCheck::Unavailable,
                            Err(_) => PasswordCheck::Incorrect,
                        };
                    session.check_result(check);
                }
                PoppassdEvent::ChangePassword { user, old, new } => {
                    let change = match Address::parse(&user) {
                        Err(_) => PasswordChange::Refused("Old password is incorrect.".into()),
                        Ok(address) => {
                            let owner = shard.owner_of(&address);
                            match shard
                                .call(owner, Request::ChangePassword { address, old, new })
                                .await
                            {
                                Ok(Response::PasswordChanged(c)) => c,
                                _ => PasswordChange::Unavailable,
                            }
                        }
                    };
                    session.change_result(change);
                }
                PoppassdEvent::Close => {
                    conn.close().await;
                    return;
                }
            }
            continue;
        }
        let room = session.input_room().clamp(1, buf.len());
        let idle = Duration::from_secs(shard.config.limits.idle_preauth_seconds);
        const BYE: Goodbyes = Goodbyes {
            stopping: b"500 Server shutting down\r\n",
            idle: b"500 Idle for too long\r\n",
        };
        let Some(n) = next_input(&shard, &mut conn, &mut buf[..room], idle, &BYE).await else {
            conn.close().await;
            return;
        };
        let _ = session.handle_input(&buf[..n]);
    }
}
