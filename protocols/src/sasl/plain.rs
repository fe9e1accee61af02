//! PLAIN (RFC 4616): one client message `[authzid] NUL authcid NUL passwd`.

use super::limits::SASL_PASSWORD_BYTES_MAX;
use super::{
    Context, CredentialRequest, Credentials, SaslFailure, SaslStep, authorization, identity,
};
use crate::secret::Secret;

#[derive(Default)]
pub(super) enum Plain {
    /// Waiting for the client's message (after an empty challenge when there was no
    /// initial response).
    #[default]
    AwaitMessage,
    /// The password is with the engine.
    AwaitVerdict {
        authcid: String,
        authzid: Option<String>,
    },
    Done,
}

impl Plain {
    pub(super) fn initial(&mut self, response: Option<&[u8]>, context: &Context) -> SaslStep {
        match response {
            // RFC 4422 §5: a client-first mechanism without an initial response gets an
            // empty challenge.
            None => SaslStep::Challenge(Vec::new()),
            Some(message) => self.step(message, context),
        }
    }

    pub(super) fn step(&mut self, message: &[u8], context: &Context) -> SaslStep {
        if !matches!(self, Plain::AwaitMessage) {
            *self = Plain::Done;
            return SaslStep::Failure(SaslFailure::UnexpectedStep);
        }
        match parse(message, context) {
            Ok((authcid, authzid, password)) => {
                *self = Plain::AwaitVerdict {
                    authcid: authcid.clone(),
                    authzid: authzid.clone(),
                };
                SaslStep::NeedCredentials(CredentialRequest::Verify {
                    authcid,
                    authzid,
                    password,
                })
            }
            Err(failure) => {
                *self = Plain::Done;
                SaslStep::Failure(failure)
            }
        }
    }

    pub(super) fn provide(&mut self, credentials: Credentials) -> SaslStep {
        match (std::mem::replace(self, Plain::Done), credentials) {
            (Plain::AwaitVerdict { authcid, authzid }, Credentials::Verified) => {
                SaslStep::Success {
                    authcid,
                    authzid,
                    additional_data: None,
                }
            }
            (Plain::AwaitVerdict { .. }, Credentials::Rejected) => {
                SaslStep::Failure(SaslFailure::AuthenticationFailed)
            }
            _ => SaslStep::Failure(SaslFailure::UnexpectedStep),
        }
    }
}

/// `message = [authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616 §2).
fn parse(
    message: &[u8],
    context: &Context,
) -> Result<(String, Option<String>, Secret), SaslFailure> {
    let mut parts = message.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslFailure::Malformed(
            "PLAIN needs authzid NUL authcid NUL password",
        ));
    };
    if password.contains(&0) {
        return Err(SaslFailure::Malformed("NUL in PLAIN password"));
    }
    if password.is_empty() {
        return Err(SaslFailure::Malformed("empty password"));
    }
    if password.len() > SASL_PASSWORD_BYTES_MAX {
        return Err(SaslFailure::TooLarge);
    }
    let authcid = identity(authcid)?;
    let authzid = if authzid.is_empty() {
        None
    } else {
        Some(identity(authzid)?)
    };
    let authzid = authorization(authzid, &authcid, context)?;
    Ok((authcid, authzid, Secret::new(password.to_vec())))
}
