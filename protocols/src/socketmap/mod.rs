//! Postfix socketmap server (`socketmap_table(5)`), sans-IO: how Postfix asks
//! msgstore, per recipient, which LMTP socket owns it (`transport`), whether it
//! may receive mail now (`recipient`) and where forwarding sends it (`virtual`)
//! — DESIGN §2, issue 4.
//!
//! Every request and reply is a netstring ([`netstring`]): the request payload
//! is `<mapname> <key>`, the reply one of `OK <data>`, `NOTFOUND `,
//! `TEMP <reason>`, `TIMEOUT <reason>`, `PERM <reason>` ([`SocketmapReply`]).
//! Postfix keeps a connection open and sends one request at a time; pipelined
//! requests are answered in order. A request that is a netstring but not
//! `<mapname> <key>` gets `PERM`; input that is not a netstring (or one over
//! `SOCKETMAP_REQUEST_BYTES_MAX`) closes the connection without a reply.
//!
//! Postfix configuration (`main.cf`), with `listen.socketmap = 127.0.0.1:2490`:
//!
//! ```text
//! transport_maps       = socketmap:inet:127.0.0.1:2490:transport
//! relay_recipient_maps = socketmap:inet:127.0.0.1:2490:recipient
//! virtual_alias_maps   = socketmap:inet:127.0.0.1:2490:virtual
//! ```
//!
//! Postfix sends the full key only (`alice@example.com`; `transport_maps` then
//! also asks for `*`): no `@domain` fallback keys arrive.
//!
//! ```
//! use protocols::socketmap::{MapName, SocketmapEvent, SocketmapReply, SocketmapSession};
//!
//! let mut session = SocketmapSession::new();
//! session.handle_input(b"27:transport alice@example.com,")?;
//! let Some(SocketmapEvent::Lookup { map, key }) = session.poll_event() else {
//!     panic!("expected a lookup");
//! };
//! assert_eq!((map, key.as_str()), (MapName::Transport, "alice@example.com"));
//! session.reply(SocketmapReply::lmtp_inet("127.0.0.1", 2425)).expect("waiting");
//! assert_eq!(session.poll_output().expect("reply"), b"27:OK lmtp:inet:127.0.0.1:2425,");
//! # Ok::<(), protocols::socketmap::InputError>(())
//! ```

pub mod netstring;
mod reply;
mod session;

pub use crate::line::InputError;
pub use reply::SocketmapReply;
pub use session::{MapName, NoLookupPending, SocketmapEvent, SocketmapSession};
