//! Password logins shared by the services: the client IP's throttle on the shard
//! that accepted the connection, the password check on the shard that owns the
//! account. SASL exchanges (AUTHENTICATE, POP3 AUTH, APOP) run in the protocol
//! session on the accepting shard; their credential look-ups go to the owner, and
//! each finished exchange is counted once, in the same throttles as LOGIN.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use protocols::sasl::{
    CredentialRequest, Credentials, SaslError, SaslFailure, SaslPolicy, SaslServer, SaslStep,
};
use store::Address;

use crate::config::Service;
use crate::mesh::{AuthOutcome, Request, Response, Secret};
use crate::shard::Shard;

/// Asks the owning shard to check the password. A name that is not an address can
/// own nothing, so it fails like an unknown user.
pub async fn login(
    shard: &Rc<Shard>,
    service: Service,
    peer: SocketAddr,
    username: &[u8],
    password: Secret,
) -> Result<Address, AuthOutcome> {
    let ip = peer.ip();
    if ip_blocked(shard, &ip) {
        shard.stats.borrow_mut().logins_failed += 1;
        return Err(AuthOutcome::Failed);
    }
    let user = std::str::from_utf8(username)
        .ok()
        .and_then(|u| Address::parse(u).ok());
    let outcome = match &user {
        None => {
            // As much work as an unknown account costs its owner.
            let _ = shard
                .hasher
                .verify(&shard.login.dummy_phc, password.expose())
                .await;
            AuthOutcome::Failed
        }
        Some(user) => {
            let req = Request::Authenticate {
                address: user.clone(),
                password,
                service,
            };
            match shard.call(shard.owner_of(user), req).await {
                Ok(Response::Auth(outcome)) => outcome,
                Ok(_) | Err(_) => AuthOutcome::Unavailable,
            }
        }
    };
    settle(shard, ip, outcome, user).await
}

/// The SASL policy of this server's listeners, before the connection's TLS state
/// and plaintext permission are filled in by the session.
pub fn sasl_policy(shard: &Shard) -> SaslPolicy {
    SaslPolicy {
        enabled: shard.config.auth.sasl_mechanisms(),
        hostname: "msgstore".to_owned(),
        // Derived from the server key: an unknown user's decoy salt stays the same
        // across restarts, as a real user's salt does.
        decoy_key: shard.login.server_key.derive("scram-sha-256 decoy salt"),
        ..SaslPolicy::disabled()
    }
}

/// A SASL mechanism's question (a password to check, a stored secret to fetch),
/// answered by the shard that owns the account. A blocked IP, a name that is not
/// an address and an unknown user all get `Rejected`: SCRAM then runs its decoy.
pub async fn sasl_credentials(
    shard: &Rc<Shard>,
    peer: SocketAddr,
    request: CredentialRequest,
) -> Credentials {
    if ip_blocked(shard, &peer.ip()) {
        return Credentials::Rejected;
    }
    let authcid = match &request {
        CredentialRequest::Verify { authcid, .. } | CredentialRequest::Lookup { authcid, .. } => {
            authcid
        }
    };
    let Ok(address) = Address::parse(authcid) else {
        if let CredentialRequest::Verify { password, .. } = &request {
            // As much work as an unknown account costs its owner.
            let _ = shard
                .hasher
                .verify(&shard.login.dummy_phc, password.expose())
                .await;
        }
        return Credentials::Rejected;
    };
    let owner = shard.owner_of(&address);
    match shard
        .call(owner, Request::SaslCredentials { address, request })
        .await
    {
        Ok(Response::Credentials(credentials)) => credentials,
        Ok(_) | Err(_) => Credentials::Unavailable,
    }
}

/// A SASL exchange is over: counted against the client IP here and the account on
/// its owner (failures delayed and blocked exactly like LOGIN's); a success is
/// checked against the account's usage flags.
pub async fn sasl_finished(
    shard: &Rc<Shard>,
    service: Service,
    peer: SocketAddr,
    username: Option<&str>,
    success: bool,
) -> Result<Address, AuthOutcome> {
    let ip = peer.ip();
    let user = username.and_then(|u| Address::parse(u).ok());
    let outcome = match &user {
        None => AuthOutcome::Failed,
        Some(user) => {
            let req = Request::SaslOutcome {
                address: user.clone(),
                success,
                service,
            };
            match shard.call(shard.owner_of(user), req).await {
                Ok(Response::Auth(outcome)) => outcome,
                Ok(_) | Err(_) => AuthOutcome::Unavailable,
            }
        }
    };
    settle(shard, ip, outcome, user).await
}

fn ip_blocked(shard: &Shard, ip: &IpAddr) -> bool {
    let blocked = shard
        .ip_throttle
        .borrow_mut()
        .is_blocked(ip, Instant::now());
    if blocked {
        shard.stats.borrow_mut().logins_blocked += 1;
    }
    blocked
}

/// The IP's side of a finished login: a success clears its failures, a failure
/// counts and waits out its delay.
async fn settle(
    shard: &Shard,
    ip: IpAddr,
    outcome: AuthOutcome,
    user: Option<Address>,
) -> Result<Address, AuthOutcome> {
    match (outcome, user) {
        (AuthOutcome::Ok, Some(user)) => {
            shard.ip_throttle.borrow_mut().success(&ip);
            Ok(user)
        }
        (AuthOutcome::Unavailable, _) => Err(AuthOutcome::Unavailable),
        // The password was right: not a guess, so not counted against the IP.
        (AuthOutcome::NotPermitted, _) => Err(AuthOutcome::NotPermitted),
        _ => {
            let delay = shard.ip_throttle.borrow_mut().failure(&ip, Instant::now());
            if !delay.is_zero() {
                glommio::timer::sleep(delay).await;
            }
            Err(AuthOutcome::Failed)
        }
    }
}

/// APOP (RFC 1939 §7): the account's CRAM-MD5/APOP secret from its owner, the digest
/// checked here, the attempt counted like a LOGIN. No secret kept (or an unknown
/// user) fails like a wrong digest.
pub async fn apop(
    shard: &Rc<Shard>,
    service: Service,
    peer: SocketAddr,
    user: &str,
    digest: &str,
    timestamp: &str,
) -> Result<Address, AuthOutcome> {
    let request = CredentialRequest::Lookup {
        authcid: user.to_owned(),
        authzid: None,
        kind: protocols::sasl::SecretKind::CramMd5,
    };
    let success = match sasl_credentials(shard, peer, request).await {
        Credentials::CramMd5Secret(secret) => {
            protocols::sasl::apop_matches(timestamp, secret.expose(), digest)
        }
        Credentials::Unavailable => return Err(AuthOutcome::Unavailable),
        _ => false,
    };
    sasl_finished(shard, service, peer, Some(user), success).await
}

/// A whole SASL exchange driven by the engine, for protocols whose session hands
/// over raw SASL messages (POP3 `AUTH`): the mechanism runs here, its credential
/// questions go to the owning shard, and the end is counted like a LOGIN.
pub struct SaslDriver {
    server: SaslServer,
    /// The identity the client gave, once known: whom a failure counts against.
    username: Option<String>,
    /// SCRAM's server-final went out as a challenge: the next (empty) response
    /// logs this user in.
    final_sent: Option<String>,
}

/// What to tell the client next.
pub enum SaslAction {
    /// Send this challenge and pass the answer to [`SaslDriver::respond`].
    Challenge(Vec<u8>),
    /// The exchange is over (counted already).
    Done(Result<Address, AuthOutcome>),
}

impl SaslDriver {
    /// Starts `mechanism` under `policy` with the client's initial response.
    pub async fn start(
        shard: &Rc<Shard>,
        service: Service,
        peer: SocketAddr,
        policy: &SaslPolicy,
        mechanism: &str,
        initial: Option<&[u8]>,
    ) -> (Option<SaslDriver>, SaslAction) {
        let mut server = match SaslServer::start(mechanism, policy) {
            Ok(server) => server,
            Err(SaslError::Unavailable) => {
                return (None, SaslAction::Done(Err(AuthOutcome::Unavailable)));
            }
            // The session offers only what the policy allows; anything else is a
            // failed attempt.
            Err(_) => return (None, SaslAction::Done(Err(AuthOutcome::Failed))),
        };
        let step = server.initial(initial);
        let mut driver = SaslDriver {
            server,
            username: None,
            final_sent: None,
        };
        let action = driver.advance(shard, service, peer, step).await;
        let live = matches!(action, SaslAction::Challenge(_));
        (live.then_some(driver), action)
    }

    /// The client's (decoded) answer to the last challenge.
    pub async fn respond(
        &mut self,
        shard: &Rc<Shard>,
        service: Service,
        peer: SocketAddr,
        response: &[u8],
    ) -> SaslAction {
        if let Some(user) = self.final_sent.take() {
            let ok = response.is_empty();
            return SaslAction::Done(sasl_finished(shard, service, peer, Some(&user), ok).await);
        }
        let step = self.server.step(response);
        self.advance(shard, service, peer, step).await
    }

    async fn advance(
        &mut self,
        shard: &Rc<Shard>,
        service: Service,
        peer: SocketAddr,
        mut step: SaslStep,
    ) -> SaslAction {
        loop {
            match step {
                SaslStep::Challenge(bytes) => return SaslAction::Challenge(bytes),
                SaslStep::NeedCredentials(request) => {
                    let (CredentialRequest::Verify { authcid, .. }
                    | CredentialRequest::Lookup { authcid, .. }) = &request;
                    self.username = Some(authcid.clone());
                    let answer = sasl_credentials(shard, peer, request).await;
                    step = self.server.provide(answer);
                }
                SaslStep::Success {
                    authcid,
                    authzid,
                    additional_data,
                } => {
                    let user = authzid.unwrap_or(authcid);
                    if let Some(data) = additional_data {
                        self.final_sent = Some(user);
                        return SaslAction::Challenge(data);
                    }
                    return SaslAction::Done(
                        sasl_finished(shard, service, peer, Some(&user), true).await,
                    );
                }
                SaslStep::Failure(SaslFailure::Unavailable) => {
                    return SaslAction::Done(Err(AuthOutcome::Unavailable));
                }
                SaslStep::Failure(_) => {
                    let user = self.username.clone();
                    return SaslAction::Done(
                        sasl_finished(shard, service, peer, user.as_deref(), false).await,
                    );
                }
            }
        }
    }
}

/// The APOP timestamp of a new POP3 connection (`<pid.random@msgstore>`), or
/// `None` when APOP cannot be used (CRAM-MD5 not offered: no secrets kept).
pub fn apop_timestamp(shard: &Shard) -> Option<String> {
    if !shard
        .config
        .auth
        .sasl_mechanisms()
        .contains(&protocols::sasl::Mechanism::CramMd5)
    {
        return None;
    }
    // Unique per connection (RFC 1939 §7), which is what keeps a digest from being
    // replayed: the process, a process-wide count, and the time.
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Some(format!("<{}.{count}.{nanos}@msgstore>", std::process::id()))
}
