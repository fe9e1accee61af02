//! LDAP as a password source: the user's password is checked by binding as the user
//! (RFC 4513 §5.1.3), so the directory's own hashes and policies apply and no hash
//! leaves it.
//!
//! * [`LdapMode::Bind`]: the DN is a template, e.g. `uid=%n,ou=people,dc=example,dc=com`.
//! * [`LdapMode::SearchBind`]: bind as a service account (or anonymously), search one
//!   entry with a filter template, e.g. `(&(objectClass=inetOrgPerson)(mail=%u))`, bind
//!   as its DN. No entry or several entries: a bind to a DN that cannot exist is made
//!   anyway, so an unknown user costs the same round trips as a wrong password.
//!
//! Templates: `%u` the canonical address, `%n` its local part, `%d` its domain, `%%` a
//! percent sign; values are escaped (RFC 4514 in DNs, RFC 4515 in filters), so a user
//! name cannot change the DN or the filter. An empty password never reaches the
//! server: an LDAP simple bind with an empty password is an *unauthenticated* bind
//! that succeeds (RFC 4513 §5.1.2).
//!
//! ldap3 0.12's synchronous `LdapConn` runs a current-thread tokio runtime inside each
//! connection: call this on a helper thread, never on a shard. One connection per call
//! (no pool yet). Plain `ldap://` only in this build (no TLS feature compiled in):
//! use it on loopback or a trusted network.
//! SCRAM and CRAM-MD5 cannot be served: the directory does not give out secrets.

use std::fmt;
use std::time::Duration;

use ldap3::{
    LdapConn, LdapConnSettings, Scope, SearchEntry, SearchOptions, dn_escape, ldap_escape,
};

use super::{AuthResult, Lookup, PasswordSource, ScramVerifier, Secret};
use crate::address::Address;
use crate::limits::PASSWORD_BYTES_MAX;

/// Connect and per-operation timeout when none is configured.
pub const LDAP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// How the user's DN is found.
#[derive(Clone)]
pub enum LdapMode {
    /// The DN is the template with the user filled in.
    Bind { dn_template: String },
    /// Search under `base` (subtree) with the filter template, then bind as the entry.
    /// `bind_dn`/`bind_password` for the search; `None`: anonymous search.
    SearchBind {
        base: String,
        filter_template: String,
        bind_dn: Option<String>,
        bind_password: Option<Secret>,
    },
}

impl fmt::Debug for LdapMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LdapMode::Bind { dn_template } => f
                .debug_struct("Bind")
                .field("dn_template", dn_template)
                .finish(),
            LdapMode::SearchBind {
                base,
                filter_template,
                bind_dn,
                ..
            } => f
                .debug_struct("SearchBind")
                .field("base", base)
                .field("filter_template", filter_template)
                .field("bind_dn", bind_dn)
                .finish_non_exhaustive(),
        }
    }
}

/// Where the directory is and how to use it.
#[derive(Clone, Debug)]
pub struct LdapConfig {
    /// `ldap://host:port`.
    pub url: String,
    pub mode: LdapMode,
    /// Connect timeout, and the timeout of each operation.
    pub timeout: Duration,
}

/// An LDAP directory as a password source.
#[derive(Clone, Debug)]
pub struct LdapSource {
    config: LdapConfig,
}

/// Why a bind or search did not give an answer.
enum LdapFailure {
    /// The directory said no (wrong password, unknown DN…).
    Refused,
    /// No answer (connection, timeout, server error).
    Unavailable,
}

/// Result codes that mean "these credentials do not log in" (RFC 4511 Appendix A).
const INVALID_CREDENTIALS: u32 = 49;
const INAPPROPRIATE_AUTHENTICATION: u32 = 48;
const INSUFFICIENT_ACCESS_RIGHTS: u32 = 50;
const UNWILLING_TO_PERFORM: u32 = 53;
const NO_SUCH_OBJECT: u32 = 32;

impl LdapSource {
    pub fn new(config: LdapConfig) -> LdapSource {
        LdapSource { config }
    }

    fn connect(&self) -> Result<LdapConn, LdapFailure> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.config.timeout);
        LdapConn::with_settings(settings, &self.config.url).map_err(|_| LdapFailure::Unavailable)
    }

    fn bind(&self, ldap: &mut LdapConn, dn: &str, password: &str) -> Result<(), LdapFailure> {
        let result = ldap
            .with_timeout(self.config.timeout)
            .simple_bind(dn, password)
            .map_err(|_| LdapFailure::Unavailable)?;
        match result.rc {
            0 => Ok(()),
            INVALID_CREDENTIALS
            | INAPPROPRIATE_AUTHENTICATION
            | INSUFFICIENT_ACCESS_RIGHTS
            | UNWILLING_TO_PERFORM
            | NO_SUCH_OBJECT => Err(LdapFailure::Refused),
            _ => Err(LdapFailure::Unavailable),
        }
    }

    /// The user's DN by search; `Ok(None)` when there is not exactly one entry.
    fn search_dn(
        &self,
        ldap: &mut LdapConn,
        user: &Address,
        base: &str,
        filter_template: &str,
        service: Option<(&str, &Secret)>,
    ) -> Result<Option<String>, LdapFailure> {
        if let Some((dn, password)) = service {
            let password =
                std::str::from_utf8(password.expose()).map_err(|_| LdapFailure::Unavailable)?;
            // The service account must bind; if it cannot, nobody can log in.
            self.bind(ldap, dn, password)
                .map_err(|_| LdapFailure::Unavailable)?;
        }
        let filter = expand(filter_template, user, |v| ldap_escape(v).into_owned());
        let found = ldap
            .with_timeout(self.config.timeout)
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(base, Scope::Subtree, &filter, vec!["1.1"])
            .map_err(|_| LdapFailure::Unavailable)?;
        // sizeLimitExceeded (4) with two entries: ambiguous, refused like none.
        if !matches!(found.1.rc, 0 | 4) {
            return Err(LdapFailure::Unavailable);
        }
        match found.0.as_slice() {
            [entry] => Ok(Some(SearchEntry::construct(entry.clone()).dn)),
            _ => Ok(None),
        }
    }

    fn check(&self, user: &Address, password: &str) -> Result<(), LdapFailure> {
        let mut ldap = self.connect()?;
        let outcome = match &self.config.mode {
            LdapMode::Bind { dn_template } => {
                let dn = expand(dn_template, user, |v| dn_escape(v).into_owned());
                self.bind(&mut ldap, &dn, password)
            }
            LdapMode::SearchBind {
                base,
                filter_template,
                bind_dn,
                bind_password,
            } => {
                let service = bind_dn.as_deref().zip(bind_password.as_ref());
                match self.search_dn(&mut ldap, user, base, filter_template, service)? {
                    Some(dn) => self.bind(&mut ldap, &dn, password),
                    None => {
                        // The same round trip as a real bind, bound to fail.
                        let decoy = format!("cn=msgstore-no-such-user,{base}");
                        let _ = self.bind(&mut ldap, &decoy, password);
                        Err(LdapFailure::Refused)
                    }
                }
            }
        };
        let _ = ldap.unbind();
        outcome
    }
}

/// Fills `%u`, `%n`, `%d` and `%%` with escaped values; other `%x` stay as they are.
fn expand(template: &str, user: &Address, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + user.as_str().len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => out.push_str(&escape(user.as_str())),
            Some('n') => out.push_str(&escape(user.local())),
            Some('d') => out.push_str(&escape(user.domain())),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

impl PasswordSource for LdapSource {
    fn verify(&self, user: &Address, password: &[u8]) -> AuthResult {
        if password.is_empty() || password.len() > PASSWORD_BYTES_MAX {
            return AuthResult::Failed;
        }
        let Ok(password) = std::str::from_utf8(password) else {
            return AuthResult::Failed;
        };
        match self.check(user, password) {
            Ok(()) => AuthResult::Ok,
            Err(LdapFailure::Refused) => AuthResult::Failed,
            Err(LdapFailure::Unavailable) => AuthResult::Unavailable,
        }
    }

    fn scram(&self, _user: &Address) -> Lookup<ScramVerifier> {
        Lookup::Missing
    }

    fn cram_secret(&self, _user: &Address) -> Lookup<Secret> {
        Lookup::Missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_values() {
        let user = Address::parse("a*b@example.com").expect("address");
        let filter = expand("(&(mail=%u)(uid=%n))", &user, |v| {
            ldap_escape(v).into_owned()
        });
        assert_eq!(filter, "(&(mail=a\\2ab@example.com)(uid=a\\2ab))");
        let user = Address::parse("bob@example.com").expect("address");
        let dn = expand("uid=%n,ou=%d,dc=x %% %q", &user, |v| {
            dn_escape(v).into_owned()
        });
        assert_eq!(dn, "uid=bob,ou=example.com,dc=x % %q");
    }
}
