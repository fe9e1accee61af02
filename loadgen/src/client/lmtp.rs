//! The LMTP client: LHLO once per connection, then transactions MAIL FROM, RCPT TO (1–3 random
//! users), DATA with a generated message, and one reply per accepted recipient. With
//! `--shard-aware` each recipient goes to its owning shard's port.
//!
//! When the LHLO reply advertises PIPELINING (RFC 2920) the client pipelines as Postfix's
//! LMTP client does: MAIL FROM, every RCPT TO and DATA go in one write, the replies are read
//! in order, then (after `354`) the data, then one reply per accepted recipient: two round
//! trips per transaction. Without PIPELINING it sends one command at a time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use super::conn::{ClientError, Conn};
use super::{Session, WorkerCtx};
use crate::limits::RCPTS_PER_TRANSACTION_MAX;
use crate::message::SENDERS;
use crate::proto::lmtp::{LmtpReader, Reply, dot_stuff};
use crate::rng::Rng;
use crate::shard::{shard_of, shard_port};

pub struct LmtpConn {
    conn: Conn,
    reader: LmtpReader,
    /// The server's LHLO reply advertised PIPELINING.
    pipelining: bool,
}

impl LmtpConn {
    pub async fn open(ctx: &WorkerCtx, port: u16) -> Result<LmtpConn, ClientError> {
        let conn = Conn::connect(ctx.cfg.addr(port), ctx.tls.as_ref()).await?;
        let mut c = LmtpConn {
            conn,
            reader: LmtpReader::new(),
            pipelining: false,
        };
        let greeting = c.reply().await?;
        if greeting.code != 220 {
            return Err(ClientError::Server(format!(
                "greeting {}",
                greeting.summary()
            )));
        }
        let lhlo = c.command("LHLO loadgen.example").await?;
        c.pipelining = advertises_pipelining(&lhlo);
        Ok(c)
    }

    async fn reply(&mut self) -> Result<Reply, ClientError> {
        loop {
            if let Some(r) = self.reader.next_reply()? {
                return Ok(r);
            }
            let chunk = self.conn.read_chunk().await?;
            self.reader.feed(chunk);
        }
    }

    async fn command(&mut self, line: &str) -> Result<Reply, ClientError> {
        self.conn
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        let r = self.reply().await?;
        if !r.is_positive() {
            let verb = line.split([' ', ':']).next().unwrap_or(line);
            return Err(ClientError::Server(format!("{verb}: {}", r.summary())));
        }
        Ok(r)
    }

    /// One transaction; returns how many recipients the message was delivered to.
    /// Refused recipients are counted as errors through `ctx`.
    pub async fn deliver(
        &mut self,
        ctx: &WorkerCtx,
        from: &str,
        recipients: &[String],
        message: &[u8],
    ) -> Result<u64, ClientError> {
        if self.pipelining {
            self.deliver_pipelined(ctx, from, recipients, message).await
        } else {
            self.deliver_stepwise(ctx, from, recipients, message).await
        }
    }

    /// MAIL, RCPTs and DATA in one write, then their replies in order (RFC 2920 §3.1:
    /// DATA is the last command of the group, since the data may only follow a `354`).
    async fn deliver_pipelined(
        &mut self,
        ctx: &WorkerCtx,
        from: &str,
        recipients: &[String],
        message: &[u8],
    ) -> Result<u64, ClientError> {
        let mut group = String::with_capacity(32 * (recipients.len() + 2));
        let _ = write!(group, "MAIL FROM:<{from}>\r\n");
        for rcpt in recipients {
            let _ = write!(group, "RCPT TO:<{rcpt}>\r\n");
        }
        group.push_str("DATA\r\n");
        self.conn.write_all(group.as_bytes()).await?;
        let mail = self.reply().await?;
        let mut accepted = 0;
        for _ in recipients {
            let r = self.reply().await?;
            if r.is_positive() {
                accepted += 1;
            } else if mail.is_positive() {
                // (After a refused MAIL every RCPT is refused for that alone.)
                ctx.error(&format!("lmtp deliver: RCPT: {}", r.summary()));
            }
        }
        let go = self.reply().await?;
        if !mail.is_positive() {
            if go.code == 354 {
                return Err(ClientError::Protocol("354 after a refused MAIL".into()));
            }
            return Err(ClientError::Server(format!("MAIL: {}", mail.summary())));
        }
        if go.code != 354 {
            // No recipient accepted (RFC 2033: DATA gets 503), or DATA refused: the
            // transaction is still open on the server.
            self.command("RSET").await?;
            return Err(ClientError::Server(if accepted == 0 {
                "no recipient accepted".into()
            } else {
                format!("DATA: {}", go.summary())
            }));
        }
        if accepted == 0 {
            // An LMTP server would owe no reply after the data: the dialogue is lost.
            return Err(ClientError::Protocol(
                "354 after every recipient was refused".into(),
            ));
        }
        self.send_data(ctx, message, accepted).await
    }

    /// One command at a time, each waiting for its reply.
    async fn deliver_stepwise(
        &mut self,
        ctx: &WorkerCtx,
        from: &str,
        recipients: &[String],
        message: &[u8],
    ) -> Result<u64, ClientError> {
        self.command(&format!("MAIL FROM:<{from}>")).await?;
        let mut accepted = 0;
        for rcpt in recipients {
            match self.command(&format!("RCPT TO:<{rcpt}>")).await {
                Ok(_) => accepted += 1,
                Err(ClientError::Server(e)) => ctx.error(&format!("lmtp deliver: {e}")),
                Err(e) => return Err(e),
            }
        }
        if accepted == 0 {
            self.command("RSET").await?;
            return Err(ClientError::Server("no recipient accepted".into()));
        }
        let go = self.command("DATA").await?;
        if go.code != 354 {
            return Err(ClientError::Protocol(format!("DATA: {}", go.summary())));
        }
        self.send_data(ctx, message, accepted).await
    }

    /// The dot-stuffed data, then one reply per accepted recipient.
    async fn send_data(
        &mut self,
        ctx: &WorkerCtx,
        message: &[u8],
        accepted: u64,
    ) -> Result<u64, ClientError> {
        self.conn.write_all(&dot_stuff(message)).await?;
        let mut delivered = 0;
        for _ in 0..accepted {
            let r = self.reply().await?;
            if r.is_positive() {
                delivered += 1;
            } else {
                ctx.error(&format!("lmtp deliver: {}", r.summary()));
            }
        }
        Ok(delivered)
    }

    pub async fn quit(&mut self) -> Result<(), ClientError> {
        self.command("QUIT").await.map(|_| ())
    }
}

/// True when an LHLO reply lists PIPELINING (a keyword, case-insensitive, RFC 5321 §4.1.1.1:
/// the first line is the server's name, each further line one extension).
fn advertises_pipelining(lhlo: &Reply) -> bool {
    lhlo.lines.iter().skip(1).any(|l| {
        l.split_ascii_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
    })
}

/// Connections of one client, one per port (one port unless shard-aware).
pub struct LmtpSession {
    conns: BTreeMap<u16, LmtpConn>,
}

impl LmtpSession {
    pub fn new() -> LmtpSession {
        LmtpSession {
            conns: BTreeMap::new(),
        }
    }

    /// The port a recipient is delivered to.
    pub fn port_for(ctx: &WorkerCtx, rcpt: &str) -> Result<u16, ClientError> {
        match ctx.cfg.shards {
            None => Ok(ctx.cfg.port),
            Some(n) => shard_port(ctx.cfg.port, shard_of(rcpt, n))
                .ok_or_else(|| ClientError::Connect("shard port out of range".into())),
        }
    }

    /// Delivers `message` to `recipients`, one transaction per port; returns accepted count.
    pub async fn deliver_all(
        &mut self,
        ctx: &WorkerCtx,
        from: &str,
        recipients: &[String],
        message: &[u8],
    ) -> Result<u64, ClientError> {
        let mut by_port: BTreeMap<u16, Vec<String>> = BTreeMap::new();
        for r in recipients {
            by_port
                .entry(Self::port_for(ctx, r)?)
                .or_default()
                .push(r.clone());
        }
        let mut delivered = 0;
        for (port, rcpts) in by_port {
            let conn = match self.conns.entry(port) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(LmtpConn::open(ctx, port).await?)
                }
            };
            match conn.deliver(ctx, from, &rcpts, message).await {
                Ok(n) => delivered += n,
                Err(e) => {
                    if e.is_fatal() {
                        self.conns.remove(&port);
                    }
                    return Err(e);
                }
            }
        }
        Ok(delivered)
    }

    pub async fn quit_all(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.conns) {
            let _ = c.quit().await;
        }
    }
}

impl Default for LmtpSession {
    fn default() -> Self {
        LmtpSession::new()
    }
}

impl Session for LmtpSession {
    const PROTO: &'static str = "lmtp";

    async fn open(ctx: &Rc<WorkerCtx>, _rng: &mut Rng) -> Result<Self, ClientError> {
        let mut s = LmtpSession::new();
        // Shard-aware sessions connect lazily, per owning port.
        if ctx.cfg.shards.is_none() {
            let c = LmtpConn::open(ctx, ctx.cfg.port).await?;
            s.conns.insert(ctx.cfg.port, c);
        }
        Ok(s)
    }

    fn pick(&self, _ctx: &WorkerCtx, _rng: &mut Rng) -> &'static str {
        "deliver"
    }

    async fn run(
        &mut self,
        ctx: &Rc<WorkerCtx>,
        _command: &'static str,
        rng: &mut Rng,
    ) -> Result<&'static str, ClientError> {
        // Mostly one recipient, sometimes two or three (mailing lists, Cc).
        let n = match rng.below(100) {
            0..80 => 1,
            80..95 => 2,
            _ => RCPTS_PER_TRANSACTION_MAX,
        };
        let recipients: Vec<String> = (0..n).map(|_| ctx.random_user(rng)).collect();
        let from = SENDERS[rng.below(SENDERS.len() as u64) as usize];
        let message = ctx.random_message(rng);
        let delivered = self.deliver_all(ctx, from, &recipients, &message).await?;
        ctx.count("recipients_delivered", delivered);
        ctx.count("delivered_bytes", delivered * message.len() as u64);
        Ok("deliver")
    }

    async fn close(mut self, ctx: &Rc<WorkerCtx>) {
        let limit = ctx
            .cfg
            .request_timeout
            .min(std::time::Duration::from_secs(1));
        let _ = super::conn::timed(limit, "quit", async {
            self.quit_all().await;
            Ok(())
        })
        .await;
    }
}
