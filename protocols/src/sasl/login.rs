//! LOGIN (draft-murchison-sasl-login): the server asks `Username:` then `Password:`.
//! Some clients (Outlook) send the user name as an initial response; that is accepted.

use super::limits::SASL_PASSWORD_BYTES_MAX;
use super::{CredentialRequest, Credentials, SaslFailure, SaslStep, identity};
use crate::secret::Secret;

/// The challenges, exactly as the draft and every client expect them.
pub(super) const USERNAME_CHALLENGE: &[u8] = b"Username:";
pub(super) const PASSWORD_CHALLENGE: &[u8] = b"Password:";

#[derive(Default)]
pub(super) enum Login {
    #[default]
    AwaitUser,
    AwaitPassword {
        authcid: String,
    },
    AwaitVerdict {
        authcid: String,
    },
    Done,
}

impl Login {
    pub(super) fn initial(&mut self, response: Option<&[u8]>) -> SaslStep {
        match response {
            None => SaslStep::Challenge(USERNAME_CHALLENGE.to_vec()),
            Some(user) => self.step(user),
        }
    }

    pub(super) fn step(&mut self, response: &[u8]) -> SaslStep {
        match std::mem::replace(self, Login::Done) {
            Login::AwaitUser => match identity(response) {
                Ok(authcid) => {
                    *self = Login::AwaitPassword { authcid };
                    SaslStep::Challenge(PASSWORD_CHALLENGE.to_vec())
                }
                Err(failure) => SaslStep::Failure(failure),
            },
            Login::AwaitPassword { authcid } => {
                if response.is_empty() {
                    return SaslStep::Failure(SaslFailure::Malformed("empty password"));
                }
                if response.len() > SASL_PASSWORD_BYTES_MAX {
                    return SaslStep::Failure(SaslFailure::TooLarge);
                }
                *self = Login::AwaitVerdict {
                    authcid: authcid.clone(),
                };
                SaslStep::NeedCredentials(CredentialRequest::Verify {
                    authcid,
                    authzid: None,
                    password: Secret::new(response.to_vec()),
                })
            }
            Login::AwaitVerdict { .. } | Login::Done => {
                SaslStep::Failure(SaslFailure::UnexpectedStep)
            }
        }
    }

    pub(super) fn provide(&mut self, credentials: Credentials) -> SaslStep {
        match (std::mem::replace(self, Login::Done), credentials) {
            (Login::AwaitVerdict { authcid }, Credentials::Verified) => SaslStep::Success {
                authcid,
                authzid: None,
                additional_data: None,
            },
            (Login::AwaitVerdict { .. }, Credentials::Rejected) => {
                SaslStep::Failure(SaslFailure::AuthenticationFailed)
            }
            _ => SaslStep::Failure(SaslFailure::UnexpectedStep),
        }
    }
}
