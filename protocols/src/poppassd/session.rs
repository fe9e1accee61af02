//! The poppassd server session: a state machine over bytes.
//!
//! The engine feeds what it reads to [`PoppassdSession::handle_input`], writes
//! what [`PoppassdSession::poll_output`] returns and acts on
//! [`PoppassdSession::poll_event`]. While a password check or change waits for
//! the engine, no further input is parsed.

use std::collections::VecDeque;
use std::marker::PhantomData;

use crate::limits::{
    POPPASSD_FAILURES_MAX, POPPASSD_INPUT_BUFFER_BYTES_MAX, POPPASSD_LINE_BYTES_MAX,
};
use crate::line::{InputError, Line, LineBuffer};
use crate::secret::Secret;

/// What a session needs to know about its listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoppassdConfig {
    /// Host name in the greeting.
    pub server_name: String,
}

impl Default for PoppassdConfig {
    fn default() -> PoppassdConfig {
        PoppassdConfig {
            server_name: "localhost".to_owned(),
        }
    }
}

/// Something only the engine can do.
#[derive(Debug, PartialEq, Eq)]
pub enum PoppassdEvent {
    /// Is `old` the password of `user`? Answer with
    /// [`PoppassdSession::check_result`]. Rate-limit like a login.
    CheckPassword { user: String, old: Secret },
    /// Set `user`'s password to `new` (every stored verifier: IMAP, POP3,
    /// SASL), after the configured password rules. `old` was checked just
    /// before; check it again if the engine keeps no state between events.
    /// Answer with [`PoppassdSession::change_result`].
    ChangePassword {
        user: String,
        old: Secret,
        new: Secret,
    },
    /// Close the connection once the output polled so far is written.
    Close,
}

/// The engine's answer to [`PoppassdEvent::CheckPassword`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Correct,
    /// Wrong password or no such user (never told apart); counts as a failure.
    Incorrect,
    /// The account store cannot answer now.
    Unavailable,
}

/// The engine's answer to [`PoppassdEvent::ChangePassword`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChange {
    /// Durably changed.
    Changed,
    /// The new password breaks a rule; the reason is shown to the user
    /// (`500 <reason>`) and counts as a failure. The user may try another.
    Refused(String),
    /// The account store cannot answer now.
    Unavailable,
}

#[derive(Debug)]
enum State {
    /// Expecting `user`.
    User,
    /// Expecting `pass` for this user.
    Pass {
        user: String,
    },
    /// A `CheckPassword` event waits for its answer.
    Checking {
        user: String,
        old: Secret,
    },
    /// Expecting `newpass`.
    NewPass {
        user: String,
        old: Secret,
    },
    /// A `ChangePassword` event waits for its answer.
    Changing {
        user: String,
        old: Secret,
    },
    /// Changed: only `quit` is left.
    Done,
    Closed,
}

/// One poppassd connection. Not `Send`: it belongs to the shard serving it.
#[derive(Debug)]
pub struct PoppassdSession {
    state: State,
    input: LineBuffer,
    output: Vec<u8>,
    events: VecDeque<PoppassdEvent>,
    failures: u32,
    _not_send: PhantomData<*const ()>,
}

impl PoppassdSession {
    /// A new connection; the `200` greeting is queued.
    pub fn new(config: PoppassdConfig) -> PoppassdSession {
        let mut session = PoppassdSession {
            state: State::User,
            input: LineBuffer::new(POPPASSD_INPUT_BUFFER_BYTES_MAX),
            output: Vec::new(),
            events: VecDeque::new(),
            failures: 0,
            _not_send: PhantomData,
        };
        session.reply(200, &format!("{} poppassd", config.server_name));
        session
    }

    /// Takes bytes read from the client and answers every complete command,
    /// stopping while an event waits. Fails only when the unparsed input would
    /// pass `POPPASSD_INPUT_BUFFER_BYTES_MAX`; the session then says `500` and
    /// closes. Input after close is ignored.
    pub fn handle_input(&mut self, mut data: &[u8]) -> Result<(), InputError> {
        loop {
            if matches!(self.state, State::Closed) {
                return Ok(());
            }
            let (now, later) = data.split_at(data.len().min(self.input.room()));
            self.input.push(now);
            data = later;
            self.process();
            if data.is_empty() {
                return Ok(());
            }
            if self.input.room() == 0 && !matches!(self.state, State::Closed) {
                let error = InputError {
                    buffered_bytes: self.input.len(),
                    offered_bytes: data.len(),
                };
                self.reply(500, "Too much input.");
                self.close();
                return Err(error);
            }
        }
    }

    /// All output queued so far, in order, as one buffer to write.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    /// The next thing the engine must do.
    pub fn poll_event(&mut self) -> Option<PoppassdEvent> {
        self.events.pop_front()
    }

    /// Answers [`PoppassdEvent::CheckPassword`] and resumes parsing.
    pub fn check_result(&mut self, check: PasswordCheck) {
        let State::Checking { .. } = self.state else {
            debug_assert!(self.is_closed(), "check_result without CheckPassword");
            return;
        };
        let State::Checking { user, old } = std::mem::replace(&mut self.state, State::User) else {
            return;
        };
        match check {
            PasswordCheck::Correct => {
                self.state = State::NewPass { user, old };
                self.reply(200, "Your new password please.");
            }
            PasswordCheck::Incorrect => self.fail("Old password is incorrect."),
            PasswordCheck::Unavailable => {
                self.reply(500, "Password service is not available now, try later.");
            }
        }
        self.process();
    }

    /// Answers [`PoppassdEvent::ChangePassword`] and resumes parsing.
    pub fn change_result(&mut self, change: PasswordChange) {
        let State::Changing { .. } = self.state else {
            debug_assert!(self.is_closed(), "change_result without ChangePassword");
            return;
        };
        let State::Changing { user, old } = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        match change {
            PasswordChange::Changed => self.reply(200, "Password changed, thank-you."),
            PasswordChange::Refused(reason) => {
                self.state = State::NewPass { user, old };
                self.fail(&reason);
            }
            PasswordChange::Unavailable => {
                self.state = State::NewPass { user, old };
                self.reply(500, "Password service is not available now, try later.");
            }
        }
        self.process();
    }

    /// How many bytes `handle_input` can take now without failing.
    pub fn input_room(&self) -> usize {
        match self.state {
            State::Closed => 0,
            _ => self.input.room(),
        }
    }

    /// True once [`PoppassdEvent::Close`] has been queued.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    fn process(&mut self) {
        while matches!(
            self.state,
            State::User | State::Pass { .. } | State::NewPass { .. } | State::Done
        ) {
            match self.input.next_line(POPPASSD_LINE_BYTES_MAX) {
                Line::NeedMore => return,
                Line::TooLong => self.fail("Line too long."),
                Line::Complete(line) => self.command(&line),
            }
        }
    }

    fn command(&mut self, line: &[u8]) {
        let (verb, argument) = match line.iter().position(|&b| b == b' ') {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (line, &b""[..]),
        };
        let verb = verb.to_ascii_lowercase();
        match (verb.as_slice(), &mut self.state) {
            (b"quit", _) => {
                self.reply(200, "Bye.");
                self.close();
            }
            (b"user", State::User) => match user_name(argument) {
                Some(user) => {
                    self.state = State::Pass { user };
                    self.reply(200, "Your password please.");
                }
                None => self.fail("Syntax: user <name>"),
            },
            (b"pass", State::Pass { user }) if !argument.is_empty() => {
                let user = std::mem::take(user);
                let old = Secret::new(argument.to_vec());
                self.events.push_back(PoppassdEvent::CheckPassword {
                    user: user.clone(),
                    old: old.clone(),
                });
                self.state = State::Checking { user, old };
            }
            (b"pass", State::Pass { .. }) => self.fail("Syntax: pass <password>"),
            (b"newpass", State::NewPass { user, old }) if !argument.is_empty() => {
                let (user, old) = (std::mem::take(user), old.clone());
                let new = Secret::new(argument.to_vec());
                self.events.push_back(PoppassdEvent::ChangePassword {
                    user: user.clone(),
                    old: old.clone(),
                    new,
                });
                self.state = State::Changing { user, old };
            }
            (b"newpass", State::NewPass { .. }) => self.fail("Syntax: newpass <password>"),
            (b"user" | b"pass" | b"newpass", _) => self.fail("Command out of sequence."),
            _ => self.fail("Unknown command."),
        }
    }

    /// A `500` that counts toward `POPPASSD_FAILURES_MAX`.
    fn fail(&mut self, text: &str) {
        self.reply(500, text);
        self.failures += 1;
        if self.failures >= POPPASSD_FAILURES_MAX {
            self.close();
        }
    }

    /// One reply line; control characters (from the engine) become spaces.
    fn reply(&mut self, code: u16, text: &str) {
        let line = format!("{code} {text}");
        self.output.extend(
            line.bytes()
                .map(|b| if b.is_ascii_control() { b' ' } else { b }),
        );
        self.output.extend_from_slice(b"\r\n");
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.input.discard_all();
        self.events.push_back(PoppassdEvent::Close);
    }
}

/// One token of printable UTF-8.
fn user_name(argument: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(argument).ok()?;
    (!name.is_empty() && !name.chars().any(|c| c.is_control() || c == ' ')).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_do_not_show_passwords() {
        let mut session = PoppassdSession::new(PoppassdConfig::default());
        session
            .handle_input(b"user bob\r\npass hunter2\r\n")
            .expect("fits");
        let event = session.poll_event().expect("check");
        assert!(!format!("{event:?}").contains("hunter2"));
    }

    #[test]
    fn flood_while_checking_closes() {
        let mut session = PoppassdSession::new(PoppassdConfig::default());
        session
            .handle_input(b"user bob\r\npass pw\r\n")
            .expect("fits");
        let flood = vec![b'x'; POPPASSD_INPUT_BUFFER_BYTES_MAX + 1];
        assert!(session.handle_input(&flood).is_err());
        let output = session.poll_output().unwrap_or_default();
        assert!(output.ends_with(b"500 Too much input.\r\n"));
        session.check_result(PasswordCheck::Correct);
        assert_eq!(session.poll_output(), None);
    }
}
