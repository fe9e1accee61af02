//! SASL server (RFC 4422), sans-IO: one implementation for IMAP `AUTHENTICATE`,
//! POP3 `AUTH` and ManageSieve `AUTHENTICATE`.
//!
//! Mechanisms: `PLAIN` (RFC 4616), `LOGIN` (draft-murchison-sasl-login), `CRAM-MD5`
//! (RFC 2195) and `SCRAM-SHA-256` (RFC 7677 / RFC 5802, server signature sent, no
//! channel binding: `-PLUS` is never offered, a `p=` client is refused, `n` and `y`
//! are accepted). PLAIN and LOGIN carry the password in the clear and are offered only
//! when TLS is on or the policy allows plaintext ([`mechanisms`], [`SaslServer::start`]).
//!
//! The server never sees a password store. When it needs one it says so:
//!
//! ```text
//! engine                                   SaslServer
//! start(mech, policy) ───────────────────▶ Ok(server)
//! initial(Some(ir) / None) ──────────────▶ Challenge(bytes) | NeedCredentials | Failure
//! step(decoded client line) ─────────────▶ Challenge | NeedCredentials | Success | Failure
//! provide(Credentials::…) ───────────────▶ Challenge | Success | Failure
//! ```
//!
//! * `NeedCredentials(Verify { authcid, password, .. })` (PLAIN, LOGIN): the engine
//!   checks the password off the shard thread and answers `Verified` or `Rejected`.
//! * `NeedCredentials(Lookup { authcid, kind })` (CRAM-MD5, SCRAM-SHA-256): the engine
//!   fetches the stored secret and answers `CramMd5Secret`/`ScramSha256`, or `Rejected`
//!   for an unknown user. SCRAM then goes on with a decoy salt derived from
//!   [`SaslPolicy::decoy_key`] so an unknown user looks like a known one until the
//!   proof fails.
//! * `Success { additional_data: Some(..) }` (SCRAM's server-final message): a protocol
//!   without success data (POP3, IMAP4rev1 without SASL-IR) sends it as one more
//!   challenge and waits for an empty response before its `OK`.
//!
//! Client lines are decoded with [`decode_response`] (strict base64, `*` cancels,
//! size limits from [`limits`]); challenges are encoded with [`encode_challenge`].
//! Nothing here panics on peer input, reads a clock or touches a socket; the only
//! outside input is the operating system's random generator for nonces, which tests
//! replace with [`SaslServer::start_with_nonce`].

mod cram_md5;
pub mod limits;
mod login;
mod plain;
pub mod scram;
mod wire;

use std::fmt;

pub use cram_md5::apop_matches;
pub use scram::ScramSecret;
pub use wire::{ClientResponse, decode_response, encode_challenge};

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use crate::secret::Secret;
use limits::{
    SASL_NAME_BYTES_MAX, SASL_RESPONSE_BYTES_MAX, SASL_STEPS_MAX, SCRAM_NONCE_BYTES_MAX,
    SCRAM_SERVER_NONCE_BYTES,
};

/// A mechanism this server implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    ScramSha256,
    CramMd5,
    Plain,
    Login,
}

impl Mechanism {
    /// All mechanisms, strongest first: the order they are advertised in.
    pub const ALL: [Mechanism; 4] = [
        Mechanism::ScramSha256,
        Mechanism::CramMd5,
        Mechanism::Plain,
        Mechanism::Login,
    ];

    /// The registered name, as advertised.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }

    /// Looks a name up, ignoring case (RFC 4422 §3.1: names are case-insensitive
    /// upper-case). `SCRAM-SHA-256-PLUS` and everything else are unknown.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Whether the password crosses the wire as it is (only base64 around it).
    pub fn sends_cleartext(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a connection may use, decided by the engine from its configuration and the
/// connection's state.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslPolicy {
    /// TLS is on for this connection (implicit or after STARTTLS/STLS).
    pub tls_on: bool,
    /// Cleartext passwords are allowed without TLS (`[auth] plaintext_without_tls`).
    pub plaintext_allowed: bool,
    /// A PLAIN/SCRAM authorisation identity different from the authentication identity
    /// is passed to the engine (master users); otherwise it fails the exchange.
    pub proxy_auth_allowed: bool,
    /// Mechanisms enabled by configuration (CRAM-MD5 needs stored secrets that only
    /// some accounts have, so an operator may leave it out).
    pub enabled: Vec<Mechanism>,
    /// The host name in CRAM-MD5 challenges (`<random.random@host>`).
    pub hostname: String,
    /// Key for the decoy SCRAM salt of unknown users: the same user name gets the same
    /// salt for as long as the key is kept, so repeated probes see a stable answer.
    /// The engine should keep it for the life of the process (or derive it from the
    /// server key, which keeps it across restarts).
    pub decoy_key: [u8; 32],
    /// `Some` only in tests: every exchange uses this server nonce instead of a
    /// random one (deterministic transcripts). Production engines leave it `None`.
    pub fixed_nonce: Option<String>,
}

impl SaslPolicy {
    /// No mechanism at all (a session that does not offer SASL).
    pub fn disabled() -> SaslPolicy {
        SaslPolicy {
            tls_on: false,
            plaintext_allowed: false,
            proxy_auth_allowed: false,
            enabled: Vec::new(),
            hostname: "localhost".to_owned(),
            decoy_key: [0; 32],
            fixed_nonce: None,
        }
    }

    /// A policy with every mechanism enabled, no proxy authentication, host name
    /// `localhost` and a fresh random decoy key.
    pub fn new(tls_on: bool, plaintext_allowed: bool) -> SaslPolicy {
        let mut decoy_key = [0u8; 32];
        // Without OS randomness the decoy salts are still stable per user; they are
        // only distinguishable by someone who knows the key is zero.
        let _ = getrandom::fill(&mut decoy_key);
        SaslPolicy {
            tls_on,
            plaintext_allowed,
            proxy_auth_allowed: false,
            enabled: Mechanism::ALL.to_vec(),
            hostname: "localhost".to_owned(),
            decoy_key,
            fixed_nonce: None,
        }
    }

    /// Whether `mechanism` may be used on this connection.
    pub fn offers(&self, mechanism: Mechanism) -> bool {
        self.enabled.contains(&mechanism)
            && (!mechanism.sends_cleartext() || self.tls_on || self.plaintext_allowed)
    }
}

impl fmt::Debug for SaslPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslPolicy")
            .field("tls_on", &self.tls_on)
            .field("plaintext_allowed", &self.plaintext_allowed)
            .field("proxy_auth_allowed", &self.proxy_auth_allowed)
            .field("enabled", &self.enabled)
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// The mechanism names to advertise (IMAP `AUTH=…`, POP3 `SASL …`, ManageSieve
/// `"SASL"`), strongest first.
pub fn mechanisms(policy: &SaslPolicy) -> Vec<&'static str> {
    Mechanism::ALL
        .into_iter()
        .filter(|&m| policy.offers(m))
        .map(Mechanism::name)
        .collect()
}

/// Why an exchange could not start. Maps to IMAP `NO` / POP3 `-ERR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// Not implemented or disabled (including every `-PLUS` variant).
    #[error("unsupported authentication mechanism")]
    Unsupported,
    /// A cleartext mechanism without TLS where the policy forbids it (a downgrade
    /// attempt or a careless client): IMAP `[PRIVACYREQUIRED]`.
    #[error("mechanism not allowed without TLS")]
    EncryptionRequired,
    /// No random nonce could be had (or the one given is unusable).
    #[error("authentication temporarily unavailable")]
    Unavailable,
}

/// Why an exchange failed. The client is told only "authentication failed" (or
/// `BAD`/`-ERR` for malformed input); the reason is for logs and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslFailure {
    /// The client sent `*`.
    #[error("cancelled by the client")]
    Cancelled,
    /// The response does not follow the mechanism's grammar (or is not base64).
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// A response over the limits.
    #[error("response too large")]
    TooLarge,
    /// Wrong password or proof, or unknown user (never told apart).
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The authorisation identity is not the authentication identity and proxy
    /// authentication is off.
    #[error("not authorised to act as another user")]
    AuthorizationFailed,
    /// A SCRAM client asked for channel binding (`p=`), which is never offered.
    #[error("channel binding not supported")]
    ChannelBindingNotSupported,
    /// A SCRAM mandatory extension (`m=`) we do not know.
    #[error("unsupported mandatory extension")]
    UnsupportedExtension,
    /// The password source could not answer (LDAP down…): a temporary failure.
    #[error("authentication temporarily unavailable")]
    Unavailable,
    /// A call out of order (step while credentials were awaited, an answer that does
    /// not fit the request, anything after the end, too many steps).
    #[error("unexpected step in the exchange")]
    UnexpectedStep,
}

/// What the SASL server needs from the engine to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRequest {
    /// Check this password for `authcid` (PLAIN, LOGIN). `authzid` is `Some` only when
    /// it differs from `authcid` and [`SaslPolicy::proxy_auth_allowed`] is set: then the
    /// engine must also check that `authcid` may act as `authzid`.
    Verify {
        authcid: String,
        authzid: Option<String>,
        password: Secret,
    },
    /// Fetch the stored secret of this kind for `authcid` (CRAM-MD5, SCRAM-SHA-256).
    Lookup {
        authcid: String,
        authzid: Option<String>,
        kind: SecretKind,
    },
}

/// Which stored secret a [`CredentialRequest::Lookup`] wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// The plaintext-equivalent secret (the password itself) for HMAC-MD5.
    CramMd5,
    /// Salt, iteration count, StoredKey and ServerKey (RFC 5802 §3).
    ScramSha256,
}

/// The engine's answer to a [`CredentialRequest`].
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// The password given in `Verify` is right.
    Verified,
    /// Wrong password, unknown user, or no secret of that kind stored: one answer for
    /// all, so nothing leaks (SCRAM goes on with a decoy to the end).
    Rejected,
    /// The CRAM-MD5 secret (plaintext-equivalent).
    CramMd5Secret(Secret),
    /// The SCRAM-SHA-256 verifier.
    ScramSha256(ScramSecret),
    /// The password source cannot answer now.
    Unavailable,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credentials::Verified => "Verified",
            Credentials::Rejected => "Rejected",
            Credentials::CramMd5Secret(_) => "CramMd5Secret(<redacted>)",
            Credentials::ScramSha256(_) => "ScramSha256(<redacted>)",
            Credentials::Unavailable => "Unavailable",
        })
    }
}

/// The outcome of one call into the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this challenge (raw bytes: encode with [`encode_challenge`]) and pass the
    /// client's answer to [`SaslServer::step`].
    Challenge(Vec<u8>),
    /// Answer with [`SaslServer::provide`].
    NeedCredentials(CredentialRequest),
    /// Authenticated as `authcid` (acting as `authzid` when that is `Some`, which only
    /// happens with proxy authentication). `additional_data` is SCRAM's server-final
    /// message, which the client checks.
    Success {
        authcid: String,
        authzid: Option<String>,
        additional_data: Option<Vec<u8>>,
    },
    /// The exchange is over and failed.
    Failure(SaslFailure),
}

impl SaslStep {
    /// Whether the exchange is over (success or failure).
    pub fn is_final(&self) -> bool {
        matches!(self, SaslStep::Success { .. } | SaslStep::Failure(_))
    }
}

/// What the mechanisms share: the policy's parts they need and the nonce.
struct Context {
    proxy_auth_allowed: bool,
    hostname: String,
    decoy_key: [u8; 32],
    /// The server's random part: SCRAM's server nonce, CRAM-MD5's `n1.n2`.
    nonce: String,
}

enum Exchange {
    Plain(plain::Plain),
    Login(login::Login),
    CramMd5(cram_md5::CramMd5),
    Scram(Box<scram::Scram>),
}

/// One SASL exchange on one connection. A value: feed it, read the answer.
pub struct SaslServer {
    mechanism: Mechanism,
    context: Context,
    exchange: Exchange,
    /// Client messages seen (initial response included).
    steps: u32,
    started: bool,
    done: bool,
}

impl fmt::Debug for SaslServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslServer")
            .field("mechanism", &self.mechanism)
            .field("steps", &self.steps)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl SaslServer {
    /// Starts an exchange for the mechanism the client named. Fails for a mechanism
    /// this connection does not offer, so a client cannot pick one that was not
    /// advertised (downgrade to a cleartext mechanism before TLS).
    pub fn start(mechanism: &str, policy: &SaslPolicy) -> Result<SaslServer, SaslError> {
        if let Some(nonce) = &policy.fixed_nonce {
            return SaslServer::start_with_nonce(mechanism, policy, nonce);
        }
        let mut random = [0u8; SCRAM_SERVER_NONCE_BYTES];
        if getrandom::fill(&mut random).is_err() {
            // No randomness, no nonce: SCRAM and CRAM-MD5 would be replayable.
            return Err(SaslError::Unavailable);
        }
        let nonce = match Mechanism::from_name(mechanism) {
            Some(Mechanism::CramMd5) => {
                let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, ..] = random;
                let n1 = u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
                let n2 = u32::from_be_bytes([b0, b1, b2, b3]);
                format!("{n1}.{n2}")
            }
            _ => STANDARD_NO_PAD.encode(random),
        };
        SaslServer::start_with_nonce(mechanism, policy, &nonce)
    }

    /// [`SaslServer::start`] with the server's random part given: SCRAM's server nonce
    /// or the `n1.n2` of the CRAM-MD5 challenge. For deterministic tests (RFC test
    /// vectors). The nonce must be 1..=`SCRAM_NONCE_BYTES_MAX` printable ASCII
    /// characters without `,`, `<`, `>`, `@` or space.
    pub fn start_with_nonce(
        mechanism: &str,
        policy: &SaslPolicy,
        nonce: &str,
    ) -> Result<SaslServer, SaslError> {
        let nonce_ok = !nonce.is_empty()
            && nonce.len() <= SCRAM_NONCE_BYTES_MAX
            && nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b',' | b'<' | b'>' | b'@'));
        if !nonce_ok {
            return Err(SaslError::Unavailable);
        }
        let mechanism = Mechanism::from_name(mechanism).ok_or(SaslError::Unsupported)?;
        if !policy.enabled.contains(&mechanism) {
            return Err(SaslError::Unsupported);
        }
        if !policy.offers(mechanism) {
            return Err(SaslError::EncryptionRequired);
        }
        let exchange = match mechanism {
            Mechanism::Plain => Exchange::Plain(plain::Plain::default()),
            Mechanism::Login => Exchange::Login(login::Login::default()),
            Mechanism::CramMd5 => Exchange::CramMd5(cram_md5::CramMd5::default()),
            Mechanism::ScramSha256 => Exchange::Scram(Box::default()),
        };
        Ok(SaslServer {
            mechanism,
            context: Context {
                proxy_auth_allowed: policy.proxy_auth_allowed,
                hostname: policy.hostname.clone(),
                decoy_key: policy.decoy_key,
                nonce: nonce.to_owned(),
            },
            exchange,
            steps: 0,
            started: false,
            done: false,
        })
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Whether the exchange is over; every call after that fails.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The first call: the client's initial response (SASL-IR, POP3 `AUTH m ir`),
    /// already base64-decoded, or `None` when it sent none. `Some(empty)` is the empty
    /// initial response (`=`), which is not the same as none.
    pub fn initial(&mut self, initial_response: Option<&[u8]>) -> SaslStep {
        if self.started || self.done {
            return self.finish(SaslStep::Failure(SaslFailure::UnexpectedStep));
        }
        self.started = true;
        if let Some(response) = initial_response
            && let Err(failure) = self.count(response)
        {
            return self.finish(SaslStep::Failure(failure));
        }
        let context = &self.context;
        let outcome = match &mut self.exchange {
            Exchange::Plain(m) => m.initial(initial_response, context),
            Exchange::Login(m) => m.initial(initial_response),
            Exchange::CramMd5(m) => m.initial(initial_response, context),
            Exchange::Scram(m) => m.initial(initial_response, context),
        };
        self.finish(outcome)
    }

    /// The client's next response, already base64-decoded (a `*` line is
    /// [`SaslServer::cancel`] instead).
    pub fn step(&mut self, client_response: &[u8]) -> SaslStep {
        if !self.started || self.done {
            return self.finish(SaslStep::Failure(SaslFailure::UnexpectedStep));
        }
        if let Err(failure) = self.count(client_response) {
            return self.finish(SaslStep::Failure(failure));
        }
        let context = &self.context;
        let outcome = match &mut self.exchange {
            Exchange::Plain(m) => m.step(client_response, context),
            Exchange::Login(m) => m.step(client_response),
            Exchange::CramMd5(m) => m.step(client_response),
            Exchange::Scram(m) => m.step(client_response, context),
        };
        self.finish(outcome)
    }

    /// The engine's answer to the last [`SaslStep::NeedCredentials`].
    pub fn provide(&mut self, credentials: Credentials) -> SaslStep {
        if !self.started || self.done {
            return self.finish(SaslStep::Failure(SaslFailure::UnexpectedStep));
        }
        if credentials == Credentials::Unavailable {
            return self.finish(SaslStep::Failure(SaslFailure::Unavailable));
        }
        let context = &self.context;
        let outcome = match &mut self.exchange {
            Exchange::Plain(m) => m.provide(credentials),
            Exchange::Login(m) => m.provide(credentials),
            Exchange::CramMd5(m) => m.provide(credentials),
            Exchange::Scram(m) => m.provide(credentials, context),
        };
        self.finish(outcome)
    }

    /// The client sent `*`: the exchange ends (RFC 4422 §3.5).
    pub fn cancel(&mut self) -> SaslStep {
        self.finish(SaslStep::Failure(SaslFailure::Cancelled))
    }

    fn count(&mut self, response: &[u8]) -> Result<(), SaslFailure> {
        self.steps += 1;
        if self.steps > SASL_STEPS_MAX {
            return Err(SaslFailure::UnexpectedStep);
        }
        if response.len() > SASL_RESPONSE_BYTES_MAX {
            return Err(SaslFailure::TooLarge);
        }
        Ok(())
    }

    fn finish(&mut self, step: SaslStep) -> SaslStep {
        if step.is_final() {
            self.done = true;
        }
        step
    }
}

/// A user name from the wire: UTF-8, 1..=`SASL_NAME_BYTES_MAX` bytes, no control
/// characters (it ends up in logs and in path lookups).
fn identity(bytes: &[u8]) -> Result<String, SaslFailure> {
    if bytes.is_empty() {
        return Err(SaslFailure::Malformed("empty identity"));
    }
    if bytes.len() > SASL_NAME_BYTES_MAX {
        return Err(SaslFailure::TooLarge);
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| SaslFailure::Malformed("identity is not UTF-8"))?;
    if text.chars().any(char::is_control) {
        return Err(SaslFailure::Malformed("control character in identity"));
    }
    Ok(text.to_owned())
}

/// An authorisation identity: `None` when absent or equal to the authentication
/// identity, `Some` only with proxy authentication; otherwise a failure.
fn authorization(
    authzid: Option<String>,
    authcid: &str,
    context: &Context,
) -> Result<Option<String>, SaslFailure> {
    match authzid {
        None => Ok(None),
        Some(z) if z == authcid => Ok(None),
        Some(_) if !context.proxy_auth_allowed => Err(SaslFailure::AuthorizationFailed),
        Some(z) => Ok(Some(z)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleartext_mechanisms_need_tls_or_permission() {
        let plain_only = SaslPolicy::new(false, false);
        assert_eq!(mechanisms(&plain_only), ["SCRAM-SHA-256", "CRAM-MD5"]);
        assert_eq!(
            SaslServer::start("PLAIN", &plain_only).map(|s| s.mechanism()),
            Err(SaslError::EncryptionRequired)
        );
        assert_eq!(
            SaslServer::start("login", &plain_only).map(|s| s.mechanism()),
            Err(SaslError::EncryptionRequired)
        );
        let tls = SaslPolicy::new(true, false);
        assert_eq!(
            mechanisms(&tls),
            ["SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"]
        );
        assert!(SaslServer::start("plain", &tls).is_ok());
        assert!(SaslServer::start("PLAIN", &SaslPolicy::new(false, true)).is_ok());
    }

    #[test]
    fn unknown_and_plus_mechanisms_are_unsupported() {
        let tls = SaslPolicy::new(true, true);
        for name in ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "GSSAPI", "", "PLAIN\0"] {
            assert_eq!(
                SaslServer::start(name, &tls).map(|s| s.mechanism()),
                Err(SaslError::Unsupported),
                "{name:?}"
            );
        }
        let mut no_cram = SaslPolicy::new(true, true);
        no_cram.enabled.retain(|&m| m != Mechanism::CramMd5);
        assert_eq!(
            SaslServer::start("CRAM-MD5", &no_cram).map(|s| s.mechanism()),
            Err(SaslError::Unsupported)
        );
        assert!(!mechanisms(&no_cram).contains(&"CRAM-MD5"));
    }
}
