//! Password logins shared by the services: the client IP's throttle on the shard
//! that accepted the connection, the password check on the shard that owns the
//! account. SASL exchanges (AUTHENTICATE, POP3 AUTH, APOP) run in the protocol
//! session on the accepting shard; their credential look-ups go to the owner, and
//! each finished exchange is counted once, in the same throttles as LOGIN.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use protocols::sasl::{CredentialRequest, Credentials, SaslPolicy};
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
        None => AuthOutcome::Failed,
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
