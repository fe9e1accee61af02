//! The IMAP client: LOGIN, SELECT INBOX, then the weighted mix, checking as it goes that tags
//! match, that EXISTS/EXPUNGE stay consistent, and that a whole-message FETCH returns exactly
//! RFC822.SIZE bytes.

use std::rc::Rc;

use super::conn::{ClientError, Conn};
use super::{Session, WorkerCtx};
use crate::limits::FETCH_RANGE_MAX;
use crate::message::SENDERS;
use crate::proto::imap::{ImapReader, Response, Status, fetch_rfc822_size};
use crate::rng::Rng;

pub struct ImapSession {
    conn: Conn,
    reader: ImapReader,
    tag_seq: u32,
    /// Messages in the selected mailbox as this session has been told (EXISTS minus EXPUNGEs).
    exists: u32,
    /// Consistency violations seen in untagged responses of the current command.
    violations: Vec<String>,
    /// `* n EXPUNGE` responses seen during the current command.
    expunged: u32,
    /// `* SEARCH` seen during the current command.
    searched: bool,
}

/// What a command got back: untagged FETCH responses (text, literals) kept for checking.
struct Completion {
    fetches: Vec<(u32, Vec<u8>, Vec<Vec<u8>>)>,
}

impl ImapSession {
    pub async fn connect(ctx: &Rc<WorkerCtx>) -> Result<ImapSession, ClientError> {
        let conn = Conn::connect(ctx.cfg.addr(ctx.cfg.port), ctx.tls.as_ref()).await?;
        let mut s = ImapSession {
            conn,
            reader: ImapReader::new(),
            tag_seq: 0,
            exists: 0,
            violations: Vec::new(),
            expunged: 0,
            searched: false,
        };
        match s.read_response().await? {
            r @ Response::Untagged { .. }
                if matches!(r.untagged_status(), Some(Status::Ok | Status::PreAuth)) => {}
            other => {
                return Err(ClientError::Protocol(format!(
                    "bad greeting: {}",
                    describe(&other)
                )));
            }
        }
        Ok(s)
    }

    pub async fn login_select(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        self.command(format!("LOGIN {} {}", quoted(user), quoted(password)).as_bytes())
            .await?;
        self.exists = 0;
        self.command(b"SELECT INBOX").await?;
        Ok(())
    }

    async fn read_response(&mut self) -> Result<Response, ClientError> {
        loop {
            if let Some(r) = self.reader.next_response()? {
                return Ok(r);
            }
            let chunk = self.conn.read_chunk().await?;
            self.reader.feed(chunk);
        }
    }

    fn next_tag(&mut self) -> String {
        self.tag_seq += 1;
        format!("a{}", self.tag_seq)
    }

    /// Sends `TAG command` and reads up to the tagged completion.
    async fn command(&mut self, command: &[u8]) -> Result<Completion, ClientError> {
        let tag = self.next_tag();
        let mut line = Vec::with_capacity(tag.len() + command.len() + 3);
        line.extend_from_slice(tag.as_bytes());
        line.push(b' ');
        line.extend_from_slice(command);
        line.extend_from_slice(b"\r\n");
        self.conn.write_all(&line).await?;
        self.complete(&tag).await
    }

    /// Reads untagged responses until the completion for `tag`, tracking mailbox state.
    async fn complete(&mut self, tag: &str) -> Result<Completion, ClientError> {
        self.violations.clear();
        self.expunged = 0;
        self.searched = false;
        let mut fetches = Vec::new();
        loop {
            match self.read_response().await? {
                Response::Tagged {
                    tag: got,
                    status,
                    text,
                } => {
                    if got != tag {
                        return Err(ClientError::Protocol(format!(
                            "tag mismatch (sent {tag}, got {})",
                            crate::proto::excerpt(got.as_bytes())
                        )));
                    }
                    if status != Status::Ok {
                        return Err(ClientError::Server(format!("{status:?} {text}")));
                    }
                    if let Some(v) = self.violations.first() {
                        return Err(ClientError::Check(v.clone()));
                    }
                    return Ok(Completion { fetches });
                }
                Response::Continuation { text } => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected continuation: {text}"
                    )));
                }
                r @ Response::Untagged { .. } => {
                    if r.untagged_status() == Some(Status::Bye) {
                        return Err(ClientError::Protocol(format!(
                            "server said BYE: {}",
                            describe(&r)
                        )));
                    }
                    if let Some(fetch) = self.track(r) {
                        fetches.push(fetch);
                    }
                }
            }
        }
    }

    /// Applies EXISTS/EXPUNGE to the mailbox model, checking it stays consistent; returns FETCH
    /// responses.
    fn track(&mut self, r: Response) -> Option<(u32, Vec<u8>, Vec<Vec<u8>>)> {
        if let Response::Untagged { text, .. } = &r
            && (text.starts_with(b"SEARCH") || text.starts_with(b"search"))
        {
            self.searched = true;
            let all_numbers = text[6..]
                .split(|b| *b == b' ')
                .filter(|t| !t.is_empty())
                .all(|t| t.iter().all(u8::is_ascii_digit));
            if !all_numbers {
                self.violations
                    .push("SEARCH response with a non-number".to_string());
            }
            return None;
        }
        let (n, keyword) = r.untagged_number()?;
        match keyword.as_str() {
            "EXISTS" => {
                if n < self.exists {
                    self.violations
                        .push("EXISTS went down without EXPUNGE".to_string());
                }
                self.exists = n;
            }
            "EXPUNGE" => {
                if n == 0 || n > self.exists {
                    self.violations
                        .push("EXPUNGE beyond EXISTS (would make it negative)".to_string());
                } else {
                    self.exists -= 1;
                }
                self.expunged += 1;
            }
            "FETCH" => {
                if n == 0 || n > self.exists {
                    self.violations
                        .push("FETCH for a message beyond EXISTS".to_string());
                }
                if let Response::Untagged { text, literals } = r {
                    return Some((n, text, literals));
                }
            }
            _ => {}
        }
        None
    }

    fn random_seq(&self, rng: &mut Rng) -> u32 {
        1 + rng.below(u64::from(self.exists.max(1))) as u32
    }

    async fn append(&mut self, ctx: &WorkerCtx, rng: &mut Rng) -> Result<(), ClientError> {
        let message = ctx.random_message(rng);
        let tag = self.next_tag();
        let line = format!("{tag} APPEND INBOX (\\Seen) {{{}}}\r\n", message.len());
        self.conn.write_all(line.as_bytes()).await?;
        match self.read_response().await? {
            Response::Continuation { .. } => {}
            Response::Tagged { status, text, .. } => {
                return Err(ClientError::Server(format!("{status:?} {text}")));
            }
            r => {
                // An untagged response may come before the continuation; track it and wait on.
                self.track(r);
                match self.read_response().await? {
                    Response::Continuation { .. } => {}
                    other => {
                        return Err(ClientError::Protocol(format!(
                            "APPEND: expected continuation, got {}",
                            describe(&other)
                        )));
                    }
                }
            }
        }
        self.conn.write_all(&message).await?;
        self.conn.write_all(b"\r\n").await?;
        self.complete(&tag).await?;
        ctx.count("appended_bytes", message.len() as u64);
        Ok(())
    }

    async fn fetch_body(&mut self, ctx: &WorkerCtx, rng: &mut Rng) -> Result<(), ClientError> {
        let seq = self.random_seq(rng);
        let done = match self
            .command(format!("FETCH {seq} (RFC822.SIZE BODY.PEEK[])").as_bytes())
            .await
        {
            Err(ClientError::Server(text)) if expunged_race(&text) => {
                ctx.count("fetch_of_expunged", 1);
                return Ok(());
            }
            other => other?,
        };
        let mut mine = done.fetches.iter().filter(|(n, _, _)| *n == seq).peekable();
        if mine.peek().is_none() {
            // Expunged by another session since we last heard: legal, nothing to check.
            ctx.count("fetch_of_expunged", 1);
            return Ok(());
        }
        // The server may send an unsolicited `* n FETCH (FLAGS …)` for the same message
        // (another session changed its flags) before or after the answer: take the line
        // that carries the size.
        let (size, literals) = mine
            .find_map(|(_, text, literals)| fetch_rfc822_size(text).map(|s| (s, literals)))
            .ok_or_else(|| ClientError::Check("FETCH response without RFC822.SIZE".into()))?;
        let body = literals
            .iter()
            .max_by_key(|l| l.len())
            .map_or(0, |l| l.len() as u64);
        if body != size {
            return Err(ClientError::Check(
                "BODY[] literal length differs from RFC822.SIZE".to_string(),
            ));
        }
        ctx.count("fetched_bytes", body);
        Ok(())
    }

    async fn fetch_envelope(&mut self, rng: &mut Rng) -> Result<(), ClientError> {
        let first = self.random_seq(rng);
        let last = (first + FETCH_RANGE_MAX - 1).min(self.exists).max(first);
        let done = match self
            .command(format!("FETCH {first}:{last} (FLAGS ENVELOPE)").as_bytes())
            .await
        {
            Err(ClientError::Server(text)) if expunged_race(&text) => return Ok(()),
            other => other?,
        };
        // Other sessions' flag changes arrive as unsolicited FETCH (FLAGS ...): count only ours.
        let asked = last - first + 1;
        let got = done
            .fetches
            .iter()
            .filter(|(n, text, _)| {
                (first..=last).contains(n)
                    && text
                        .to_ascii_uppercase()
                        .windows(9)
                        .any(|w| w == b"ENVELOPE ")
            })
            .count() as u32;
        if got > asked {
            return Err(ClientError::Check(
                "FETCH range returned more ENVELOPEs than messages".to_string(),
            ));
        }
        Ok(())
    }

    async fn expunge(&mut self, rng: &mut Rng) -> Result<(), ClientError> {
        let seq = self.random_seq(rng);
        self.command(format!("STORE {seq} +FLAGS.SILENT (\\Deleted)").as_bytes())
            .await?;
        self.command(b"EXPUNGE").await?;
        if self.expunged == 0 {
            return Err(ClientError::Check(
                "EXPUNGE after STORE \\Deleted removed nothing".to_string(),
            ));
        }
        Ok(())
    }

    async fn search(&mut self, rng: &mut Rng) -> Result<(), ClientError> {
        let command = if rng.below(2) == 0 {
            "UID SEARCH UNSEEN".to_string()
        } else {
            let sender = SENDERS[rng.below(SENDERS.len() as u64) as usize];
            let name = sender.split('@').next().unwrap_or(sender);
            format!("UID SEARCH FROM {}", quoted(name))
        };
        self.command(command.as_bytes()).await?;
        if !self.searched {
            return Err(ClientError::Check("UID SEARCH without * SEARCH".into()));
        }
        Ok(())
    }

    pub async fn logout(&mut self) -> Result<(), ClientError> {
        let tag = self.next_tag();
        self.conn
            .write_all(format!("{tag} LOGOUT\r\n").as_bytes())
            .await?;
        loop {
            match self.read_response().await? {
                Response::Tagged { tag: got, .. } if got == tag => return Ok(()),
                Response::Tagged { tag: got, .. } => {
                    return Err(ClientError::Protocol(format!(
                        "tag mismatch (sent {tag}, got {})",
                        crate::proto::excerpt(got.as_bytes())
                    )));
                }
                _ => {}
            }
        }
    }

    /// Starts IDLE; returns once the server sent its continuation.
    pub async fn idle_start(&mut self) -> Result<String, ClientError> {
        let tag = self.next_tag();
        self.conn
            .write_all(format!("{tag} IDLE\r\n").as_bytes())
            .await?;
        loop {
            match self.read_response().await? {
                Response::Continuation { .. } => return Ok(tag),
                Response::Tagged { status, text, .. } => {
                    return Err(ClientError::Server(format!("IDLE: {status:?} {text}")));
                }
                r => {
                    self.track(r);
                }
            }
        }
    }

    /// While idling: waits for the next server push (EXISTS, "still here"...), checking it.
    pub async fn idle_wait(&mut self) -> Result<(), ClientError> {
        match self.read_response().await? {
            r @ Response::Untagged { .. } => {
                if r.untagged_status() == Some(Status::Bye) {
                    return Err(ClientError::Protocol(format!(
                        "server said BYE: {}",
                        describe(&r)
                    )));
                }
                self.violations.clear();
                self.track(r);
                match self.violations.first() {
                    Some(v) => Err(ClientError::Check(v.clone())),
                    None => Ok(()),
                }
            }
            other => Err(ClientError::Protocol(format!(
                "unexpected while idling: {}",
                describe(&other)
            ))),
        }
    }

    pub async fn idle_done(&mut self, tag: &str) -> Result<(), ClientError> {
        self.conn.write_all(b"DONE\r\n").await?;
        self.complete(tag).await.map(|_| ())
    }
}

/// NO responses that only say another session expunged what we asked for.
fn expunged_race(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("expunge") || t.contains("no longer exist")
}

fn quoted(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

fn describe(r: &Response) -> String {
    match r {
        Response::Untagged { text, .. } => format!("* {}", crate::proto::excerpt(text)),
        Response::Tagged { tag, status, text } => format!("{tag} {status:?} {text}"),
        Response::Continuation { text } => format!("+ {text}"),
    }
}

impl Session for ImapSession {
    const PROTO: &'static str = "imap";

    async fn open(ctx: &Rc<WorkerCtx>, rng: &mut Rng) -> Result<Self, ClientError> {
        let mut s = ImapSession::connect(ctx).await?;
        let user = ctx.random_user(rng);
        s.login_select(&user, &ctx.cfg.password).await?;
        Ok(s)
    }

    fn pick(&self, ctx: &WorkerCtx, rng: &mut Rng) -> &'static str {
        ctx.cfg.mix.as_ref().map_or("noop", |m| m.pick(rng))
    }

    async fn run(
        &mut self,
        ctx: &Rc<WorkerCtx>,
        command: &'static str,
        rng: &mut Rng,
    ) -> Result<&'static str, ClientError> {
        let needs_message = matches!(
            command,
            "fetch_envelope" | "fetch_body" | "store_seen" | "expunge"
        );
        if needs_message && self.exists == 0 {
            self.append(ctx, rng).await?;
            return Ok("append");
        }
        match command {
            "fetch_envelope" => self.fetch_envelope(rng).await?,
            "fetch_body" => self.fetch_body(ctx, rng).await?,
            "store_seen" => {
                let seq = self.random_seq(rng);
                match self
                    .command(format!("STORE {seq} +FLAGS (\\Seen)").as_bytes())
                    .await
                {
                    Err(ClientError::Server(text)) if expunged_race(&text) => {}
                    other => {
                        other?;
                    }
                }
            }
            "search" => self.search(rng).await?,
            "append" => self.append(ctx, rng).await?,
            "expunge" => self.expunge(rng).await?,
            "relogin" => {
                self.logout().await?;
                *self = Self::open(ctx, rng).await?;
            }
            _ => {
                self.command(b"NOOP").await?;
            }
        }
        Ok(command)
    }

    async fn close(mut self, ctx: &Rc<WorkerCtx>) {
        let limit = ctx
            .cfg
            .request_timeout
            .min(std::time::Duration::from_secs(1));
        let _ = super::conn::timed(limit, "logout", self.logout()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quoted("user1@example.com"), "\"user1@example.com\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn expunge_races_are_recognised() {
        assert!(expunged_race(
            "No [EXPUNGEISSUED] Some messages were expunged"
        ));
        assert!(expunged_race(
            "NO Some of the requested messages no longer exist"
        ));
        assert!(!expunged_race("NO [OVERQUOTA] Quota exceeded"));
    }
}
