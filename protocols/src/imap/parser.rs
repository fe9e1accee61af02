//! Parses one complete frame (from [`framing`](super::framing)) into a
//! [`TaggedCommand`]. Grammar from RFC 9051 §9 / RFC 3501 §9; command names are
//! case-insensitive. The frame's literal announcements are trusted for nothing:
//! every length is checked against the bytes actually there.

use base64::Engine as _;

use crate::imap::command;
use crate::imap::framing::parse_number;
use crate::imap::types::{
    AString, Atom, NString, Secret, Tag, Value, is_astring_char, is_atom_char, is_tag_char,
};
use crate::limits::{
    IMAP_ID_FIELD_BYTES_MAX, IMAP_ID_PAIRS_MAX, IMAP_ID_VALUE_BYTES_MAX, IMAP_LIST_DEPTH_MAX,
};

/// A parsed command with its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedCommand {
    pub tag: Tag,
    pub command: Command,
}

/// Commands this parser knows the arguments of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capability,
    Noop,
    Logout,
    StartTls,
    Login {
        username: AString,
        password: Secret,
    },
    Authenticate {
        mechanism: Atom,
        initial_response: Option<InitialResponse>,
    },
    /// `None` for `ID NIL`.
    Id {
        parameters: Option<Vec<(AString, NString)>>,
    },
    Enable {
        capabilities: Vec<Atom>,
    },
    /// SELECT / EXAMINE.
    Select(command::select::SelectArgs),
    Create(command::create::CreateArgs),
    Delete {
        mailbox: AString,
    },
    Rename {
        from: AString,
        to: AString,
    },
    /// SUBSCRIBE / UNSUBSCRIBE.
    Subscribe {
        mailbox: AString,
        subscribe: bool,
    },
    /// LIST / LSUB.
    List(command::list::ListArgs),
    Namespace,
    Status(command::status::StatusArgs),
    Append(command::append::AppendArgs),
    Check,
    Close,
    Unselect,
    /// EXPUNGE, or UID EXPUNGE with its set.
    Expunge {
        uids: Option<command::SequenceSet>,
    },
    Search(command::search::SearchArgs),
    /// SORT / UID SORT (RFC 5256).
    Sort(command::sort::SortArgs),
    /// THREAD / UID THREAD (RFC 5256).
    Thread(command::thread::ThreadArgs),
    Fetch(command::fetch::FetchArgs),
    Store(command::store::StoreArgs),
    /// COPY / MOVE (and their UID forms).
    Copy(command::copy::CopyArgs),
    Idle,
    GetQuota {
        root: AString,
    },
    GetQuotaRoot {
        mailbox: AString,
    },
    SetQuota(command::quota::SetQuotaArgs),
    /// COMPRESS (RFC 4978).
    Compress {
        mechanism: Atom,
    },
    /// Any other command; arguments not parsed yet. `name` is upper-cased.
    Other {
        name: Atom,
    },
}

/// SASL-IR initial response (RFC 4959).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitialResponse {
    /// `=`: an empty initial response.
    Empty,
    /// Decoded base64.
    Data(Secret),
}

/// A frame that is not a valid command. `tag` is set when the tag was valid, so
/// the answer can be a tagged `BAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub tag: Option<Tag>,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    EmptyLine,
    InvalidTag,
    InvalidCommandName,
    MissingArgument,
    InvalidArgument,
    UnexpectedArguments,
    ListTooDeep,
    InvalidBase64,
    IdTooLarge,
}

impl ParseErrorKind {
    /// Text for the `BAD` answer.
    pub fn message(self) -> &'static str {
        match self {
            ParseErrorKind::EmptyLine => "Empty command line",
            ParseErrorKind::InvalidTag => "Invalid tag",
            ParseErrorKind::InvalidCommandName => "Invalid command name",
            ParseErrorKind::MissingArgument => "Missing argument",
            ParseErrorKind::InvalidArgument => "Invalid argument",
            ParseErrorKind::UnexpectedArguments => "Unexpected extra arguments",
            ParseErrorKind::ListTooDeep => "Parenthesised list nested too deeply",
            ParseErrorKind::InvalidBase64 => "Invalid base64",
            ParseErrorKind::IdTooLarge => "ID parameters too large",
        }
    }
}

/// Parses a complete frame (ending in CRLF or LF).
pub fn parse_command(frame: &[u8]) -> Result<TaggedCommand, ParseError> {
    let mut input = Cursor::new(frame);
    if input.at_eol() {
        return Err(ParseError {
            tag: None,
            kind: ParseErrorKind::EmptyLine,
        });
    }
    let tag = input.tag().map_err(|kind| ParseError { tag: None, kind })?;
    if !input.at_eol() && input.peek() != Some(b' ') {
        // `a+ NOOP`: the tag ran into a byte no tag may hold.
        return Err(ParseError {
            tag: None,
            kind: ParseErrorKind::InvalidTag,
        });
    }
    let parsed = input.sp().and_then(|()| command(&mut input));
    match parsed {
        Ok(command) => Ok(TaggedCommand { tag, command }),
        Err(kind) => Err(ParseError {
            tag: Some(tag),
            kind,
        }),
    }
}

fn command(input: &mut Cursor<'_>) -> Result<Command, ParseErrorKind> {
    let name = input
        .atom()
        .map_err(|_| ParseErrorKind::InvalidCommandName)?
        .to_ascii_uppercase();
    let command = match name.as_str() {
        "CAPABILITY" => Command::Capability,
        "NOOP" => Command::Noop,
        "LOGOUT" => Command::Logout,
        "STARTTLS" => Command::StartTls,
        "LOGIN" => login(input)?,
        "AUTHENTICATE" => authenticate(input)?,
        "ID" => id(input)?,
        "ENABLE" => enable(input)?,
        "SELECT" => Command::Select(command::select::parse(input, false)?),
        "EXAMINE" => Command::Select(command::select::parse(input, true)?),
        "CREATE" => Command::Create(command::create::parse(input)?),
        "DELETE" => {
            input.sp()?;
            Command::Delete {
                mailbox: command::mailbox(input)?,
            }
        }
        "RENAME" => command::rename::parse(input)?,
        "SUBSCRIBE" | "UNSUBSCRIBE" => {
            input.sp()?;
            Command::Subscribe {
                mailbox: command::mailbox(input)?,
                subscribe: name.as_str() == "SUBSCRIBE",
            }
        }
        "LIST" => Command::List(command::list::parse(input, false)?),
        "LSUB" => Command::List(command::list::parse(input, true)?),
        "NAMESPACE" => Command::Namespace,
        "STATUS" => Command::Status(command::status::parse(input)?),
        "APPEND" => Command::Append(command::append::parse(input)?),
        "CHECK" => Command::Check,
        "CLOSE" => Command::Close,
        "UNSELECT" => Command::Unselect,
        "EXPUNGE" => Command::Expunge { uids: None },
        "SEARCH" => Command::Search(command::search::parse(input, false)?),
        "SORT" => Command::Sort(command::sort::parse(input, false)?),
        "THREAD" => Command::Thread(command::thread::parse(input, false)?),
        "FETCH" => Command::Fetch(command::fetch::parse(input, false)?),
        "STORE" => Command::Store(command::store::parse(input, false)?),
        "COPY" => Command::Copy(command::copy::parse(input, false, false)?),
        "MOVE" => Command::Copy(command::copy::parse(input, false, true)?),
        "UID" => uid(input)?,
        "IDLE" => Command::Idle,
        "COMPRESS" => {
            input.sp()?;
            Command::Compress {
                mechanism: input.atom()?,
            }
        }
        "GETQUOTA" => {
            input.sp()?;
            Command::GetQuota {
                root: input.astring()?,
            }
        }
        "GETQUOTAROOT" => {
            input.sp()?;
            Command::GetQuotaRoot {
                mailbox: command::mailbox(input)?,
            }
        }
        "SETQUOTA" => Command::SetQuota(command::quota::parse_set(input)?),
        _ => return Ok(Command::Other { name }),
    };
    input.eol()?;
    Ok(command)
}

/// `UID SP (copy / move / fetch / search / sort / thread / store / uid-expunge)`
fn uid(input: &mut Cursor<'_>) -> Result<Command, ParseErrorKind> {
    input.sp()?;
    let name = input.atom()?.to_ascii_uppercase();
    Ok(match name.as_str() {
        "FETCH" => Command::Fetch(command::fetch::parse(input, true)?),
        "STORE" => Command::Store(command::store::parse(input, true)?),
        "COPY" => Command::Copy(command::copy::parse(input, true, false)?),
        "MOVE" => Command::Copy(command::copy::parse(input, true, true)?),
        "SEARCH" => Command::Search(command::search::parse(input, true)?),
        "SORT" => Command::Sort(command::sort::parse(input, true)?),
        "THREAD" => Command::Thread(command::thread::parse(input, true)?),
        "EXPUNGE" => {
            input.sp()?;
            Command::Expunge {
                uids: Some(command::sequence_set(input)?),
            }
        }
        _ => return Err(ParseErrorKind::InvalidCommandName),
    })
}

/// `LOGIN SP userid SP password`
fn login(input: &mut Cursor<'_>) -> Result<Command, ParseErrorKind> {
    input.sp()?;
    let username = input.astring()?;
    input.sp()?;
    let password = Secret::new(input.astring()?.into_bytes());
    Ok(Command::Login { username, password })
}

/// `AUTHENTICATE SP auth-type [SP (base64 / "=")]`
fn authenticate(input: &mut Cursor<'_>) -> Result<Command, ParseErrorKind> {
    input.sp()?;
    let mechanism = input.atom()?.to_ascii_uppercase();
    let initial_response = if input.at_eol() {
        None
    } else {
        input.sp()?;
        let text =
            input.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        Some(match text {
            b"=" => InitialResponse::Empty,
            b"" => return Err(ParseErrorKind::MissingArgument),
            _ => InitialResponse::Data(Secret::new(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| ParseErrorKind::InvalidBase64)?,
            )),
        })
    };
    Ok(Command::Authenticate {
        mechanism,
        initial_response,
    })
}

/// `ID SP ("(" [string SP nstring *(SP string SP nstring)] ")" / NIL)` (RFC 2971;
/// the empty list is accepted because clients send it).
fn id(input: &mut Cursor<'_>) -> Result<Command, ParseErrorKind> {
    input.sp()?;
    if input.nil() {
        return Ok(Command::Id { parameters: None });
    }
    input.expect(b'(')?;
    let mut parameters = Vec::new();
    if input.peek() != Some(b')') {
        loop {
            let field = input.string()?;
            input.sp()?;
            let value = input.nstring()?;
            let value_len = value.as_ref().map_or(0, |v| v.as_bytes().len());
            if field.as_bytes().len() > IMAP_ID_FIELD_BYTES_MAX
                || value_len > IMAP_ID_VALUE_BYTES_MAX
                || parameters.len() == IMAP_ID_PAIRS_MAX
            {
                return Err(ParseErrorKind::IdTooLarge);
            }
            parameters.push((field, value));
            if input.peek() == Some(b')') {
                break;
            }
            input.sp()?;
        }
    }
    input.expect(b')')?;
    Ok(Command::Id {
        parameters: Some(parameters),
    })
}

/// `ENABLE 1*(SP capability)`
fn enable(input: &mut Cursor<'_>) -> Result<Command, ParseErrorKind> {
    let mut capabilities = Vec::new();
    while !input.at_eol() {
        input.sp()?;
        capabilities.push(input.atom()?.to_ascii_uppercase());
    }
    if capabilities.is_empty() {
        return Err(ParseErrorKind::MissingArgument);
    }
    Ok(Command::Enable { capabilities })
}

/// A position in a frame. The grammar primitives every command parser uses.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(input: &'a [u8]) -> Cursor<'a> {
        Cursor { input, pos: 0 }
    }

    pub fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.input.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let rest = self.rest();
        let len = rest.iter().position(|&b| !keep(b)).unwrap_or(rest.len());
        self.pos += len;
        rest.get(..len).unwrap_or_default()
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], ParseErrorKind> {
        let taken = self
            .rest()
            .get(..len)
            .ok_or(ParseErrorKind::InvalidArgument)?;
        self.pos += len;
        Ok(taken)
    }

    pub fn expect(&mut self, byte: u8) -> Result<(), ParseErrorKind> {
        match self.peek() {
            Some(b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            _ if self.at_eol() => Err(ParseErrorKind::MissingArgument),
            _ => Err(ParseErrorKind::InvalidArgument),
        }
    }

    /// One space.
    pub fn sp(&mut self) -> Result<(), ParseErrorKind> {
        self.expect(b' ')
    }

    /// At `CRLF` or `LF` ending the frame.
    pub fn at_eol(&self) -> bool {
        matches!(self.rest(), b"\r\n" | b"\n" | b"")
    }

    /// The end of the command.
    pub fn eol(&mut self) -> Result<(), ParseErrorKind> {
        if self.at_eol() {
            self.pos = self.input.len();
            Ok(())
        } else {
            Err(ParseErrorKind::UnexpectedArguments)
        }
    }

    pub fn tag(&mut self) -> Result<Tag, ParseErrorKind> {
        let bytes = self.take_while(is_tag_char);
        Tag::new(bytes).map_err(|_| ParseErrorKind::InvalidTag)
    }

    pub fn atom(&mut self) -> Result<Atom, ParseErrorKind> {
        if self.at_eol() {
            return Err(ParseErrorKind::MissingArgument);
        }
        Atom::new(self.take_while(is_atom_char)).map_err(|_| ParseErrorKind::InvalidArgument)
    }

    /// `NIL` (case-insensitive) not followed by more atom characters; consumed if there.
    pub fn nil(&mut self) -> bool {
        let rest = self.rest();
        let is_nil = rest
            .get(..3)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"NIL"))
            && !rest.get(3).is_some_and(|&b| is_astring_char(b));
        if is_nil {
            self.pos += 3;
        }
        is_nil
    }

    /// `quoted`: `"` *(QUOTED-CHAR / "\" quoted-specials) `"`. 8-bit bytes are
    /// accepted (UTF8=ACCEPT); NUL, CR and LF are not.
    pub fn quoted(&mut self) -> Result<AString, ParseErrorKind> {
        self.expect(b'"')?;
        let mut value = Vec::new();
        loop {
            let byte = self.peek().ok_or(ParseErrorKind::InvalidArgument)?;
            self.pos += 1;
            match byte {
                b'"' => break,
                b'\\' => match self.peek() {
                    Some(escaped @ (b'\\' | b'"')) => {
                        self.pos += 1;
                        value.push(escaped);
                    }
                    _ => return Err(ParseErrorKind::InvalidArgument),
                },
                0 | b'\r' | b'\n' => return Err(ParseErrorKind::InvalidArgument),
                _ => value.push(byte),
            }
        }
        AString::new(value).map_err(|_| ParseErrorKind::InvalidArgument)
    }

    /// `literal`: `{n}` or `{n+}`, CRLF, n bytes (no NUL).
    pub fn literal(&mut self) -> Result<AString, ParseErrorKind> {
        let data = self.literal_data(false)?;
        AString::new(data.to_vec()).map_err(|_| ParseErrorKind::InvalidArgument)
    }

    /// `literal8`: `~{n}` or `~{n+}`, CRLF, n bytes (any, NUL included).
    pub fn literal8(&mut self) -> Result<Vec<u8>, ParseErrorKind> {
        Ok(self.literal_data(true)?.to_vec())
    }

    fn literal_data(&mut self, binary: bool) -> Result<&'a [u8], ParseErrorKind> {
        if binary {
            self.expect(b'~')?;
        }
        self.expect(b'{')?;
        let len = parse_number(self.take_while(|b| b.is_ascii_digit()))
            .ok_or(ParseErrorKind::InvalidArgument)?;
        if self.peek() == Some(b'+') {
            self.pos += 1;
        }
        self.expect(b'}')?;
        if self.peek() == Some(b'\r') {
            self.pos += 1;
        }
        self.expect(b'\n')?;
        let len = usize::try_from(len).map_err(|_| ParseErrorKind::InvalidArgument)?;
        self.take(len)
    }

    /// `string`: quoted or literal.
    pub fn string(&mut self) -> Result<AString, ParseErrorKind> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ if self.at_eol() => Err(ParseErrorKind::MissingArgument),
            _ => Err(ParseErrorKind::InvalidArgument),
        }
    }

    /// `astring`: `1*ASTRING-CHAR` or a string.
    pub fn astring(&mut self) -> Result<AString, ParseErrorKind> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ if self.at_eol() => Err(ParseErrorKind::MissingArgument),
            _ => {
                let atom = self.take_while(is_astring_char);
                if atom.is_empty() {
                    return Err(ParseErrorKind::InvalidArgument);
                }
                AString::new(atom.to_vec()).map_err(|_| ParseErrorKind::InvalidArgument)
            }
        }
    }

    /// `nstring`: `NIL` or a string.
    pub fn nstring(&mut self) -> Result<NString, ParseErrorKind> {
        if self.nil() {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// A generic value: NIL, atom, string or a parenthesised list of values
    /// separated by single spaces, nested at most `IMAP_LIST_DEPTH_MAX` deep.
    pub fn value(&mut self) -> Result<Value, ParseErrorKind> {
        self.value_at_depth(0)
    }

    fn value_at_depth(&mut self, depth: usize) -> Result<Value, ParseErrorKind> {
        match self.peek() {
            Some(b'(') => {
                if depth == IMAP_LIST_DEPTH_MAX {
                    return Err(ParseErrorKind::ListTooDeep);
                }
                self.pos += 1;
                let mut items = Vec::new();
                if self.peek() != Some(b')') {
                    loop {
                        items.push(self.value_at_depth(depth + 1)?);
                        if self.peek() == Some(b')') {
                            break;
                        }
                        self.sp()?;
                    }
                }
                self.expect(b')')?;
                Ok(Value::List(items))
            }
            Some(b'"' | b'{') => self.string().map(Value::String),
            _ if self.nil() => Ok(Value::Nil),
            _ => self.atom().map(Value::Atom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn astring(bytes: &[u8]) -> AString {
        AString::new(bytes.to_vec()).expect("valid")
    }

    fn parse(frame: &[u8]) -> Result<Command, ParseErrorKind> {
        parse_command(frame).map(|c| c.command).map_err(|e| e.kind)
    }

    #[test]
    fn simple_commands_are_case_insensitive() {
        let parsed = parse_command(b"a1 capability\r\n").expect("parses");
        assert_eq!(parsed.tag.as_str(), "a1");
        assert_eq!(parsed.command, Command::Capability);
        assert_eq!(parse(b"x NoOp\n"), Ok(Command::Noop));
        assert_eq!(parse(b"x LOGOUT\r\n"), Ok(Command::Logout));
        assert_eq!(parse(b"x starttls\r\n"), Ok(Command::StartTls));
        assert_eq!(
            parse(b"x NOOP extra\r\n"),
            Err(ParseErrorKind::UnexpectedArguments)
        );
    }

    #[test]
    fn login_with_atom_quoted_and_literals() {
        let login = |u: &[u8], p: &[u8]| Command::Login {
            username: astring(u),
            password: Secret::new(p.to_vec()),
        };
        assert_eq!(parse(b"a LOGIN bob pw\r\n"), Ok(login(b"bob", b"pw")));
        assert_eq!(
            parse(b"a login \"b\\\"o b\" \"p\\\\w\"\r\n"),
            Ok(login(b"b\"o b", b"p\\w"))
        );
        assert_eq!(
            parse(b"a LOGIN {3}\r\nb\nb {2+}\r\np\r\r\n"),
            Ok(login(b"b\nb", b"p\r"))
        );
        assert_eq!(parse(b"a LOGIN \"\" x]\r\n"), Ok(login(b"", b"x]")));
        assert_eq!(
            parse(b"a LOGIN bob\r\n"),
            Err(ParseErrorKind::MissingArgument)
        );
        assert_eq!(
            parse(b"a LOGIN bob  pw\r\n"),
            Err(ParseErrorKind::InvalidArgument)
        );
        assert_eq!(
            parse(b"a LOGIN \"b\\o\" pw\r\n"),
            Err(ParseErrorKind::InvalidArgument)
        );
        assert_eq!(
            parse(b"a LOGIN \"bob pw\r\n"),
            Err(ParseErrorKind::InvalidArgument)
        );
        assert_eq!(
            parse(b"a LOGIN {5}\r\nbob\r\n"),
            Err(ParseErrorKind::MissingArgument)
        );
        assert_eq!(
            parse(b"a LOGIN {9}\r\nbob\r\n"),
            Err(ParseErrorKind::InvalidArgument)
        );
        assert_eq!(
            parse(b"a LOGIN {3}\r\nb\0b pw\r\n"),
            Err(ParseErrorKind::InvalidArgument)
        );
        assert_eq!(
            parse(b"a LOGIN ~{3}\r\nbob pw\r\n"),
            Err(ParseErrorKind::InvalidArgument)
        );
    }

    #[test]
    fn bad_tags_and_names() {
        let err = parse_command(b"a+ NOOP\r\n").expect_err("bad tag");
        assert_eq!((err.tag, err.kind), (None, ParseErrorKind::InvalidTag));
        assert_eq!(parse(b"\r\n"), Err(ParseErrorKind::EmptyLine));
        assert_eq!(parse(b" NOOP\r\n"), Err(ParseErrorKind::InvalidTag));
        assert_eq!(parse(b"a\r\n"), Err(ParseErrorKind::MissingArgument));
        assert_eq!(parse(b"a (x)\r\n"), Err(ParseErrorKind::InvalidCommandName));
        let other = parse_command(b"b7 frobnicate 1:* (FLAGS)\r\n").expect("parses");
        assert_eq!(
            other.command,
            Command::Other {
                name: Atom::new(b"FROBNICATE").expect("atom")
            }
        );
        assert!(matches!(
            parse(b"b7 uid fetch 1:* (FLAGS)\r\n"),
            Ok(Command::Fetch(_))
        ));
        assert_eq!(
            parse(b"b7 uid frob 1\r\n"),
            Err(ParseErrorKind::InvalidCommandName)
        );
    }

    #[test]
    fn authenticate_with_and_without_initial_response() {
        let auth = |ir| Command::Authenticate {
            mechanism: Atom::new(b"PLAIN").expect("atom"),
            initial_response: ir,
        };
        assert_eq!(parse(b"a AUTHENTICATE plain\r\n"), Ok(auth(None)));
        assert_eq!(
            parse(b"a AUTHENTICATE PLAIN =\r\n"),
            Ok(auth(Some(InitialResponse::Empty)))
        );
        assert_eq!(
            parse(b"a AUTHENTICATE PLAIN AGJvYgBwdw==\r\n"),
            Ok(auth(Some(InitialResponse::Data(Secret::new(
                b"\0bob\0pw".to_vec()
            )))))
        );
        assert_eq!(
            parse(b"a AUTHENTICATE PLAIN AGJvYgBwdw\r\n"),
            Err(ParseErrorKind::InvalidBase64)
        );
        assert_eq!(
            parse(b"a AUTHENTICATE PLAIN !\r\n"),
            Err(ParseErrorKind::MissingArgument)
        );
    }

    #[test]
    fn id_nil_list_and_limits() {
        assert_eq!(parse(b"a ID nil\r\n"), Ok(Command::Id { parameters: None }));
        assert_eq!(
            parse(b"a ID ()\r\n"),
            Ok(Command::Id {
                parameters: Some(vec![])
            })
        );
        assert_eq!(
            parse(b"a ID (\"name\" \"x\" \"os\" NIL)\r\n"),
            Ok(Command::Id {
                parameters: Some(vec![
                    (astring(b"name"), Some(astring(b"x"))),
                    (astring(b"os"), None)
                ])
            })
        );
        assert_eq!(
            parse(b"a ID (\"name\")\r\n"),
            Err(ParseErrorKind::InvalidArgument)
        );
        assert_eq!(
            parse(b"a ID (name \"x\")\r\n"),
            Err(ParseErrorKind::InvalidArgument)
        );
        let mut many = b"a ID (".to_vec();
        for _ in 0..=IMAP_ID_PAIRS_MAX {
            many.extend_from_slice(b"\"k\" \"v\" ");
        }
        many.pop();
        many.extend_from_slice(b")\r\n");
        assert_eq!(parse(&many), Err(ParseErrorKind::IdTooLarge));
    }

    #[test]
    fn enable_takes_atoms() {
        assert_eq!(
            parse(b"a enable condstore utf8=accept\r\n"),
            Ok(Command::Enable {
                capabilities: vec![
                    Atom::new(b"CONDSTORE").expect("atom"),
                    Atom::new(b"UTF8=ACCEPT").expect("atom")
                ]
            })
        );
        assert_eq!(parse(b"a ENABLE\r\n"), Err(ParseErrorKind::MissingArgument));
    }

    #[test]
    fn values_and_list_depth() {
        let mut cursor = Cursor::new(b"(a \"b\" NIL (NILx {1}\r\nc) ())");
        let value = cursor.value().expect("parses");
        let atom = |s: &[u8]| Value::Atom(Atom::new(s).expect("atom"));
        assert_eq!(
            value,
            Value::List(vec![
                atom(b"a"),
                Value::String(astring(b"b")),
                Value::Nil,
                Value::List(vec![atom(b"NILx"), Value::String(astring(b"c"))]),
                Value::List(vec![]),
            ])
        );
        let deep = |n| {
            let mut v = vec![b'('; n];
            v.extend(std::iter::repeat_n(b')', n));
            v
        };
        assert!(Cursor::new(&deep(IMAP_LIST_DEPTH_MAX)).value().is_ok());
        assert_eq!(
            Cursor::new(&deep(IMAP_LIST_DEPTH_MAX + 1)).value(),
            Err(ParseErrorKind::ListTooDeep)
        );
        assert_eq!(
            Cursor::new(b"(a  b)").value(),
            Err(ParseErrorKind::InvalidArgument)
        );
    }
}
