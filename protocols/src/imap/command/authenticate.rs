//! AUTHENTICATE (RFC 9051 §6.2.2, RFC 3501 §6.2.2) with SASL-IR (RFC 4959), driving
//! the shared [`SaslServer`](crate::sasl::SaslServer).
//!
//! ```text
//! C: a AUTHENTICATE SCRAM-SHA-256 biwsbj1ib2Isc...      SASL-IR: client-first inline
//! (event SaslCredentials(Lookup{bob, ScramSha256}); engine: sasl_credentials(..))
//! S: + cj1meWtvK3...                                     server-first
//! C: Yz1iaXdzLHI9...                                     client-final
//! S: + dj1ybUY5cHF...                                    server-final as a challenge
//! C:                                                     empty line: the client checked it
//! (event SaslFinished{tag a, bob, success}; engine: login_result(..))
//! S: a OK [CAPABILITY ...] Logged in
//! ```
//!
//! The session never looks at a password store: it asks the engine with
//! [`ImapEvent::SaslCredentials`] and, when the exchange is over either way, reports
//! [`ImapEvent::SaslFinished`] so the engine counts it in the same throttles as LOGIN
//! and answers it like a LOGIN ([`ImapSession::login_result`]). SCRAM's server-final
//! message goes out as one more challenge (IMAP has no success data) and the client's
//! empty answer completes the exchange. `*` cancels (tagged BAD, RFC 9051); a response
//! that is not strict base64, is over the SASL size limit, or holds a literal is BAD;
//! a mechanism that is unknown or not offered on this connection is NO.
//!
//! [`ImapEvent::SaslCredentials`]: crate::imap::ImapEvent::SaslCredentials
//! [`ImapEvent::SaslFinished`]: crate::imap::ImapEvent::SaslFinished
//! [`ImapSession::login_result`]: crate::imap::ImapSession::login_result

use crate::imap::parser::InitialResponse;
use crate::imap::session::{Core, ImapEvent, State, Status};
use crate::imap::types::{Atom, Tag};
use crate::sasl::{
    ClientResponse, Credentials, SaslError, SaslFailure, SaslPolicy, SaslServer, SaslStep,
    decode_response, encode_challenge, mechanisms,
};

/// An AUTHENTICATE in progress.
#[derive(Debug)]
pub(crate) struct SaslExchange {
    tag: Tag,
    server: SaslServer,
    /// The identity the client gave (from the last credential request): whom a
    /// failure counts against.
    username: Option<String>,
    stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// A challenge is out; the next line is the client's response.
    ClientLine,
    /// An [`ImapEvent::SaslCredentials`] is unanswered.
    Credentials,
    /// The server-final message is out; the client answers with an empty line.
    FinalAck { user: String },
}

impl Core {
    /// The SASL policy of this connection as it is now (TLS may have started).
    pub(crate) fn sasl_policy(&self) -> SaslPolicy {
        SaslPolicy {
            tls_on: self.tls_active,
            plaintext_allowed: self.config.login_allowed,
            ..self.config.sasl.clone()
        }
    }

    /// ` SASL-IR AUTH=…` for the capability list before login, or nothing when no
    /// mechanism is offered.
    pub(crate) fn sasl_capabilities(&self) -> String {
        let offered = mechanisms(&self.sasl_policy());
        if offered.is_empty() {
            return String::new();
        }
        let mut list = String::from(" SASL-IR");
        for name in offered {
            list.push_str(" AUTH=");
            list.push_str(name);
        }
        list
    }

    /// Parsing waits while the engine owes an answer to the exchange.
    pub(crate) fn sasl_waits_for_engine(&self) -> bool {
        self.sasl
            .as_ref()
            .is_some_and(|s| s.stage == Stage::Credentials)
    }

    /// The next input line belongs to the exchange (a response to a challenge).
    pub(crate) fn sasl_reads_lines(&self) -> bool {
        self.sasl
            .as_ref()
            .is_some_and(|s| s.stage != Stage::Credentials)
    }

    pub(crate) fn authenticate(
        &mut self,
        tag: Tag,
        mechanism: &Atom,
        initial_response: Option<InitialResponse>,
    ) {
        let mut server = match SaslServer::start(mechanism.as_str(), &self.sasl_policy()) {
            Ok(server) => server,
            Err(SaslError::Unsupported) => {
                return self.respond(
                    Some(&tag),
                    Status::No,
                    "[CANNOT] Unsupported authentication mechanism",
                );
            }
            Err(SaslError::EncryptionRequired) => {
                return self.respond(
                    Some(&tag),
                    Status::No,
                    "[PRIVACYREQUIRED] This mechanism needs TLS",
                );
            }
            Err(SaslError::Unavailable) => {
                return self.respond(
                    Some(&tag),
                    Status::No,
                    "[UNAVAILABLE] Authentication is not available now, try again later.",
                );
            }
        };
        self.bad_commands = 0;
        let step = match &initial_response {
            None => server.initial(None),
            Some(InitialResponse::Empty) => server.initial(Some(&[])),
            Some(InitialResponse::Data(data)) => server.initial(Some(data.expose())),
        };
        self.sasl = Some(Box::new(SaslExchange {
            tag,
            server,
            username: None,
            stage: Stage::ClientLine,
        }));
        self.sasl_step(step);
    }

    /// One client line while the exchange reads lines (CRLF included).
    pub(crate) fn sasl_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(exchange) = self.sasl.as_mut() else {
            return;
        };
        let response = decode_response(line);
        let step = match (&exchange.stage, response) {
            (_, Err(failure)) => SaslStep::Failure(failure),
            (_, Ok(ClientResponse::Cancel)) => exchange.server.cancel(),
            (Stage::FinalAck { user }, Ok(ClientResponse::Data(data))) => {
                let user = user.clone();
                return self.sasl_finish(data.expose().is_empty(), Some(user));
            }
            (_, Ok(ClientResponse::Data(data))) => exchange.server.step(data.expose()),
        };
        self.sasl_step(step);
    }

    /// A literal or an over-long line where a SASL response was due.
    pub(crate) fn sasl_bad_input(&mut self, why: &str) {
        if let Some(exchange) = self.sasl.take() {
            self.respond(Some(&exchange.tag), Status::Bad, why);
        }
    }

    /// The engine's answer to [`ImapEvent::SaslCredentials`].
    pub(crate) fn sasl_credentials(&mut self, credentials: Credentials) {
        if self.state == State::Closed {
            // The connection said BYE meanwhile (input overflow): nothing more.
            self.sasl = None;
            return;
        }
        let Some(exchange) = self.sasl.as_mut() else {
            return;
        };
        if exchange.stage != Stage::Credentials {
            return;
        }
        let step = exchange.server.provide(credentials);
        self.sasl_step(step);
    }

    fn sasl_step(&mut self, step: SaslStep) {
        if self.sasl.is_none() {
            return;
        }
        match step {
            SaslStep::Challenge(bytes) => {
                self.sasl_stage(Stage::ClientLine);
                self.text(&format!("+ {}", encode_challenge(&bytes)));
            }
            SaslStep::NeedCredentials(request) => {
                if let Some(exchange) = self.sasl.as_mut() {
                    exchange.stage = Stage::Credentials;
                    exchange.username = Some(request_user(&request).to_owned());
                }
                self.events.push_back(ImapEvent::SaslCredentials(request));
            }
            SaslStep::Success {
                authcid,
                authzid,
                additional_data,
            } => {
                let user = authzid.unwrap_or(authcid);
                match additional_data {
                    Some(data) => {
                        self.sasl_stage(Stage::FinalAck { user });
                        self.text(&format!("+ {}", encode_challenge(&data)));
                    }
                    None => self.sasl_finish(true, Some(user)),
                }
            }
            SaslStep::Failure(failure) => self.sasl_failed(failure),
        }
    }

    fn sasl_stage(&mut self, stage: Stage) {
        if let Some(exchange) = self.sasl.as_mut() {
            exchange.stage = stage;
        }
    }

    fn sasl_failed(&mut self, failure: SaslFailure) {
        let bad = match failure {
            SaslFailure::Cancelled => "AUTHENTICATE cancelled",
            SaslFailure::Malformed(_) => "Invalid SASL response",
            SaslFailure::TooLarge => "SASL response too long",
            SaslFailure::UnexpectedStep => "Unexpected SASL response",
            SaslFailure::Unavailable => {
                if let Some(exchange) = self.sasl.take() {
                    self.respond(
                        Some(&exchange.tag),
                        Status::No,
                        "[UNAVAILABLE] Authentication is not available now, try again later.",
                    );
                }
                return;
            }
            SaslFailure::AuthenticationFailed
            | SaslFailure::AuthorizationFailed
            | SaslFailure::ChannelBindingNotSupported
            | SaslFailure::UnsupportedExtension => {
                let user = self.sasl.as_ref().and_then(|s| s.username.clone());
                return self.sasl_finish(false, user);
            }
        };
        self.sasl_bad_input(bad);
    }

    /// The exchange is over: the engine counts it and answers like a LOGIN.
    fn sasl_finish(&mut self, success: bool, username: Option<String>) {
        let Some(exchange) = self.sasl.take() else {
            return;
        };
        self.events.push_back(ImapEvent::SaslFinished {
            tag: exchange.tag.as_str().to_owned(),
            username,
            success,
        });
        self.login_pending = Some(exchange.tag);
    }
}

fn request_user(request: &crate::sasl::CredentialRequest) -> &str {
    match request {
        crate::sasl::CredentialRequest::Verify { authcid, .. }
        | crate::sasl::CredentialRequest::Lookup { authcid, .. } => authcid,
    }
}

#[cfg(test)]
mod tests {
    use crate::imap::{ImapConfig, ImapEvent, ImapSession};
    use crate::limits::IMAP_INPUT_BUFFER_BYTES_MAX;
    use crate::sasl::{Credentials, Mechanism, SaslPolicy};

    fn session() -> ImapSession {
        let mut session = ImapSession::new(ImapConfig {
            sasl: SaslPolicy {
                enabled: Mechanism::ALL.to_vec(),
                fixed_nonce: Some("n".into()),
                ..SaslPolicy::disabled()
            },
            ..ImapConfig::default()
        });
        let _ = session.poll_output();
        session
    }

    #[test]
    fn an_answer_after_bye_writes_nothing_and_logs_in_nobody() {
        let mut session = session();
        let _ = session.handle_input(b"a AUTHENTICATE PLAIN AGJvYgBwdw==\r\n");
        assert!(matches!(
            session.poll_event(),
            Some(ImapEvent::SaslCredentials(_))
        ));
        // Input keeps coming while the engine looks the user up: over the limit.
        let flood = vec![b'x'; IMAP_INPUT_BUFFER_BYTES_MAX + 1];
        assert!(session.handle_input(&flood).is_err());
        assert_eq!(session.poll_event(), Some(ImapEvent::Close));
        let bye = session.poll_output().unwrap_or_default();
        assert!(
            bye.starts_with(b"* BYE"),
            "{:?}",
            String::from_utf8_lossy(&bye)
        );
        session.sasl_credentials(Credentials::Verified);
        assert_eq!(session.poll_output(), None);
        assert_eq!(session.poll_event(), None);
        assert_eq!(session.user(), None);
    }

    #[test]
    fn responses_are_read_as_lines_not_commands() {
        let mut session = session();
        // A response line that looks like a command is still a SASL response.
        let _ = session.handle_input(b"a AUTHENTICATE LOGIN\r\nb LOGOUT\r\n");
        let out = session.poll_output().unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "+ VXNlcm5hbWU6\r\na BAD Invalid SASL response\r\n"
        );
        assert_eq!(session.poll_event(), None);
        assert!(!session.is_closed());
    }
}
