//! The services a shard runs: accept loops for every configured listener, the mesh
//! receivers, and the session drivers they spawn.

pub mod admin;
pub mod auth;
pub mod imap;
pub mod imap_append;
pub mod imap_backend;
pub mod lmtp;
pub mod placeholder;
pub mod pop3;
pub mod poppassd;
pub mod socketmap;

use std::net::SocketAddr;
use std::rc::Rc;

use futures::future::{Either, select};
use glommio::channels::shared_channel::ConnectedReceiver;
use glommio::net::{TcpListener, TcpStream};

use std::time::Duration;

use store::Address;

use crate::config::Service;
use crate::conn::Conn;
use crate::handoff::{Handoff, SessionHandoff};
use crate::mesh::MeshMsg;
use crate::shard::{Shard, handle_request};

/// A bound listener and what it serves.
pub enum Listener {
    /// A shared service port, bound with SO_REUSEPORT on every accepting shard.
    Shared(Service, TcpListener),
    /// This shard's own LMTP port (`lmtp + 1 + shard`), for MTAs that know the hash.
    ShardLmtp(TcpListener),
    /// This shard's own unix LMTP socket (`listen.lmtp_unix`/shard-N.sock).
    ShardLmtpUnix(glommio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    pub fn name(&self) -> String {
        match self {
            Listener::Shared(s, _) => s.key().to_owned(),
            Listener::ShardLmtp(_) => "lmtp-shard".to_owned(),
            Listener::ShardLmtpUnix(..) => "lmtp-unix".to_owned(),
        }
    }
}

/// Binds what this shard listens on, in service start order. The error names the
/// config key and the address, in one line.
pub fn bind_all(shard: &Shard) -> Result<Vec<Listener>, String> {
    let cfg = &shard.config;
    let accepts =
        cfg.engine.accept_shards.is_empty() || cfg.engine.accept_shards.contains(&shard.id);
    let mut out = Vec::new();
    for service in Service::ALL {
        let Some(addr) = cfg.listen_addr(service) else {
            continue;
        };
        if accepts {
            let l = crate::listener::bind_shared(addr)
                .map_err(|e| format!("listen.{} {addr}: {e}", service.key()))?;
            out.push(Listener::Shared(service, l));
        }
        if service == Service::Lmtp {
            let own = shard_lmtp_addr(addr, shard.id).ok_or_else(|| {
                format!(
                    "listen.lmtp {addr}: no room for shard {}'s port above it",
                    shard.id
                )
            })?;
            let l = crate::listener::bind_shared(own)
                .map_err(|e| format!("listen.lmtp (shard {}) {own}: {e}", shard.id))?;
            out.push(Listener::ShardLmtp(l));
        }
    }
    if let Some(path) = cfg.lmtp_unix_path(shard.id) {
        out.push(bind_lmtp_unix(&path)?);
    }
    Ok(out)
}

/// Binds a shard's unix LMTP socket (start-up: blocking file work is fine here).
/// The socket is made connectable by every local user (the MTA's delivery agent
/// runs as its own user), as the loopback TCP port is.
fn bind_lmtp_unix(path: &std::path::Path) -> Result<Listener, String> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| format!("listen.lmtp_unix {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // Left by a server that died; a live one would hold the store lock.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let l = glommio::net::UnixListener::bind(path).map_err(|e| fail(e.into()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(fail)?;
    Ok(Listener::ShardLmtpUnix(l, path.to_path_buf()))
}

/// Accepts on a shard's unix LMTP socket until the shard stops (the file stays;
/// the next start replaces it).
async fn accept_unix_loop(
    shard: Rc<Shard>,
    l: glommio::net::UnixListener,
    path: std::path::PathBuf,
) {
    loop {
        let accepted = {
            let accept = std::pin::pin!(l.accept());
            let stop = shard.shutdown.wait();
            match select(accept, stop).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => return,
            }
        };
        match accepted {
            Ok(stream) => {
                shard.stats.borrow_mut().accepted += 1;
                if shard.session_count() >= shard.config.limits.connections_per_shard as usize {
                    shard.stats.borrow_mut().connections_refused += 1;
                    continue;
                }
                glommio::spawn_local(lmtp::serve_unix(shard.clone(), stream)).detach();
            }
            Err(e) => {
                tracing::warn!("shard accept on {}: {e}", path.display());
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Shard `id`'s own LMTP address: the shared port + 1 + id (DESIGN §2).
pub fn shard_lmtp_addr(shared: SocketAddr, id: usize) -> Option<SocketAddr> {
    let port = u16::try_from(shared.port() as usize + 1 + id).ok()?;
    Some(SocketAddr::new(shared.ip(), port))
}

/// Accepts until the shard stops.
pub async fn accept_loop(shard: Rc<Shard>, listener: Listener) {
    let (service, l) = match listener {
        Listener::Shared(s, l) => (s, l),
        Listener::ShardLmtp(l) => (Service::Lmtp, l),
        Listener::ShardLmtpUnix(l, path) => return accept_unix_loop(shard, l, path).await,
    };
    loop {
        let accepted = {
            let accept = std::pin::pin!(l.accept());
            let stop = shard.shutdown.wait();
            match select(accept, stop).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => return,
            }
        };
        match accepted {
            Ok(stream) => {
                shard.stats.borrow_mut().accepted += 1;
                let shard = shard.clone();
                glommio::spawn_local(serve_connection(shard, service, stream)).detach();
            }
            Err(e) => {
                // Out of descriptors or a connection reset before accept: keep
                // serving, but do not spin.
                tracing::warn!("shard accept on {}: {e}", service.key());
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(shard: Rc<Shard>, service: Service, stream: TcpStream) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    // Answers are small and often follow each other (pipelining, LMTP's per-
    // recipient replies): Nagle would hold them for the client's delayed ACK.
    let _ = stream.set_nodelay(true);
    if shard.session_count() >= shard.config.limits.connections_per_shard as usize
        || shard.sessions_of(peer.ip()) >= shard.config.limits.connections_per_ip
    {
        shard.stats.borrow_mut().connections_refused += 1;
        placeholder::refuse_busy(service, stream).await;
        return;
    }
    // Each service's future is boxed: a connection's task then holds its own service's
    // state, not room for the largest of them, which every idle IMAP connection paid
    // for (this future was 10 KB, IMAP's own under 5).
    match service {
        Service::Imap | Service::Imaps => Box::pin(imap::serve(shard, service, stream, peer)).await,
        Service::Lmtp => Box::pin(lmtp::serve(shard, stream, peer)).await,
        Service::Pop3 | Service::Pop3s => Box::pin(pop3::serve(shard, service, stream, peer)).await,
        Service::Poppassd => Box::pin(poppassd::serve(shard, stream, peer)).await,
        Service::Socketmap => Box::pin(socketmap::serve(shard, stream, peer)).await,
        other => Box::pin(placeholder::serve(shard, other, stream, peer)).await,
    }
}

/// What a session's wait for input ended with.
pub enum Input {
    /// Bytes (0 = the peer closed).
    Read(usize),
    Failed,
    /// The shard is stopping.
    Stopping,
    /// Nothing arrived for the idle limit.
    Idle,
}

/// Reads from `conn`, unless the shard stops or the peer stays silent for `idle`.
pub async fn read_input(shard: &Shard, conn: &mut Conn, buf: &mut [u8], idle: Duration) -> Input {
    wait_input(shard, conn.read(buf), idle).await
}

/// Waits for `read`, unless the shard stops or the peer stays silent for `idle`.
pub async fn wait_input(
    shard: &Shard,
    read: impl std::future::Future<Output = std::io::Result<usize>>,
    idle: Duration,
) -> Input {
    let read = std::pin::pin!(read);
    let timer = std::pin::pin!(glommio::timer::sleep(idle));
    let stop = std::pin::pin!(select(shard.shutdown.wait(), timer));
    match select(read, stop).await {
        Either::Left((Ok(n), _)) => Input::Read(n),
        Either::Left((Err(_), _)) => Input::Failed,
        Either::Right((Either::Left(_), _)) => Input::Stopping,
        Either::Right((Either::Right(_), _)) => Input::Idle,
    }
}

/// The connection of a newly accepted client: TLS from the first byte on an
/// implicit-TLS listener (IMAPS, POP3S), plain otherwise.
pub fn open_conn(
    shard: &Shard,
    implicit_tls: bool,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<Conn> {
    if !implicit_tls {
        return Some(Conn::plain(stream));
    }
    match Conn::start_tls(stream, shard.tls.current()) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("tls {peer}: {e}");
            None
        }
    }
}

/// Moves a logged-in session to the shard that owns its user: the socket is
/// detached here and re-attached there, with its TLS state and session state.
pub async fn move_to_owner(
    shard: &Rc<Shard>,
    service: Service,
    owner: usize,
    conn: Conn,
    peer: SocketAddr,
    user: Address,
    session: SessionHandoff,
) {
    let (stream, tls) = conn.into_parts();
    let fd = match crate::handoff::detach(stream) {
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
        session,
    };
    if let Err(e) = shard.handoff(owner, h).await {
        tracing::warn!("hand-off to shard {owner}: {e}");
    }
}

/// The goodbyes a service says when the shard stops or a client stays silent.
pub struct Goodbyes {
    pub stopping: &'static [u8],
    pub idle: &'static [u8],
}

/// Waits for the next bytes from the client: `Some(n)` when `n > 0` bytes are in
/// `buf`; `None` when the session is over (the peer closed, an error, or the shard
/// stops / the client was idle, in which case the goodbye has been sent).
pub async fn next_input(
    shard: &Shard,
    conn: &mut Conn,
    buf: &mut [u8],
    idle: Duration,
    bye: &Goodbyes,
) -> Option<usize> {
    let line = match read_input(shard, conn, buf, idle).await {
        Input::Read(n) if n > 0 => return Some(n),
        Input::Read(_) | Input::Failed => return None,
        Input::Stopping => bye.stopping,
        Input::Idle => bye.idle,
    };
    let _ = conn.write_all(line).await;
    None
}

/// Serves calls and hand-offs arriving from one other shard.
pub async fn mesh_receiver(shard: Rc<Shard>, rx: ConnectedReceiver<MeshMsg>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            MeshMsg::Call { req, reply } => {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let resp = handle_request(shard, req).await;
                    // The caller may have gone away; nothing to do then.
                    let _ = reply.send(resp);
                })
                .detach();
            }
            MeshMsg::Handoff(h) => {
                shard.stats.borrow_mut().handoffs_in += 1;
                glommio::spawn_local(adopt(shard.clone(), *h)).detach();
            }
        }
    }
}

async fn adopt(shard: Rc<Shard>, h: Handoff) {
    let Handoff {
        fd,
        peer,
        service,
        user,
        from_shard,
        tls,
        session,
    } = h;
    tracing::debug!("adopting {service:?} session of {user} from shard {from_shard}");
    match session {
        SessionHandoff::Pop3(state) => {
            Box::pin(pop3::adopt(shard, service, fd, tls, peer, user, *state)).await
        }
        SessionHandoff::Imap(state) => {
            Box::pin(imap::adopt(shard, service, fd, tls, peer, user, *state)).await
        }
    }
}
