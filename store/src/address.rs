//! Mail addresses in the one canonical form the store keys everything by (DESIGN §2):
//! lower-cased ASCII `local@domain` with any `+detail` removed.
//!
//! The canonical address is also a directory name (`users/ab/cd/<address>/`), so the
//! parser is strict: no byte that a file system, a shell or a log line could misread.

use std::fmt;

use crate::error::{Result, StoreError};
use crate::limits::{
    ADDRESS_BYTES_MAX, DOMAIN_BYTES_MAX, DOMAIN_LABEL_BYTES_MAX, LOCAL_PART_BYTES_MAX,
};

/// Separates the user from the sub-address in a local part (`bob+lists@example.com`).
pub const DETAIL_SEPARATOR: char = '+';

/// A canonical address: lower-case ASCII `local@domain`, no sub-address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    canonical: String,
    /// Byte offset of the '@' in `canonical`.
    at: usize,
}

impl Address {
    /// Parses and canonicalises an address; a `+detail` is dropped.
    pub fn parse(input: &str) -> Result<Address> {
        Self::parse_recipient(input).map(|(address, _detail)| address)
    }

    /// Parses a recipient, returning the canonical address and the `+detail` (case kept;
    /// `Some("")` for `bob+@example.com`, `None` when there is no separator).
    pub fn parse_recipient(input: &str) -> Result<(Address, Option<String>)> {
        let invalid = |reason: &'static str| StoreError::InvalidAddress {
            input: input.to_owned(),
            reason,
        };
        if input.len() > ADDRESS_BYTES_MAX {
            return Err(invalid("address is too long"));
        }
        if let Some(reason) = input.bytes().find_map(forbidden_byte) {
            return Err(invalid(reason));
        }
        let (local, domain) = match input.split_once('@') {
            Some((local, domain)) if !domain.contains('@') => (local, domain),
            Some(_) => return Err(invalid("more than one '@'")),
            None => return Err(invalid("missing '@'")),
        };
        check_local(local).map_err(invalid)?;
        check_domain(domain).map_err(invalid)?;
        let (user, detail) = match local.split_once(DETAIL_SEPARATOR) {
            Some((user, detail)) => (user, Some(detail.to_owned())),
            None => (local, None),
        };
        check_user(user).map_err(invalid)?;
        let canonical = format!("{user}@{domain}").to_ascii_lowercase();
        let address = Address {
            at: user.len(),
            canonical,
        };
        Ok((address, detail))
    }

    /// The canonical `local@domain`.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The canonical local part (no detail).
    pub fn local(&self) -> &str {
        &self.canonical[..self.at]
    }

    /// The canonical domain.
    pub fn domain(&self) -> &str {
        &self.canonical[self.at + 1..]
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl AsRef<str> for Address {
    fn as_ref(&self) -> &str {
        &self.canonical
    }
}

/// Why a byte may not appear anywhere in an address, or `None` when it may.
fn forbidden_byte(byte: u8) -> Option<&'static str> {
    match byte {
        b if b.is_ascii_control() => Some("control character"),
        b' ' => Some("space"),
        b if !b.is_ascii() => Some("non-ASCII character"),
        b'/' | b'\\' => Some("path separator"),
        b'"' => Some("quote"),
        _ => None,
    }
}

fn check_local(local: &str) -> std::result::Result<(), &'static str> {
    if local.is_empty() {
        return Err("empty local part");
    }
    if local.len() > LOCAL_PART_BYTES_MAX {
        return Err("local part is too long");
    }
    Ok(())
}

/// The local part without its detail: this becomes the start of a directory name.
fn check_user(user: &str) -> std::result::Result<(), &'static str> {
    if user.is_empty() {
        return Err("empty local part");
    }
    if user == "." || user == ".." {
        return Err("local part is a dot name");
    }
    if user.starts_with('.') || user.ends_with('.') {
        return Err("local part starts or ends with '.'");
    }
    Ok(())
}

fn check_domain(domain: &str) -> std::result::Result<(), &'static str> {
    if domain.is_empty() {
        return Err("empty domain");
    }
    if domain.len() > DOMAIN_BYTES_MAX {
        return Err("domain is too long");
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err("empty domain label");
        }
        if label.len() > DOMAIN_LABEL_BYTES_MAX {
            return Err("domain label is too long");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("domain label may hold only letters, digits and '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let table = [
            ("alice@example.com", "alice@example.com", None),
            ("Bob+Lists@Example.COM", "bob@example.com", Some("Lists")),
            ("bob+@example.com", "bob@example.com", Some("")),
            ("a+b+c@x.y", "a@x.y", Some("b+c")),
            (
                "first.last@sub-1.example.org",
                "first.last@sub-1.example.org",
                None,
            ),
            ("x@localhost", "x@localhost", None),
            (
                "O'Neil_#!$%&*=?^`{|}~@ex.com",
                "o'neil_#!$%&*=?^`{|}~@ex.com",
                None,
            ),
        ];
        for (input, canonical, detail) in table {
            let (addr, got_detail) =
                Address::parse_recipient(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(addr.as_str(), canonical, "{input}");
            assert_eq!(got_detail.as_deref(), detail, "{input}");
            assert_eq!(Address::parse(input).ok(), Some(addr.clone()));
            assert_eq!(addr.to_string(), canonical);
            assert_eq!(format!("{}@{}", addr.local(), addr.domain()), canonical);
        }
        let addr = Address::parse("Bob+Lists@Example.COM").ok();
        assert_eq!(addr.as_ref().map(Address::local), Some("bob"));
        assert_eq!(addr.as_ref().map(Address::domain), Some("example.com"));
    }

    #[test]
    fn rejects_bad_input() {
        let long_local = format!("{}@x.com", "a".repeat(65));
        let long_label = format!("a@{}.com", "b".repeat(64));
        let long_address = format!("{}@{}", "a".repeat(60), vec!["b".repeat(60); 4].join("."));
        let table: Vec<(&str, &str)> = vec![
            ("", "missing '@'"),
            ("alice", "missing '@'"),
            ("a@b@c", "more than one '@'"),
            ("@example.com", "empty local part"),
            ("+tag@example.com", "empty local part"),
            ("alice@", "empty domain"),
            ("al ice@example.com", "space"),
            ("alice@exa\tmple.com", "control character"),
            ("alice\n@example.com", "control character"),
            ("al\u{e9}@example.com", "non-ASCII character"),
            ("a/b@example.com", "path separator"),
            ("a\\b@example.com", "path separator"),
            ("\"a\"@example.com", "quote"),
            (".@example.com", "local part is a dot name"),
            ("..@example.com", "local part is a dot name"),
            (".alice@example.com", "local part starts or ends with '.'"),
            ("alice.@example.com", "local part starts or ends with '.'"),
            ("alice.+x@example.com", "local part starts or ends with '.'"),
            ("alice@.", "empty domain label"),
            ("alice@..", "empty domain label"),
            ("alice@.example.com", "empty domain label"),
            ("alice@example.com.", "empty domain label"),
            ("alice@exa..mple", "empty domain label"),
            (
                "alice@exa_mple.com",
                "domain label may hold only letters, digits and '-'",
            ),
            (
                "alice@[127.0.0.1]",
                "domain label may hold only letters, digits and '-'",
            ),
            (&long_local, "local part is too long"),
            (&long_label, "domain label is too long"),
            (&long_address, "address is too long"),
        ];
        for (input, want) in table {
            match Address::parse(input) {
                Err(StoreError::InvalidAddress { input: i, reason }) => {
                    assert_eq!(i, input);
                    assert_eq!(reason, want, "{input}");
                }
                other => panic!("{input}: expected InvalidAddress, got {other:?}"),
            }
        }
    }

    #[test]
    fn limits_are_inclusive() {
        let local = "a".repeat(LOCAL_PART_BYTES_MAX);
        assert!(Address::parse(&format!("{local}@x.com")).is_ok());
        let label = "b".repeat(DOMAIN_LABEL_BYTES_MAX);
        assert!(Address::parse(&format!("a@{label}.com")).is_ok());
    }
}
