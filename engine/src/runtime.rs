//! Starting and stopping the shards (DESIGN §2). The main thread owns nothing of the
//! data path: it takes the store lock, starts one pinned executor per shard, logs
//! `msgstore ready` once every shard has bound its listeners, and on SIGTERM/SIGINT
//! tells each shard to stop (each stops its services in reverse start order). On
//! SIGHUP it reloads the TLS certificate: sessions started afterwards use the new
//! one, running sessions keep theirs.

use std::net::TcpListener as StdTcpListener;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::channel::oneshot;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use store::{Store, StoreLock};

use crate::config::{Config, Service};
use crate::hasher::Hasher;
use crate::limits::{
    BLOCKING_THREADS_PER_SHARD, MESH_CHANNEL_CAPACITY, STARTUP_WARN_SECONDS, STOP_GRACE_MS,
};
use crate::mesh::{self, MeshEnds};
use crate::services;
use crate::shard::{LoginSecrets, Shard, Shared};

enum Event {
    Ready(usize),
    Failed(usize, String),
    Exited(usize),
    Signal(i32),
}

pub fn serve(config: Config) -> anyhow::Result<()> {
    raise_fd_limit();
    let root0 = &config.store.roots[0];
    std::fs::create_dir_all(root0).with_context(|| format!("store root {}", root0.display()))?;
    let lock = StoreLock::try_acquire(root0)?;
    let store = Arc::new(Store::open(
        &config.store.roots,
        config.store.fanout_levels,
    )?);
    let shards = config.shard_count();
    probe_ports(&config, shards)?;
    let tls = crate::tls::Certificates::new(crate::tls::server_config(&config)?);
    match crate::tls::probe_ktls() {
        Ok(()) => tracing::info!("kTLS: the kernel has it (not used yet: TLS stays in rustls)"),
        Err(why) => tracing::info!("kTLS: not available ({why}); TLS stays in rustls"),
    }
    let hasher = Hasher::start(usable_cpus().len())?;
    let login = Arc::new(LoginSecrets::generate(&config)?);
    let cpus = usable_cpus();
    let (events_tx, events) = mpsc::channel::<Event>();
    let signals_tx = events_tx.clone();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    let signal_handle = signals.handle();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if signals_tx.send(Event::Signal(sig)).is_err() {
                    return;
                }
            }
        })?;

    let mut stops = Vec::new();
    let mut joins = Vec::new();
    for ends in mesh::build(shards, MESH_CHANNEL_CAPACITY) {
        let id = ends.shard_id();
        let cpu = cpus[id % cpus.len()];
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        stops.push(stop_tx);
        let shared = Shared {
            config: config.clone(),
            store: store.clone(),
            tls: tls.clone(),
            hasher: hasher.clone(),
            login: login.clone(),
        };
        let events = events_tx.clone();
        let join = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("shard-{id}"))
            .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS_PER_SHARD))
            .spawn(move || async move {
                run_shard(id, shards, cpu, shared, ends, stop_rx, &events).await;
                let _ = events.send(Event::Exited(id));
            })
            .map_err(|e| anyhow::anyhow!("starting shard {id} on cpu {cpu}: {e}"))?;
        joins.push(join);
    }
    drop(events_tx);

    let mut ready = 0;
    let mut failure = None;
    let mut running = shards;
    let started = std::time::Instant::now();
    let mut warned = false;
    while running > 0 {
        let event = match events.recv_timeout(Duration::from_secs(1)) {
            Ok(e) => e,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if ready < shards
                    && !warned
                    && started.elapsed() > Duration::from_secs(STARTUP_WARN_SECONDS)
                {
                    warned = true;
                    tracing::warn!(
                        "only {ready} of {shards} shards are listening after {STARTUP_WARN_SECONDS} s"
                    );
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match event {
            Event::Ready(id) => {
                tracing::debug!("shard {id} listening");
                ready += 1;
                if ready == shards {
                    tracing::info!("msgstore ready: {shards} shards, store {}", root0.display());
                }
            }
            Event::Failed(id, why) => {
                failure.get_or_insert(why.clone());
                tracing::error!("shard {id}: {why}");
                stop_all(&mut stops);
            }
            Event::Signal(signal_hook::consts::SIGHUP) => match tls.reload(&config) {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => tracing::error!(
                    "SIGHUP: TLS certificate not reloaded, keeping the old one: {e:#}"
                ),
            },
            Event::Signal(sig) => {
                tracing::info!("signal {sig}: stopping");
                stop_all(&mut stops);
            }
            Event::Exited(id) => {
                tracing::debug!("shard {id} stopped");
                running -= 1;
                // A shard that ends on its own takes the server down with it.
                stop_all(&mut stops);
            }
        }
    }
    for j in joins {
        let _ = j.join();
    }
    signal_handle.close();
    let _ = std::fs::remove_file(config.admin_socket());
    drop(lock);
    match failure {
        Some(why) => bail!(why),
        None => {
            tracing::info!("msgstore stopped");
            Ok(())
        }
    }
}

fn stop_all(stops: &mut Vec<oneshot::Sender<()>>) {
    for s in stops.drain(..) {
        let _ = s.send(());
    }
}

async fn run_shard(
    id: usize,
    count: usize,
    cpu: usize,
    shared: Shared,
    ends: MeshEnds,
    stop: oneshot::Receiver<()>,
    events: &mpsc::Sender<Event>,
) {
    // Every shard connects its mesh ends first: a shard that returned before
    // connecting would leave the others waiting for it forever.
    let (mesh, receivers) = ends.connect().await;
    tracing::debug!("shard {id}: mesh connected");
    let mail = match crate::mail::Mail::open(shared.store.clone(), id) {
        Ok(m) => Rc::new(m),
        Err(e) => {
            let _ = events.send(Event::Failed(id, format!("mail store: {e}")));
            return;
        }
    };
    let admin_path = shared.config.admin_socket();
    let queue = match crate::outbound::Queue::open(&shared.config, id, count) {
        Ok(q) => Rc::new(q),
        Err(e) => {
            let _ = events.send(Event::Failed(id, format!("outbound queue: {e:#}")));
            return;
        }
    };
    let shard = Rc::new(Shard::new(id, count, cpu, shared, mail, mesh));
    let _ = shard.outbound.set(queue.clone());
    let runner = glommio::spawn_local(queue.run(shard.clone()));
    let committer =
        glommio::spawn_local(shard.mail.clone().run_committer(shard.shutdown.clone(), id));
    for rx in receivers {
        glommio::spawn_local(services::mesh_receiver(shard.clone(), rx)).detach();
    }
    let listeners = match services::bind_all(&shard) {
        Ok(l) => l,
        Err(why) => {
            let _ = events.send(Event::Failed(id, why));
            return;
        }
    };
    let mut running = Vec::new();
    for l in listeners {
        let name = l.name();
        running.push((
            name,
            glommio::spawn_local(services::accept_loop(shard.clone(), l)),
        ));
    }
    if id == 0 {
        match services::admin::bind(&admin_path) {
            Ok(l) => running.push((
                "admin".to_owned(),
                glommio::spawn_local(services::admin::accept_loop(shard.clone(), l)),
            )),
            Err(why) => {
                let _ = events.send(Event::Failed(id, why));
                return;
            }
        }
    }
    let _ = events.send(Event::Ready(id));
    let _ = stop.await;

    // Stop accepting, newest service first, then ask sessions to finish.
    for (name, task) in running.into_iter().rev() {
        task.cancel().await;
        tracing::debug!("shard {id}: stopped {name}");
    }
    shard.shutdown.trigger();
    let deadline = std::time::Instant::now() + Duration::from_millis(STOP_GRACE_MS);
    while shard.session_count() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    // An attempt cut short is sent again after the restart (at least once).
    runner.cancel().await;
    // What the sessions staged is made durable before the shard ends.
    committer.await;
}

/// Fails early, with the config key, when a port is taken by another process: with
/// SO_REUSEPORT alone a second server of the same user would silently share it.
fn probe_ports(config: &Config, shards: usize) -> anyhow::Result<()> {
    let mut probes = Vec::new();
    for service in Service::ALL {
        if let Some(addr) = config.listen_addr(service) {
            probes.push(
                StdTcpListener::bind(addr)
                    .with_context(|| format!("listen.{} {addr}", service.key()))?,
            );
            if service == Service::Lmtp {
                for id in 0..shards {
                    let own = services::shard_lmtp_addr(addr, id)
                        .with_context(|| format!("listen.lmtp {addr}: no port for shard {id}"))?;
                    probes.push(
                        StdTcpListener::bind(own).with_context(|| {
                            format!("listen.lmtp {addr}: shard {id}'s port {own}")
                        })?,
                    );
                }
            }
        }
    }
    Ok(())
}

fn usable_cpus() -> Vec<usize> {
    let mut cpus = Vec::new();
    if let Ok(set) = rustix::thread::sched_getaffinity(None) {
        for cpu in 0..rustix::thread::CpuSet::MAX_CPU {
            if set.is_set(cpu) {
                cpus.push(cpu);
            }
        }
    }
    if cpus.is_empty() {
        cpus.push(0);
    }
    cpus
}

/// Each connection is a descriptor: lift the soft limit to the hard one.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
}
