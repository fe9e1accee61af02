//! Account operations against a `Store`. Blocking file I/O: the server runs these on
//! a shard's helper thread, the offline CLI runs them directly.

use store::{Address, Bucket, NewAccount, Profile, Store, StoreError, UsageFlags};

use super::proto::{AccountView, AdminRequest, AdminResponse, ForwardView, ReconstructView};

/// The kinds of verifiers a profile's password value holds, for `account show`.
fn stored_verifiers(value: Option<&str>) -> Vec<String> {
    let Some(Ok(v)) = value.map(store::auth::Verifiers::parse) else {
        return Vec::new();
    };
    let mut kinds = vec!["argon2id".to_owned()];
    if v.scram.is_some() {
        kinds.push("scram-sha-256".to_owned());
    }
    if v.cram.is_some() {
        kinds.push("cram-md5".to_owned());
    }
    kinds
}

pub fn execute(store: &Store, req: AdminRequest) -> AdminResponse {
    match run(store, req) {
        Ok(r) => r,
        Err(e) => AdminResponse::Error {
            message: e.to_string(),
        },
    }
}

fn run(store: &Store, req: AdminRequest) -> Result<AdminResponse, StoreError> {
    Ok(match req {
        AdminRequest::AccountAdd {
            address,
            name,
            quota_bytes,
            flags,
            password_hash,
        } => {
            let address = Address::parse(&address)?;
            let flags = match flags {
                Some(f) => UsageFlags::parse(&f)?,
                None => UsageFlags::default_new(),
            };
            let p = store.create_account(NewAccount {
                address,
                name,
                quota_bytes,
                flags,
                password_hash,
            })?;
            AdminResponse::Account(view(store, &p))
        }
        AdminRequest::AccountShow { address } => {
            let p = store.account(&Address::parse(&address)?)?;
            AdminResponse::Account(view(store, &p))
        }
        AdminRequest::AccountDel { address } => {
            store.delete_account(&Address::parse(&address)?)?;
            AdminResponse::Done
        }
        AdminRequest::AccountList => AdminResponse::Accounts {
            addresses: store
                .list_accounts()?
                .iter()
                .map(|a| a.to_string())
                .collect(),
        },
        AdminRequest::AccountSet {
            address,
            name,
            quota_bytes,
            flags,
            password_hash,
            drop_cram,
        } => {
            let mut p = store.account(&Address::parse(&address)?)?;
            if let Some(n) = name {
                p.name = n;
            }
            if let Some(q) = quota_bytes {
                p.quota_bytes = q;
            }
            if let Some(f) = flags {
                p.flags = UsageFlags::parse(&f)?;
            }
            if password_hash.is_some() {
                p.password_hash = password_hash;
            }
            if drop_cram && let Some(value) = &p.password_hash {
                let verifiers = store::auth::Verifiers::parse(value)?.without_cram();
                p.password_hash = Some(verifiers.to_profile_value());
            }
            store.update_account(&p)?;
            AdminResponse::Account(view(store, &p))
        }
        AdminRequest::Reconstruct { address } => {
            let address = Address::parse(&address)?;
            let report = store::reconstruct::reconstruct_user(store, &address, |_| {})?;
            AdminResponse::Reconstructed(reconstruct_view(&address, report))
        }
        AdminRequest::ForwardAdd {
            address,
            targets,
            keep_copy,
        } => {
            let address = Address::parse(&address)?;
            let f = store.set_forward(&address, &targets, keep_copy)?;
            AdminResponse::Forwards {
                entries: vec![forward_view(&address, &f)],
            }
        }
        AdminRequest::ForwardDel { address } => {
            store.delete_forward(&Address::parse(&address)?)?;
            AdminResponse::Done
        }
        AdminRequest::ForwardList { address: Some(a) } => {
            let address = Address::parse(&a)?;
            match store.forward(&address)? {
                Some(f) => AdminResponse::Forwards {
                    entries: vec![forward_view(&address, &f)],
                },
                None => AdminResponse::Error {
                    message: format!("no forwarding entry for {address}"),
                },
            }
        }
        AdminRequest::ForwardList { address: None } => AdminResponse::Forwards {
            entries: store
                .list_forwards()?
                .iter()
                .map(|(a, f)| forward_view(a, f))
                .collect(),
        },
        AdminRequest::QueueList | AdminRequest::QueueFlush | AdminRequest::QueueDel { .. } => {
            // Offline only: the CLI calls `outbound::queue_op_offline` with the config.
            AdminResponse::Error {
                message: "the queue is handled with the configuration".into(),
            }
        }
        AdminRequest::Stats | AdminRequest::Who => AdminResponse::Error {
            message: "the server is not running".into(),
        },
    })
}

fn forward_view(address: &Address, f: &store::forward::Forward) -> ForwardView {
    ForwardView {
        address: address.to_string(),
        targets: f.targets.iter().map(|t| t.as_str().to_owned()).collect(),
        keep_copy: f.keep_copy,
    }
}

pub fn reconstruct_view(address: &Address, r: store::reconstruct::Report) -> ReconstructView {
    ReconstructView {
        address: address.to_string(),
        mailboxes: r.mailboxes,
        messages: r.messages,
        bytes: r.bytes,
        repairs: r.repairs,
    }
}

/// Offline, before a reconstruct: applies what every shard's journal still holds,
/// so the rebuild starts from everything that was acknowledged.
pub fn replay_journals(store: &std::sync::Arc<Store>) -> Result<(), StoreError> {
    let dir = store.roots()[0].join("journal");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("shard-")
            .and_then(|n| n.parse::<u32>().ok())
        {
            store::delivery::Mailstore::open(store.clone(), n)?;
        }
    }
    Ok(())
}

/// The accounts whose buckets belong to `shard` of `shards`.
pub fn list_local(store: &Store, shard: usize, shards: usize) -> AdminResponse {
    match store.list_accounts_where(|b: Bucket| b.shard(shards) == shard) {
        Ok(list) => AdminResponse::Accounts {
            addresses: list.iter().map(|a| a.to_string()).collect(),
        },
        Err(e) => AdminResponse::Error {
            message: e.to_string(),
        },
    }
}

pub fn view(store: &Store, p: &Profile) -> AccountView {
    AccountView {
        address: p.address.to_string(),
        name: p.name.clone(),
        domain: p.domain.clone(),
        quota_bytes: p.quota_bytes,
        flags: p.flags.to_string(),
        has_password: p.password_hash.is_some(),
        verifiers: stored_verifiers(p.password_hash.as_deref()),
        created_unix: p.created_unix,
        bucket: Bucket::of(&p.address).0,
        path: store.user_dir(&p.address).display().to_string(),
    }
}
