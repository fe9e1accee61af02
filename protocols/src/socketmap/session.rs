//! The socketmap server session: netstring requests in, [`SocketmapEvent::Lookup`]
//! events out, one at a time; the engine's [`SocketmapReply`] goes back as a
//! netstring. While a lookup waits for its answer no further request is parsed,
//! so pipelined requests are answered in the order they came.

use std::collections::VecDeque;
use std::marker::PhantomData;

use crate::limits::{SOCKETMAP_INPUT_BUFFER_BYTES_MAX, SOCKETMAP_REQUEST_BYTES_MAX};
use crate::line::InputError;
use crate::socketmap::netstring::{self, NetstringError};
use crate::socketmap::reply::SocketmapReply;

/// The maps msgstore serves, by their socketmap name (`socketmap:inet:HOST:PORT:NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapName {
    /// `transport`: which LMTP socket owns the recipient (`transport_maps`).
    Transport,
    /// `recipient`: may the recipient receive mail now (`relay_recipient_maps`).
    Recipient,
    /// `virtual`: the forwarding targets (`virtual_alias_maps`).
    Virtual,
    /// Any other name, lower-cased: answer `PERM` (or serve it).
    Other(String),
}

impl MapName {
    /// Map names are matched case-insensitively.
    pub fn parse(name: &str) -> MapName {
        match name.to_ascii_lowercase().as_str() {
            "transport" => MapName::Transport,
            "recipient" => MapName::Recipient,
            "virtual" => MapName::Virtual,
            other => MapName::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            MapName::Transport => "transport",
            MapName::Recipient => "recipient",
            MapName::Virtual => "virtual",
            MapName::Other(name) => name,
        }
    }
}

/// Something only the engine can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketmapEvent {
    /// Look `key` up in `map`; answer with [`SocketmapSession::reply`]. The key is as
    /// Postfix sent it (an address, `*`, a domain): the engine canonicalises it.
    Lookup { map: MapName, key: String },
    /// Close the connection once the output polled so far is written: the input was
    /// not netstrings (or more than the buffer holds).
    Close,
}

/// [`SocketmapSession::reply`] was called with no lookup waiting: an engine bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("socketmap reply with no lookup waiting")]
pub struct NoLookupPending;

/// One socketmap connection (Postfix keeps it open for many lookups). Not `Send`.
#[derive(Debug)]
pub struct SocketmapSession {
    input: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<SocketmapEvent>,
    /// A `Lookup` waits for its reply.
    waiting: bool,
    closed: bool,
    _not_send: PhantomData<*const ()>,
}

impl Default for SocketmapSession {
    fn default() -> SocketmapSession {
        SocketmapSession::new()
    }
}

impl SocketmapSession {
    /// A new connection. The protocol has no greeting: the client speaks first.
    pub fn new() -> SocketmapSession {
        SocketmapSession {
            input: Vec::new(),
            output: Vec::new(),
            events: VecDeque::new(),
            waiting: false,
            closed: false,
            _not_send: PhantomData,
        }
    }

    /// How many more bytes [`SocketmapSession::handle_input`] takes now.
    pub fn input_room(&self) -> usize {
        SOCKETMAP_INPUT_BUFFER_BYTES_MAX.saturating_sub(self.input.len())
    }

    /// Takes bytes read from the client and parses requests up to the next lookup.
    /// Garbage queues [`SocketmapEvent::Close`]; more than `input_room()` bytes is an
    /// error (and a close) too. Input after a close is ignored.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), InputError> {
        if self.closed {
            return Ok(());
        }
        if bytes.len() > self.input_room() {
            self.close();
            return Err(InputError {
                buffered_bytes: self.input.len(),
                offered_bytes: bytes.len(),
            });
        }
        self.input.extend_from_slice(bytes);
        self.advance();
        Ok(())
    }

    /// The next thing for the engine to do.
    pub fn poll_event(&mut self) -> Option<SocketmapEvent> {
        self.events.pop_front()
    }

    /// Answers the waiting lookup, then parses the next buffered request.
    pub fn reply(&mut self, reply: SocketmapReply) -> Result<(), NoLookupPending> {
        if !self.waiting {
            return Err(NoLookupPending);
        }
        self.waiting = false;
        netstring::encode(&reply.payload(), &mut self.output);
        self.advance();
        Ok(())
    }

    /// Bytes to write to the client, if any.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    /// True once the session asked for the connection to close.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn advance(&mut self) {
        while !self.waiting && !self.closed {
            let frame = match netstring::decode(&self.input, SOCKETMAP_REQUEST_BYTES_MAX) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(NetstringError::BadLength)
                | Err(NetstringError::TooLong { .. })
                | Err(NetstringError::MissingComma) => {
                    self.close();
                    return;
                }
            };
            let (start, end) = frame.payload;
            let request = parse_request(&self.input[start..end]);
            self.input.drain(..frame.consumed);
            match request {
                Ok((map, key)) => {
                    self.waiting = true;
                    self.events.push_back(SocketmapEvent::Lookup { map, key });
                }
                Err(reason) => {
                    let reply = SocketmapReply::Perm(reason.to_owned());
                    netstring::encode(&reply.payload(), &mut self.output);
                }
            }
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.waiting = false;
        self.input = Vec::new();
        self.events.push_back(SocketmapEvent::Close);
    }
}

/// `<mapname> <key>`: the name is one word, the key is the rest (it may hold spaces).
fn parse_request(payload: &[u8]) -> Result<(MapName, String), &'static str> {
    let text = std::str::from_utf8(payload).map_err(|_| "request is not UTF-8")?;
    let (name, key) = text
        .split_once(' ')
        .ok_or("malformed request: expected <mapname> <key>")?;
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !name_ok {
        return Err("malformed map name");
    }
    if key.chars().any(char::is_control) {
        return Err("control character in key");
    }
    Ok((MapName::parse(name), key.to_owned()))
}
