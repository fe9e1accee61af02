//! The POP3 client: USER/PASS, STAT, LIST, then RETR of random messages (the unstuffed body
//! must be exactly the size LIST gave), an occasional DELE, and QUIT + login again.

use std::rc::Rc;

use super::conn::{ClientError, Conn};
use super::{Session, WorkerCtx};
use crate::proto::pop3::{Pop3Reader, Pop3Reply, parse_two_numbers};
use crate::rng::Rng;

pub struct Pop3Session {
    conn: Conn,
    reader: Pop3Reader,
    /// LIST sizes by message number - 1; `None` once deleted in this session.
    sizes: Vec<Option<u64>>,
}

impl Pop3Session {
    async fn reply(&mut self, multiline: bool) -> Result<Pop3Reply, ClientError> {
        loop {
            if let Some(r) = self.reader.next_reply(multiline)? {
                return Ok(r);
            }
            let chunk = self.conn.read_chunk().await?;
            self.reader.feed(chunk);
        }
    }

    async fn command(&mut self, line: &str, multiline: bool) -> Result<Pop3Reply, ClientError> {
        self.conn
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        let r = self.reply(multiline).await?;
        if !r.ok {
            let verb = line.split(' ').next().unwrap_or(line);
            return Err(ClientError::Server(format!("{verb}: -ERR {}", r.text)));
        }
        Ok(r)
    }

    async fn list(&mut self) -> Result<(), ClientError> {
        let stat = self.command("STAT", false).await?;
        let (count, _) = parse_two_numbers(&stat.text)
            .ok_or_else(|| ClientError::Protocol(format!("bad STAT reply: {}", stat.text)))?;
        let list = self.command("LIST", true).await?;
        let body = list.body.unwrap_or_default();
        let mut sizes = Vec::new();
        for line in String::from_utf8_lossy(&body).lines() {
            let (n, size) = parse_two_numbers(line)
                .ok_or_else(|| ClientError::Protocol(format!("bad LIST line: {line}")))?;
            if n != sizes.len() as u64 + 1 {
                return Err(ClientError::Check("LIST out of order".to_string()));
            }
            sizes.push(Some(size));
        }
        if sizes.len() as u64 != count {
            return Err(ClientError::Check(
                "STAT and LIST disagree on the message count".to_string(),
            ));
        }
        self.sizes = sizes;
        Ok(())
    }

    fn random_live(&self, rng: &mut Rng) -> Option<(usize, u64)> {
        if self.sizes.is_empty() {
            return None;
        }
        // A few tries are enough: DELE is rare, so most messages are live.
        for _ in 0..8 {
            let i = rng.below(self.sizes.len() as u64) as usize;
            if let Some(size) = self.sizes[i] {
                return Some((i, size));
            }
        }
        None
    }

    async fn quit(&mut self) -> Result<(), ClientError> {
        self.command("QUIT", false).await.map(|_| ())
    }
}

/// Other users tried when a maildrop is locked, before it counts as an error.
const IN_USE_RETRIES: u32 = 8;

impl Session for Pop3Session {
    const PROTO: &'static str = "pop3";

    async fn open(ctx: &Rc<WorkerCtx>, rng: &mut Rng) -> Result<Self, ClientError> {
        // RFC 1939 lets a server lock a maildrop to one session (`-ERR [IN-USE]`,
        // RFC 2449); with random users, clients collide. That answer is correct, so
        // it is counted (`maildrop_in_use`) and another user is tried, not an error.
        let mut tries = 0;
        loop {
            let conn = Conn::connect(ctx.cfg.addr(ctx.cfg.port), ctx.tls.as_ref()).await?;
            let mut s = Pop3Session {
                conn,
                reader: Pop3Reader::new(),
                sizes: Vec::new(),
            };
            let greeting = s.reply(false).await?;
            if !greeting.ok {
                return Err(ClientError::Server(format!("greeting: {}", greeting.text)));
            }
            let user = ctx.random_user(rng);
            s.command(&format!("USER {user}"), false).await?;
            match s
                .command(&format!("PASS {}", ctx.cfg.password), false)
                .await
            {
                Err(ClientError::Server(text))
                    if text.contains("[IN-USE]") && tries < IN_USE_RETRIES =>
                {
                    tries += 1;
                    ctx.count("maildrop_in_use", 1);
                    continue;
                }
                other => other?,
            };
            s.list().await?;
            return Ok(s);
        }
    }

    fn pick(&self, ctx: &WorkerCtx, rng: &mut Rng) -> &'static str {
        ctx.cfg.mix.as_ref().map_or("stat", |m| m.pick(rng))
    }

    async fn run(
        &mut self,
        ctx: &Rc<WorkerCtx>,
        command: &'static str,
        rng: &mut Rng,
    ) -> Result<&'static str, ClientError> {
        match command {
            "retr" | "dele" => {
                let Some((i, size)) = self.random_live(rng) else {
                    self.command("STAT", false).await?;
                    return Ok("stat");
                };
                if command == "dele" {
                    self.command(&format!("DELE {}", i + 1), false).await?;
                    self.sizes[i] = None;
                    return Ok("dele");
                }
                let r = match self.command(&format!("RETR {}", i + 1), true).await {
                    // Another session's DELE was committed since our LIST: legal.
                    Err(ClientError::Server(text))
                        if text.to_ascii_lowercase().contains("expunged") =>
                    {
                        self.sizes[i] = None;
                        ctx.count("retr_of_expunged", 1);
                        return Ok("retr");
                    }
                    other => other?,
                };
                let got = r.body.map_or(0, |b| b.len() as u64);
                if got != size {
                    return Err(ClientError::Check(
                        "RETR byte count differs from LIST size".to_string(),
                    ));
                }
                ctx.count("retrieved_bytes", got);
                Ok("retr")
            }
            "relogin" => {
                self.quit().await?;
                *self = Self::open(ctx, rng).await?;
                Ok("relogin")
            }
            _ => {
                self.command("STAT", false).await?;
                Ok("stat")
            }
        }
    }

    async fn close(mut self, ctx: &Rc<WorkerCtx>) {
        let limit = ctx
            .cfg
            .request_timeout
            .min(std::time::Duration::from_secs(1));
        let _ = super::conn::timed(limit, "quit", self.quit()).await;
    }
}
