//! The admin unix socket (shard 0): one JSON request line in, one answer line out.
//! Account requests run on the shard that owns the account; list, stats and who
//! gather every shard's part.

use std::path::Path;
use std::rc::Rc;

use futures::future::{Either, select};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{UnixListener, UnixStream};
use store::Address;

use crate::admin::proto::{AdminRequest, AdminResponse};
use crate::limits::ADMIN_REQUEST_BYTES_MAX;
use crate::mesh::{Request, Response};
use crate::shard::Shard;

pub fn bind(path: &Path) -> Result<UnixListener, String> {
    // We hold the store lock, so a socket file left here is from a dead server.
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(|e| format!("admin socket {}: {e}", path.display()))
}

pub async fn accept_loop(shard: Rc<Shard>, listener: UnixListener) {
    loop {
        let accepted = {
            let accept = std::pin::pin!(listener.accept());
            match select(accept, shard.shutdown.wait()).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => return,
            }
        };
        match accepted {
            Ok(stream) => {
                glommio::spawn_local(serve(shard.clone(), stream)).detach();
            }
            Err(e) => {
                tracing::warn!("admin accept: {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(shard: Rc<Shard>, mut stream: UnixStream) {
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    let answer = loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => line.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = line.iter().position(|b| *b == b'\n') {
            line.truncate(end);
            break match serde_json::from_slice::<AdminRequest>(&line) {
                Ok(req) => route(&shard, req).await,
                Err(e) => error(format!("bad admin request: {e}")),
            };
        }
        if line.len() > ADMIN_REQUEST_BYTES_MAX {
            break error("admin request too long".into());
        }
    };
    let mut out = serde_json::to_vec(&answer).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}

/// Queue requests go to every shard (each runs its own spools); the answers merge.
async fn queue(shard: &Rc<Shard>, req: AdminRequest) -> AdminResponse {
    let mut entries = Vec::new();
    let mut flushed = 0;
    let mut deleted = false;
    let mut last_error = None;
    for s in 0..shard.count {
        match shard.call(s, Request::Admin(req.clone())).await {
            Ok(Response::Admin(AdminResponse::Queue { entries: mut e })) => entries.append(&mut e),
            Ok(Response::Admin(AdminResponse::Flushed { count })) => flushed += count,
            Ok(Response::Admin(AdminResponse::Done)) => deleted = true,
            Ok(Response::Admin(AdminResponse::Error { message })) => last_error = Some(message),
            Ok(_) => return error("unexpected answer from a shard".into()),
            Err(e) => return error(e.to_string()),
        }
    }
    match req {
        AdminRequest::QueueList => {
            entries.sort_by(|a, b| (a.created_unix, &a.id).cmp(&(b.created_unix, &b.id)));
            AdminResponse::Queue { entries }
        }
        AdminRequest::QueueFlush => AdminResponse::Flushed { count: flushed },
        _ if deleted => AdminResponse::Done,
        _ => error(last_error.unwrap_or_else(|| "no such queue entry".into())),
    }
}

fn error(message: String) -> AdminResponse {
    AdminResponse::Error { message }
}

async fn route(shard: &Rc<Shard>, req: AdminRequest) -> AdminResponse {
    if matches!(req, AdminRequest::ForwardList { address: None }) {
        // A read-only walk of the forward tree, like `account list` offline.
        let store = shard.store.clone();
        return glommio::executor()
            .spawn_blocking(move || crate::admin::ops::execute(&store, req))
            .await;
    }
    if req.is_queue() {
        return queue(shard, req).await;
    }
    if let Some(address) = req.address() {
        let owner = match Address::parse(address) {
            Ok(a) => shard.owner_of(&a),
            Err(e) => return error(e.to_string()),
        };
        return match shard.call(owner, Request::Admin(req)).await {
            Ok(Response::Admin(r)) => r,
            Ok(_) => error("unexpected answer from the owning shard".into()),
            Err(e) => error(e.to_string()),
        };
    }
    match req {
        AdminRequest::AccountList => {
            let mut all = Vec::new();
            for s in 0..shard.count {
                match shard.call(s, Request::ListLocal).await {
                    Ok(Response::Admin(AdminResponse::Accounts { addresses })) => {
                        all.extend(addresses)
                    }
                    Ok(Response::Admin(e @ AdminResponse::Error { .. })) => return e,
                    Ok(_) => return error("unexpected answer from a shard".into()),
                    Err(e) => return error(e.to_string()),
                }
            }
            all.sort();
            AdminResponse::Accounts { addresses: all }
        }
        AdminRequest::Stats | AdminRequest::Who => {
            let mut shards = Vec::new();
            let mut sessions = Vec::new();
            for s in 0..shard.count {
                match shard.call(s, Request::Stats).await {
                    Ok(Response::Stats {
                        stats,
                        sessions: mut list,
                    }) => {
                        shards.push(stats);
                        sessions.append(&mut list);
                    }
                    Ok(_) => return error("unexpected answer from a shard".into()),
                    Err(e) => return error(e.to_string()),
                }
            }
            if matches!(req, AdminRequest::Stats) {
                AdminResponse::Stats { shards }
            } else {
                AdminResponse::Who { sessions }
            }
        }
        _ => error("request names no account".into()),
    }
}
