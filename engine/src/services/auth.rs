//! Password logins shared by the services: the client IP's throttle on the shard
//! that accepted the connection, the password check on the shard that owns the
//! account.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

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
    if shard
        .ip_throttle
        .borrow_mut()
        .is_blocked(&ip, Instant::now())
    {
        let mut stats = shard.stats.borrow_mut();
        stats.logins_blocked += 1;
        stats.logins_failed += 1;
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
