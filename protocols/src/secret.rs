//! Password and SASL material shared by every protocol (IMAP, POP3, poppassd…).
//!
//! The type is defined in `imap::types` for now (where it was born) and
//! re-exported here so other protocols do not depend on the IMAP module by name;
//! moving the definition here later changes no caller.

pub use crate::imap::types::Secret;
