//! IMAP values whose constructors check the grammar (RFC 9051 §9), so a value of
//! one of these types is always valid and can be written back to a client as is.

use std::fmt;

use crate::limits::IMAP_TAG_BYTES_MAX;

/// `ATOM-CHAR`: any CHAR except atom-specials `( ) { SP CTL % * " \ ]`.
pub fn is_atom_char(byte: u8) -> bool {
    matches!(byte, 0x21..=0x7e)
        && !matches!(byte, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// `ASTRING-CHAR`: `ATOM-CHAR / resp-specials` (`]`).
pub fn is_astring_char(byte: u8) -> bool {
    is_atom_char(byte) || byte == b']'
}

/// Tag characters: `ASTRING-CHAR` except `+` (the continuation marker).
pub fn is_tag_char(byte: u8) -> bool {
    is_astring_char(byte) && byte != b'+'
}

/// Why bytes were refused by a constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("empty")]
    Empty,
    #[error("longer than allowed")]
    TooLong,
    #[error("character not allowed")]
    BadChar,
}

/// A command tag: 1..=`IMAP_TAG_BYTES_MAX` tag characters (ASCII, so also a `str`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn new(bytes: &[u8]) -> Result<Tag, TypeError> {
        if bytes.is_empty() {
            return Err(TypeError::Empty);
        }
        if bytes.len() > IMAP_TAG_BYTES_MAX {
            return Err(TypeError::TooLong);
        }
        if !bytes.iter().all(|&b| is_tag_char(b)) {
            return Err(TypeError::BadChar);
        }
        Ok(Tag(String::from_utf8_lossy(bytes).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({:?})", self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An atom (`1*ATOM-CHAR`), e.g. a command name or a capability. ASCII.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Atom(String);

impl Atom {
    pub fn new(bytes: &[u8]) -> Result<Atom, TypeError> {
        if bytes.is_empty() {
            return Err(TypeError::Empty);
        }
        if !bytes.iter().all(|&b| is_atom_char(b)) {
            return Err(TypeError::BadChar);
        }
        Ok(Atom(String::from_utf8_lossy(bytes).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same atom upper-cased: command names and capabilities compare that way.
    pub fn to_ascii_uppercase(&self) -> Atom {
        Atom(self.0.to_ascii_uppercase())
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Atom({:?})", self.0)
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The value of an `astring` / `string` however it was sent (atom, quoted or
/// literal): any bytes except NUL (`CHAR8`). May be empty (`""`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AString(Vec<u8>);

impl AString {
    pub fn new(bytes: Vec<u8>) -> Result<AString, TypeError> {
        if bytes.contains(&0) {
            return Err(TypeError::BadChar);
        }
        Ok(AString(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for AString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AString({:?})", String::from_utf8_lossy(&self.0))
    }
}

/// `nstring`: `NIL` or a string.
pub type NString = Option<AString>;

/// Password or SASL material. `Debug` never shows it; the bytes are overwritten
/// when dropped (best effort: copies made by a reallocating `Vec` are not).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The secret bytes; call only where they are checked or hashed.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}

/// A generic argument, for commands whose grammar is a list of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Nil,
    Atom(Atom),
    /// A quoted string or literal.
    String(AString),
    List(Vec<Value>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_rejects_plus_specials_and_overlong() {
        assert!(Tag::new(b"a001").is_ok());
        assert!(Tag::new(b"a]1").is_ok());
        assert_eq!(Tag::new(b""), Err(TypeError::Empty));
        assert_eq!(Tag::new(b"a+"), Err(TypeError::BadChar));
        assert_eq!(Tag::new(b"a*"), Err(TypeError::BadChar));
        assert_eq!(Tag::new(b"a b"), Err(TypeError::BadChar));
        assert_eq!(Tag::new(b"a\x80"), Err(TypeError::BadChar));
        assert_eq!(
            Tag::new(&[b'a'; IMAP_TAG_BYTES_MAX + 1]),
            Err(TypeError::TooLong)
        );
    }

    #[test]
    fn atom_allows_plus_but_not_bracket() {
        assert!(Atom::new(b"LITERAL+").is_ok());
        assert_eq!(Atom::new(b"a]"), Err(TypeError::BadChar));
    }

    #[test]
    fn astring_rejects_nul_and_secret_is_redacted() {
        assert!(AString::new(b"".to_vec()).is_ok());
        assert_eq!(AString::new(b"a\0".to_vec()), Err(TypeError::BadChar));
        let secret = Secret::new(b"hunter2".to_vec());
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
