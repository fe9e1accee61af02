//! Mailstore benchmarks (issue 3):
//! - opening a 100 000-message mailbox (index load; no message file is read),
//! - a FETCH FLAGS-equivalent walk of every record,
//! - one durable delivery into that mailbox (stage, fdatasync, apply),
//! - durable deliveries per second with 1, 8 and 64 concurrent deliveries sharing one
//!   group commit (k staged, one fdatasync, k applied),
//! - the shard thread's own work per delivery, without the fdatasync (which runs on a
//!   helper thread): stage (normalise, precompute, journal append) and apply (message
//!   file, cache, index, usage), 64 at a time as under load.
//!
//! `cargo bench -p store --bench mailstore`. Throughput is per message (elements/s).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store::delivery::{Flags, InternalDate, Mailstore};
use store::mailbox::{Index, SystemFlags};
use store::{Address, NewAccount, Store, UsageFlags};

const BIG: usize = 100_000;

fn message(n: usize) -> Vec<u8> {
    format!(
        "From: Sender <s@example.org>\r\nTo: a@example.com\r\nSubject: message {n}\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <{n}@example.org>\r\n\r\n{}\r\n",
        "body text ".repeat(40)
    )
    .into_bytes()
}

struct Env {
    _dir: tempfile::TempDir,
    ms: Mailstore,
    user: Address,
}

fn flush(ms: &mut Mailstore) {
    while let Some(t) = ms.sync_target().expect("sync target") {
        t.run().expect("fdatasync");
        ms.synced(&t);
    }
}

fn env(dir_name: &str) -> Env {
    let dir = tempfile::Builder::new()
        .prefix(dir_name)
        .tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into()))
        .expect("tempdir");
    let store = Arc::new(Store::open(&[dir.path().join("r0")], 2).expect("store"));
    let user = Address::parse("bench@example.com").expect("address");
    store
        .create_account(NewAccount {
            address: user.clone(),
            name: String::new(),
            quota_bytes: 0,
            flags: UsageFlags::default_new(),
            password_hash: None,
        })
        .expect("account");
    let (ms, _) = Mailstore::open(store, 0).expect("mailstore");
    Env {
        _dir: dir,
        ms,
        user,
    }
}

fn big_mailbox() -> Env {
    let mut e = env("ms-big");
    let flags = Flags::default();
    for batch in 0..BIG / 1000 {
        for i in 0..1000 {
            let n = batch * 1000 + i;
            let f = if n % 3 == 0 {
                Flags {
                    system: SystemFlags::SEEN,
                    keywords: vec!["$Work".into()],
                }
            } else {
                flags.clone()
            };
            e.ms.stage_deliver(&e.user, None, &message(n), &f, InternalDate::now())
                .expect("stage");
        }
        flush(&mut e.ms);
    }
    e
}

fn bench_big(c: &mut Criterion) {
    let mut e = big_mailbox();
    let view = e.ms.open_mailbox(&e.user, "INBOX").expect("open");
    assert_eq!(view.uids().len(), BIG);
    let index_path = view.message_path(0).with_file_name("index");
    let mut g = c.benchmark_group("mailbox_100k");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(BIG as u64));
    g.bench_function("open_index", |b| {
        b.iter(|| black_box(Index::open(&index_path).expect("index").records().len()))
    });
    g.bench_function("fetch_flags_walk", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for r in view.records() {
                n += usize::from(r.flags.contains(SystemFlags::SEEN));
                if r.keywords != 0 {
                    n += view.keyword_names(r).len();
                }
            }
            black_box(n)
        })
    });
    g.throughput(Throughput::Elements(1));
    // What an IMAP NOOP/IDLE wake learns after 10 flag changes: the whole-mailbox walk
    // (no change log) against the notifier's log (`engine` StoreBackend::changes).
    e.ms.notifier()
        .watch(&e.user, view.id(), view.highest_modseq());
    let since = view.highest_modseq();
    for uid in 1..=10u32 {
        e.ms.stage_store_flags(
            &e.user,
            "INBOX",
            &[uid * 1000],
            store::journal::record::FlagMode::Add,
            &Flags {
                system: SystemFlags::FLAGGED,
                keywords: Vec::new(),
            },
        )
        .expect("stage flags");
    }
    flush(&mut e.ms);
    let changed = e.ms.open_mailbox(&e.user, "INBOX").expect("open");
    g.bench_function("changes_full_walk", |b| {
        b.iter(|| black_box(changed.changes_since(None, since).updated.len()))
    });
    g.bench_function("changes_from_log", |b| {
        b.iter(|| {
            let log = e.ms.notifier().changes_since(&e.user, changed.id(), since);
            black_box(changed.changes_since(log, since).updated.len())
        })
    });
    assert_eq!(
        changed
            .changes_since(
                e.ms.notifier().changes_since(&e.user, changed.id(), since),
                since
            )
            .updated,
        changed.changes_since(None, since).updated
    );
    drop(changed);
    let mut n = BIG;
    g.bench_function("deliver_durable", |b| {
        b.iter(|| {
            n += 1;
            e.ms.stage_deliver(
                &e.user,
                None,
                &message(n),
                &Flags::default(),
                InternalDate::now(),
            )
            .expect("stage");
            flush(&mut e.ms);
        })
    });
    g.finish();
}

fn bench_group_commit(c: &mut Criterion) {
    let mut e = env("ms-gc");
    let mut g = c.benchmark_group("durable_deliveries");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    let mut n = 0;
    for k in [1usize, 8, 64] {
        g.throughput(Throughput::Elements(k as u64));
        g.bench_function(format!("concurrent_{k}"), |b| {
            b.iter(|| {
                let tickets: Vec<_> = (0..k)
                    .map(|_| {
                        n += 1;
                        e.ms.stage_deliver(
                            &e.user,
                            None,
                            &message(n),
                            &Flags::default(),
                            InternalDate::now(),
                        )
                        .expect("stage")
                    })
                    .collect();
                flush(&mut e.ms);
                for t in &tickets {
                    black_box(e.ms.complete(t));
                }
            })
        });
    }
    g.finish();
}

fn bench_shard_work(c: &mut Criterion) {
    let mut e = env("ms-cpu");
    let mut g = c.benchmark_group("shard_work");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    const K: usize = 64;
    let messages: Vec<Vec<u8>> = (0..K).map(message).collect();
    g.throughput(Throughput::Elements(K as u64));
    // Only the shard thread's part is timed: staging, and applying after the group
    // commit. The group commit's helper-thread work (fdatasync, and whatever else it
    // takes over) runs untimed in between, as it runs beside the shard in the server.
    g.bench_function("stage_and_apply_64", |b| {
        b.iter_custom(|iters| {
            let mut shard = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                let tickets: Vec<_> = messages
                    .iter()
                    .map(|m| {
                        e.ms.stage_deliver(&e.user, None, m, &Flags::default(), InternalDate::now())
                            .expect("stage")
                    })
                    .collect();
                let mut target = e.ms.sync_target().expect("sync target");
                shard += t0.elapsed();
                while let Some(t) = target {
                    t.run().expect("helper thread");
                    let t1 = Instant::now();
                    e.ms.synced(&t);
                    target = e.ms.sync_target().expect("sync target");
                    shard += t1.elapsed();
                }
                let t2 = Instant::now();
                for t in &tickets {
                    black_box(e.ms.complete(t));
                }
                shard += t2.elapsed();
            }
            shard
        })
    });
    g.finish();
}

criterion_group!(benches, bench_shard_work, bench_group_commit, bench_big);
criterion_main!(benches);
