//! One shard: a core's executor and everything it owns. A shard's state is never
//! touched by another thread; other shards reach it through `Shard::call`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;
use store::auth::{
    AuthResult, LdapConfig, LdapMode, LdapSource, Lookup, PasswdFile, PasswordSource, ServerKey,
    ShadowFile, UserKey, VerifierOptions, Verifiers,
};
use store::{Address, Bucket, Profile, Store, StoreError};

use crate::hasher::Hasher;
use crate::limits::{AUTH_CACHE_ENTRIES_MAX, AUTH_CACHE_SECONDS, RECIPIENT_PROFILES_MAX};

use crate::admin::ops;
use crate::admin::proto::{AdminRequest, AdminResponse, SessionView, ShardStats};
use crate::config::{Config, PasswordLocation, Service};
use crate::handoff::Handoff;
use crate::mail::Mail;
use crate::mesh::{
    AuthOutcome, DeliveryResult, Mesh, MeshError, Request, Response, Secret, ShardId,
};
use crate::shutdown::Shutdown;
use crate::throttle::Throttle;
use protocols::lmtp::RecipientCheck;
use protocols::poppassd::PasswordChange;
use protocols::sasl::{CredentialRequest, Credentials, ScramSecret, SecretKind};
use store::delivery::{Flags, InternalDate, Mailstore, Ticket};

pub struct Shard {
    pub id: ShardId,
    pub count: usize,
    pub cpu: usize,
    pub config: Config,
    /// Immutable after start; shared with this shard's helper threads for blocking file work.
    pub store: Arc<Store>,
    /// The TLS server configuration (certificate), shared by all shards; replaced
    /// as a whole on SIGHUP (`tls::Certificates::reload`).
    pub tls: Arc<crate::tls::Certificates>,
    /// This shard's mail store and its group commit.
    pub mail: Rc<Mail>,
    pub mesh: Mesh,
    pub shutdown: Shutdown,
    pub stats: RefCell<ShardStats>,
    sessions: RefCell<Slab<SessionInfo>>,
    /// Live sessions per client IP on this shard (`limits.connections_per_ip`).
    per_ip: RefCell<HashMap<IpAddr, u32, ahash::RandomState>>,
    /// Failed logins by client IP, for connections accepted here.
    pub ip_throttle: RefCell<Throttle<IpAddr>>,
    /// Failed logins by account, for the accounts this shard owns.
    account_throttle: RefCell<Throttle<Address>>,
    /// Maildrops with a POP3 session (RFC 1939: one at a time).
    pop_locks: RefCell<HashSet<Address, ahash::RandomState>>,
    pub hasher: Hasher,
    pub login: Arc<LoginSecrets>,
    /// Recent successful logins of accounts owned here (Dovecot's auth cache).
    auth_cache: RefCell<HashMap<Address, CachedLogin, ahash::RandomState>>,
    /// Profiles of accounts owned here as LMTP's RCPT check last read them (see
    /// [`recipient_profile`]).
    profiles: RefCell<HashMap<Address, Rc<Profile>, ahash::RandomState>>,
    /// This shard's outbound queue (set at start, see `crate::outbound`).
    pub outbound: std::cell::OnceCell<Rc<crate::outbound::Queue>>,
}

/// Holds a user's POP3 maildrop lock while it lives.
pub struct MaildropLock {
    shard: Rc<Shard>,
    user: Address,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.shard.pop_locks.borrow_mut().remove(&self.user);
    }
}

/// What every shard gets a copy of at start: read-only after that.
#[derive(Clone)]
pub struct Shared {
    pub config: Config,
    pub store: Arc<Store>,
    pub tls: Arc<crate::tls::Certificates>,
    pub hasher: Hasher,
    pub login: Arc<LoginSecrets>,
}

/// Made once at start: what unknown users are checked against (so they cost the
/// same as known ones), the key of the login cache's digests, and the server key
/// that seals CRAM-MD5/APOP secrets and seeds SCRAM decoy salts.
pub struct LoginSecrets {
    pub dummy_phc: String,
    pub cache_key: [u8; 32],
    pub server_key: Arc<ServerKey>,
    /// Password sources other than the profile, by domain (`[auth.domains]`).
    sources: HashMap<String, Arc<dyn PasswordSource>>,
}

impl LoginSecrets {
    pub fn generate(config: &Config) -> anyhow::Result<LoginSecrets> {
        use std::io::Read;
        let mut cache_key = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut cache_key)?;
        let server_key = ServerKey::load_or_create(&config.store.roots[0])?;
        let sources = config
            .auth
            .domains
            .iter()
            .map(|(domain, location)| (domain.clone(), password_source(location)))
            .collect();
        Ok(LoginSecrets {
            dummy_phc: store::password::hash_password("msgstore timing equaliser")?,
            cache_key,
            server_key: Arc::new(server_key),
            sources,
        })
    }

    /// Where `address`'s password lives when it is not the profile.
    pub fn source_for(&self, address: &Address) -> Option<Arc<dyn PasswordSource>> {
        self.sources.get(address.domain()).cloned()
    }
}

fn password_source(location: &PasswordLocation) -> Arc<dyn PasswordSource> {
    match location {
        PasswordLocation::PasswdFile { path, local_part } => {
            let key = if *local_part {
                UserKey::LocalPart
            } else {
                UserKey::Address
            };
            Arc::new(PasswdFile::new(path, key))
        }
        PasswordLocation::Shadow { path } => Arc::new(ShadowFile::new(path)),
        PasswordLocation::Ldap {
            url,
            dn_template,
            base,
            filter,
            bind_dn,
            bind_password,
            timeout_seconds,
        } => {
            let mode = match dn_template {
                Some(dn_template) => LdapMode::Bind {
                    dn_template: dn_template.clone(),
                },
                None => LdapMode::SearchBind {
                    base: base.clone().unwrap_or_default(),
                    filter_template: filter.clone().unwrap_or_default(),
                    bind_dn: bind_dn.clone(),
                    bind_password: bind_password
                        .as_ref()
                        .map(|p| store::auth::Secret::new(p.clone().into_bytes())),
                },
            };
            Arc::new(LdapSource::new(LdapConfig {
                url: url.clone(),
                mode,
                timeout: Duration::from_secs(*timeout_seconds),
            }))
        }
    }
}

/// A login that succeeded recently: a keyed digest of (stored hash, password).
struct CachedLogin {
    digest: [u8; 32],
    expires: Instant,
}

pub struct SessionInfo {
    pub service: Service,
    pub user: Option<Address>,
    pub peer: SocketAddr,
}

/// Keeps a session in the shard's registry while it lives.
pub struct SessionGuard {
    shard: Rc<Shard>,
    key: usize,
}

impl SessionGuard {
    pub fn set_user(&self, user: Address) {
        if let Some(s) = self.shard.sessions.borrow_mut().get_mut(self.key) {
            s.user = Some(user);
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(info) = self.shard.sessions.borrow_mut().try_remove(self.key) {
            let mut per_ip = self.shard.per_ip.borrow_mut();
            if let Some(n) = per_ip.get_mut(&info.peer.ip()) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&info.peer.ip());
                }
            }
        }
    }
}

impl Shard {
    pub fn new(
        id: ShardId,
        count: usize,
        cpu: usize,
        shared: Shared,
        mail: Rc<Mail>,
        mesh: Mesh,
    ) -> Shard {
        let Shared {
            config,
            store,
            tls,
            hasher,
            login,
        } = shared;
        Shard {
            id,
            count,
            cpu,
            store,
            tls,
            mail,
            mesh,
            shutdown: Shutdown::default(),
            stats: RefCell::new(ShardStats {
                shard: id,
                cpu,
                ..ShardStats::default()
            }),
            sessions: RefCell::new(Slab::new()),
            per_ip: RefCell::new(HashMap::default()),
            ip_throttle: RefCell::new(Throttle::new(&config.auth)),
            account_throttle: RefCell::new(Throttle::new(&config.auth)),
            pop_locks: RefCell::new(HashSet::default()),
            hasher,
            login,
            auth_cache: RefCell::new(HashMap::default()),
            profiles: RefCell::new(HashMap::default()),
            outbound: std::cell::OnceCell::new(),
            config,
        }
    }

    /// The shard that owns `address` (DESIGN §2: bucket % shards).
    pub fn owner_of(&self, address: &Address) -> ShardId {
        Bucket::of(address).shard(self.count)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.borrow().len()
    }

    /// Takes `user`'s POP3 maildrop lock; `None` while another session holds it.
    /// Only the owning shard serves a user's POP3 sessions, so a local set is the lock.
    pub fn lock_maildrop(self: &Rc<Self>, user: &Address) -> Option<MaildropLock> {
        self.pop_locks
            .borrow_mut()
            .insert(user.clone())
            .then(|| MaildropLock {
                shard: self.clone(),
                user: user.clone(),
            })
    }

    /// Live sessions of `ip` on this shard.
    pub fn sessions_of(&self, ip: IpAddr) -> u32 {
        self.per_ip.borrow().get(&ip).copied().unwrap_or(0)
    }

    pub fn register_session(
        self: &Rc<Self>,
        service: Service,
        peer: SocketAddr,
        user: Option<Address>,
    ) -> SessionGuard {
        *self.per_ip.borrow_mut().entry(peer.ip()).or_insert(0) += 1;
        let key = self.sessions.borrow_mut().insert(SessionInfo {
            service,
            user,
            peer,
        });
        SessionGuard {
            shard: self.clone(),
            key,
        }
    }

    /// Runs `req` on shard `to`: directly when that is us, over the mesh otherwise.
    pub async fn call(self: &Rc<Self>, to: ShardId, req: Request) -> Result<Response, MeshError> {
        if to == self.id {
            Ok(handle_request(self.clone(), req).await)
        } else {
            self.mesh.call_remote(to, req).await
        }
    }

    pub async fn handoff(&self, to: ShardId, h: Handoff) -> Result<(), MeshError> {
        self.stats.borrow_mut().handoffs_out += 1;
        self.mesh.handoff(to, h).await
    }

    fn stats_snapshot(&self) -> (ShardStats, Vec<SessionView>) {
        let mut stats = self.stats.borrow().clone();
        let sessions = self.sessions.borrow();
        stats.sessions_active = sessions.len() as u64;
        let views = sessions
            .iter()
            .map(|(_, s)| SessionView {
                shard: self.id,
                service: s.service.key().to_owned(),
                user: s.user.as_ref().map(|u| u.to_string()),
                peer: s.peer.to_string(),
            })
            .collect();
        (stats, views)
    }
}

/// Serves a request on the shard that owns its data.
pub async fn handle_request(shard: Rc<Shard>, req: Request) -> Response {
    match req {
        Request::Authenticate {
            address,
            password,
            service,
        } => Response::Auth(authenticate(&shard, address, password, service).await),
        Request::SaslCredentials { address, request } => {
            Response::Credentials(sasl_credentials(&shard, address, request).await)
        }
        Request::SaslOutcome {
            address,
            success,
            service,
        } => Response::Auth(sasl_outcome(&shard, address, success, service).await),
        Request::Admin(AdminRequest::Reconstruct { address }) => {
            Response::Admin(match Address::parse(&address) {
                Ok(a) => match shard.mail.reconstruct(shard.store.clone(), a.clone()).await {
                    Ok(r) => AdminResponse::Reconstructed(ops::reconstruct_view(&a, r)),
                    Err(e) => AdminResponse::Error {
                        message: e.to_string(),
                    },
                },
                Err(e) => AdminResponse::Error {
                    message: e.to_string(),
                },
            })
        }
        Request::Admin(req) if req.is_queue() => Response::Admin(match shard.outbound.get() {
            Some(q) => q.clone().admin(req).await,
            None => AdminResponse::Error {
                message: format!("shard {} has no outbound queue", shard.id),
            },
        }),
        Request::Admin(req) => {
            let store = shard.store.clone();
            let address = req.address().and_then(|a| Address::parse(a).ok());
            let deleting = matches!(req, AdminRequest::AccountDel { .. });
            let answer = glommio::executor()
                .spawn_blocking(move || ops::execute(&store, req))
                .await;
            // The mail store caches profile facts (quota), the RCPT check whole
            // profiles: take the change now, after the write.
            if let Some(a) = address {
                shard.profiles.borrow_mut().remove(&a);
                if deleting && matches!(answer, AdminResponse::Done) {
                    shard.mail.with(|ms| ms.account_deleted(&a));
                } else {
                    shard.mail.with(|ms| ms.forget_user(&a));
                }
            }
            Response::Admin(answer)
        }
        Request::ChangePassword { address, old, new } => {
            Response::PasswordChanged(change_password(&shard, address, old, new).await)
        }
        Request::ValidateRecipient { address, mail_size } => {
            Response::Recipient(validate_recipient(&shard, address, mail_size).await)
        }
        Request::Deliver {
            message,
            recipients,
        } => Response::Delivered(deliver(&shard, &message, recipients).await),
        Request::ListLocal => {
            let store = shard.store.clone();
            let (id, count) = (shard.id, shard.count);
            Response::Admin(
                glommio::executor()
                    .spawn_blocking(move || ops::list_local(&store, id, count))
                    .await,
            )
        }
        Request::Stats => {
            let (stats, sessions) = shard.stats_snapshot();
            Response::Stats { stats, sessions }
        }
    }
}

/// poppassd's change, on the owner: the old password again (the throttle applies),
/// the rules, a new argon2id hash off the shard, the profile rewritten durably.
async fn change_password(
    shard: &Rc<Shard>,
    address: Address,
    old: Secret,
    new: Secret,
) -> PasswordChange {
    match authenticate(shard, address.clone(), old, Service::Poppassd).await {
        AuthOutcome::Ok => {}
        AuthOutcome::Unavailable => return PasswordChange::Unavailable,
        AuthOutcome::Failed | AuthOutcome::NotPermitted => {
            return PasswordChange::Refused("Old password is incorrect.".into());
        }
    }
    if shard.login.source_for(&address).is_some() {
        return PasswordChange::Refused(
            "Passwords of this domain are managed elsewhere; change it there.".into(),
        );
    }
    let new = match password_rules(&shard.config.auth, new.expose()) {
        Ok(p) => p,
        Err(why) => return PasswordChange::Refused(why),
    };
    let mut profile = match read_profile(shard, &address).await {
        Ok(p) => p,
        Err(_) => return PasswordChange::Unavailable,
    };
    // An account that had a CRAM-MD5/APOP secret keeps one for the new password.
    let had_cram = profile
        .password_hash
        .as_deref()
        .and_then(|v| Verifiers::parse(v).ok())
        .is_some_and(|v| v.cram.is_some());
    let options = VerifierOptions {
        keep_cram_secret: had_cram || shard.config.auth.cram_md5,
        ..VerifierOptions::default()
    };
    let key = shard.login.server_key.clone();
    let Some(verifiers) = shard
        .hasher
        .derive(&new, &address, options, Some(key))
        .await
    else {
        return PasswordChange::Unavailable;
    };
    profile.password_hash = Some(verifiers);
    let store = shard.store.clone();
    match glommio::executor()
        .spawn_blocking(move || store.update_account(&profile))
        .await
    {
        Ok(()) => {
            shard.auth_cache.borrow_mut().remove(&address);
            shard.profiles.borrow_mut().remove(&address);
            PasswordChange::Changed
        }
        Err(e) => {
            tracing::warn!("password change for {address}: {e}");
            PasswordChange::Unavailable
        }
    }
}

/// The rules a new password must meet; the reason is shown to the user.
fn password_rules(auth: &crate::config::AuthConfig, new: &[u8]) -> Result<String, String> {
    let new = std::str::from_utf8(new).map_err(|_| "The new password is not UTF-8.".to_owned())?;
    if new.chars().count() < auth.password_min_length as usize {
        return Err(format!(
            "The new password must have at least {} characters.",
            auth.password_min_length
        ));
    }
    if new.len() > store::limits::PASSWORD_BYTES_MAX {
        return Err("The new password is too long.".into());
    }
    if new.chars().any(char::is_control) {
        return Err("The new password may not hold control characters.".into());
    }
    Ok(new.to_owned())
}

/// LMTP's RCPT check, on the owner: the account exists, is enabled, has room.
async fn validate_recipient(
    shard: &Rc<Shard>,
    address: Address,
    mail_size: Option<u64>,
) -> RecipientCheck {
    let profile = match recipient_profile(shard, &address) {
        Ok(p) => p,
        Err(StoreError::NotFound { .. }) => {
            // An address may forward without having an account.
            let store = shard.store.clone();
            let who = address.clone();
            return match glommio::executor()
                .spawn_blocking(move || store.forward(&who))
                .await
            {
                Ok(Some(_)) => RecipientCheck::Accept,
                Ok(None) => RecipientCheck::Unknown,
                Err(e) => {
                    tracing::warn!("rcpt {address}: forward entry: {e}");
                    RecipientCheck::TemporaryFailure
                }
            };
        }
        Err(e) => {
            tracing::warn!("rcpt {address}: {e}");
            return RecipientCheck::TemporaryFailure;
        }
    };
    if profile.flags.disabled {
        return RecipientCheck::Disabled;
    }
    let size = mail_size.unwrap_or(0);
    if profile.quota_bytes > 0 && size > profile.quota_bytes {
        return RecipientCheck::MessageOverQuota;
    }
    // Without SIZE= the message is at least one byte: a mailbox filled to the
    // byte is full.
    match shard.mail.with(|ms| ms.check_quota(&address, size.max(1))) {
        Ok(()) => RecipientCheck::Accept,
        Err(StoreError::OverQuota { .. }) => RecipientCheck::OverQuota,
        Err(e) => {
            tracing::warn!("rcpt {address}: {e}");
            RecipientCheck::TemporaryFailure
        }
    }
}

/// The profile of `address` (owned here) for a RCPT check: read once, then kept until
/// the account changes. Every writer of a profile in a live store runs on the owning
/// shard, which forgets the cached copy once the write is done: the admin requests
/// (`msgstore account ...` goes through the server's admin socket while the server
/// holds the store) and poppassd's password change. The first read is a small read of
/// a cached file on the shard: cheaper than the three io_uring round trips (open,
/// read, close) of `read_profile`. Unknown addresses are not kept (an account may be
/// added at any time).
fn recipient_profile(shard: &Shard, address: &Address) -> Result<Rc<Profile>, StoreError> {
    if let Some(p) = shard.profiles.borrow().get(address) {
        return Ok(p.clone());
    }
    let profile = Rc::new(shard.store.account(address)?);
    let mut cache = shard.profiles.borrow_mut();
    if cache.len() >= RECIPIENT_PROFILES_MAX {
        cache.clear();
    }
    cache.insert(address.clone(), profile.clone());
    Ok(profile)
}

/// Stores `message` for each recipient (all owned here), with one group commit.
async fn deliver(
    shard: &Rc<Shard>,
    message: &Arc<Vec<u8>>,
    recipients: Vec<(Address, Option<String>)>,
) -> Vec<DeliveryResult> {
    let date = InternalDate::now();
    let staged: Vec<Result<Ticket, StoreError>> = recipients
        .iter()
        .map(|(user, folder)| {
            shard.mail.with(|ms| {
                let folder = folder.as_deref().and_then(|f| existing_folder(ms, user, f));
                ms.stage_deliver_shared(user, folder.as_deref(), message, &Flags::default(), date)
            })
        })
        .collect();
    let commits = staged.into_iter().map(|s| async move {
        match s {
            Ok(ticket) => shard.mail.commit(ticket).await.map(|_| ()),
            Err(e) => Err(e),
        }
    });
    futures::future::join_all(commits)
        .await
        .into_iter()
        .zip(&recipients)
        .map(|(r, (user, _))| match r {
            Ok(()) => DeliveryResult::Stored,
            Err(StoreError::OverQuota { .. }) => DeliveryResult::OverQuota,
            Err(e) => {
                tracing::warn!("delivery to {user}: {e}");
                DeliveryResult::TemporaryFailure(e.to_string())
            }
        })
        .collect()
}

/// The mailbox a `+detail` names, matched case-insensitively to an existing one
/// (hierarchy with `/`); `None` (INBOX) when there is none.
fn existing_folder(ms: &mut Mailstore, user: &Address, detail: &str) -> Option<String> {
    let list = ms.list_mailboxes(user).ok()?;
    list.into_iter()
        .map(|m| m.name)
        .find(|name| name.eq_ignore_ascii_case(detail))
}

async fn authenticate(
    shard: &Rc<Shard>,
    address: Address,
    password: Secret,
    service: Service,
) -> AuthOutcome {
    if shard
        .account_throttle
        .borrow_mut()
        .is_blocked(&address, Instant::now())
    {
        let mut stats = shard.stats.borrow_mut();
        stats.logins_blocked += 1;
        stats.logins_failed += 1;
        return AuthOutcome::Failed;
    }
    let key = address.clone();
    let outcome = check_password(shard, &address, password.expose(), service).await;
    let delay = match outcome {
        AuthOutcome::Ok => {
            shard.stats.borrow_mut().logins_ok += 1;
            shard.account_throttle.borrow_mut().success(&key);
            None
        }
        AuthOutcome::Failed => {
            shard.stats.borrow_mut().logins_failed += 1;
            Some(
                shard
                    .account_throttle
                    .borrow_mut()
                    .failure(&key, Instant::now()),
            )
        }
        AuthOutcome::Unavailable | AuthOutcome::NotPermitted => None,
    };
    if let Some(d) = delay.filter(|d| !d.is_zero()) {
        glommio::timer::sleep(d).await;
    }
    outcome
}

/// SASL on the owner: the password checked or the stored secret fetched, with no
/// counting (the exchange is counted once, at its end, by [`sasl_outcome`]). A
/// blocked account, an unknown user and a missing secret all get `Rejected`, which
/// SCRAM turns into a decoy exchange that fails at the proof.
async fn sasl_credentials(
    shard: &Rc<Shard>,
    address: Address,
    request: CredentialRequest,
) -> Credentials {
    if shard
        .account_throttle
        .borrow_mut()
        .is_blocked(&address, Instant::now())
    {
        shard.stats.borrow_mut().logins_blocked += 1;
        return Credentials::Rejected;
    }
    match request {
        CredentialRequest::Verify { password, .. } => {
            match verify_password(shard, &address, password.expose()).await {
                Ok(_) => Credentials::Verified,
                Err(AuthOutcome::Unavailable) => Credentials::Unavailable,
                Err(_) => Credentials::Rejected,
            }
        }
        CredentialRequest::Lookup { kind, .. } => {
            if let Some(source) = shard.login.source_for(&address) {
                return source_lookup(shard, source, address, kind).await;
            }
            let verifiers = match read_profile(shard, &address).await {
                Ok(p) => p.password_hash.and_then(|v| Verifiers::parse(&v).ok()),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => {
                    tracing::warn!("sasl {address}: {e}");
                    return Credentials::Unavailable;
                }
            };
            let Some(verifiers) = verifiers else {
                return Credentials::Rejected;
            };
            match kind {
                SecretKind::ScramSha256 => match verifiers.scram {
                    Some(v) => Credentials::ScramSha256(ScramSecret {
                        salt: v.salt,
                        iterations: v.iterations,
                        stored_key: v.stored_key,
                        server_key: v.server_key,
                    }),
                    None => Credentials::Rejected,
                },
                SecretKind::CramMd5 => {
                    match verifiers.cram_secret(&address, &shard.login.server_key) {
                        Some(secret) => {
                            Credentials::CramMd5Secret(Secret::new(secret.into_bytes()))
                        }
                        None => Credentials::Rejected,
                    }
                }
            }
        }
    }
}

/// A stored secret from a password source other than the profile, on the hashing
/// pool (files and LDAP block). A source that cannot give one (LDAP, shadow) gets
/// `Rejected`: the mechanism then fails like a wrong password. A user without a
/// store account is rejected the same way.
async fn source_lookup(
    shard: &Rc<Shard>,
    source: Arc<dyn PasswordSource>,
    address: Address,
    kind: SecretKind,
) -> Credentials {
    let user = address.clone();
    let found = shard
        .hasher
        .run(move || match kind {
            SecretKind::ScramSha256 => match source.scram(&user) {
                Lookup::Found(v) => Lookup::Found(Credentials::ScramSha256(ScramSecret {
                    salt: v.salt,
                    iterations: v.iterations,
                    stored_key: v.stored_key,
                    server_key: v.server_key,
                })),
                Lookup::Missing => Lookup::Missing,
                Lookup::Unavailable => Lookup::Unavailable,
            },
            SecretKind::CramMd5 => match source.cram_secret(&user) {
                Lookup::Found(secret) => {
                    Lookup::Found(Credentials::CramMd5Secret(Secret::new(secret.into_bytes())))
                }
                Lookup::Missing => Lookup::Missing,
                Lookup::Unavailable => Lookup::Unavailable,
            },
        })
        .await;
    let credentials = match found {
        Some(Lookup::Found(credentials)) => credentials,
        Some(Lookup::Missing) => return Credentials::Rejected,
        Some(Lookup::Unavailable) | None => return Credentials::Unavailable,
    };
    match read_profile(shard, &address).await {
        Ok(_) => credentials,
        Err(StoreError::NotFound { .. }) => Credentials::Rejected,
        Err(_) => Credentials::Unavailable,
    }
}

/// The end of a SASL exchange, on the owner: counted in the account's throttle like
/// a LOGIN; a success is then checked against the usage flags.
async fn sasl_outcome(
    shard: &Rc<Shard>,
    address: Address,
    success: bool,
    service: Service,
) -> AuthOutcome {
    if !success {
        shard.stats.borrow_mut().logins_failed += 1;
        let delay = shard
            .account_throttle
            .borrow_mut()
            .failure(&address, Instant::now());
        if !delay.is_zero() {
            glommio::timer::sleep(delay).await;
        }
        return AuthOutcome::Failed;
    }
    let profile = match read_profile(shard, &address).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("sasl {address}: {e}");
            return AuthOutcome::Unavailable;
        }
    };
    shard.stats.borrow_mut().logins_ok += 1;
    shard.account_throttle.borrow_mut().success(&address);
    usage_allowed(&profile, service)
}

fn usage_allowed(profile: &Profile, service: Service) -> AuthOutcome {
    let allowed = !profile.flags.disabled
        && match service {
            Service::Imap | Service::Imaps => profile.flags.imap,
            Service::Pop3 | Service::Pop3s => profile.flags.pop,
            _ => true,
        };
    if allowed {
        AuthOutcome::Ok
    } else {
        AuthOutcome::NotPermitted
    }
}

/// Reads an account's profile through io_uring (no blocking syscall on the shard).
pub async fn read_profile(shard: &Shard, address: &Address) -> Result<Profile, StoreError> {
    let path = shard.store.profile_path(address);
    let file = match glommio::io::BufferedFile::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let e = std::io::Error::from(e);
            if e.kind() == std::io::ErrorKind::NotFound {
                return Err(StoreError::NotFound {
                    address: address.to_string(),
                });
            }
            return Err(StoreError::io(&path, e));
        }
    };
    let read = file
        .read_at(0, store::limits::PROFILE_BYTES_MAX + 1)
        .await
        .map(|b| b.to_vec());
    let _ = file.close().await;
    let bytes = read.map_err(|e| StoreError::io(&path, std::io::Error::other(e.to_string())))?;
    if bytes.len() > store::limits::PROFILE_BYTES_MAX {
        return Err(StoreError::corrupt(&path, "profile too large"));
    }
    let profile = Profile::parse(&path, &bytes)?;
    if profile.address != *address {
        return Err(StoreError::corrupt(
            &path,
            format!("profile is for {}", profile.address),
        ));
    }
    Ok(profile)
}

/// Checks a password on the owning shard and then the usage flags for `service`.
async fn check_password(
    shard: &Shard,
    address: &Address,
    password: &[u8],
    service: Service,
) -> AuthOutcome {
    match verify_password(shard, address, password).await {
        Ok(profile) => usage_allowed(&profile, service),
        Err(outcome) => outcome,
    }
}

/// Checks a password: the profile through io_uring, argon2 on the hashing pool
/// unless this exact (hash, password) pair logged in recently. An unknown user
/// costs one argon2 like a wrong password does. `Err` is `Failed` or `Unavailable`.
/// A domain with its own password source is checked there (on the hashing pool),
/// and the account must still exist in the store.
async fn verify_password(
    shard: &Shard,
    address: &Address,
    password: &[u8],
) -> Result<Profile, AuthOutcome> {
    if let Some(source) = shard.login.source_for(address) {
        let (user, secret) = (address.clone(), password.to_vec());
        let checked = shard
            .hasher
            .run(move || source.verify(&user, &secret))
            .await;
        match checked {
            Some(AuthResult::Ok) => {}
            Some(AuthResult::Failed) => return Err(AuthOutcome::Failed),
            Some(AuthResult::Unavailable) | None => return Err(AuthOutcome::Unavailable),
        }
        return match read_profile(shard, address).await {
            Ok(profile) => Ok(profile),
            Err(StoreError::NotFound { .. }) => Err(AuthOutcome::Failed),
            Err(e) => {
                tracing::warn!("login {address}: {e}");
                Err(AuthOutcome::Unavailable)
            }
        };
    }
    let profile = match read_profile(shard, address).await {
        Ok(p) => p,
        Err(StoreError::NotFound { .. }) => {
            let _ = shard.hasher.verify(&shard.login.dummy_phc, password).await;
            return Err(AuthOutcome::Failed);
        }
        Err(e) => {
            tracing::warn!("login {address}: {e}");
            return Err(AuthOutcome::Unavailable);
        }
    };
    let Some(phc) = profile.password_hash.as_deref() else {
        let _ = shard.hasher.verify(&shard.login.dummy_phc, password).await;
        return Err(AuthOutcome::Failed);
    };
    let digest = login_digest(&shard.login.cache_key, phc, password);
    let now = Instant::now();
    let cached = shard
        .auth_cache
        .borrow()
        .get(address)
        .is_some_and(|c| c.digest == digest && now < c.expires);
    if !cached {
        match shard.hasher.verify(phc, password).await {
            Some(true) => {
                let mut cache = shard.auth_cache.borrow_mut();
                if cache.len() >= AUTH_CACHE_ENTRIES_MAX {
                    cache.retain(|_, c| now < c.expires);
                    if cache.len() >= AUTH_CACHE_ENTRIES_MAX {
                        cache.clear();
                    }
                }
                cache.insert(
                    address.clone(),
                    CachedLogin {
                        digest,
                        expires: now + Duration::from_secs(AUTH_CACHE_SECONDS),
                    },
                );
            }
            Some(false) => return Err(AuthOutcome::Failed),
            None => return Err(AuthOutcome::Unavailable),
        }
    }
    Ok(profile)
}

fn login_digest(key: &[u8; 32], phc: &str, password: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(key);
    h.update((phc.len() as u64).to_le_bytes());
    h.update(phc.as_bytes());
    h.update(password);
    h.finalize().into()
}
