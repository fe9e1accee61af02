//! A client connection as the session drivers see it: plain TCP or TLS over it.
//!
//! futures-rustls cannot rebuild a stream from `(io, ServerConnection)`, which the
//! hand-off and STARTTLS both need, so this is a small adapter of our own over
//! rustls' `read_tls`/`process_new_packets`/`write_tls` (DESIGN §11). The TLS
//! state (`ServerConnection` plus TLS bytes read but not yet fed to it) is `Send`
//! and travels with a hand-off.

use std::io::{self, Read, Write};
use std::sync::Arc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use crate::limits::READ_CHUNK_BYTES;

/// TLS state of a connection, in a form that can cross to another shard.
pub struct TlsState {
    pub conn: Box<ServerConnection>,
    /// TLS bytes read from the socket and not yet taken by rustls.
    pub pending: Vec<u8>,
}

pub struct Conn {
    stream: TcpStream,
    tls: Option<TlsState>,
}

impl Conn {
    pub fn plain(stream: TcpStream) -> Conn {
        Conn { stream, tls: None }
    }

    /// Starts a server-side TLS session on `stream` (implicit TLS or STARTTLS);
    /// the handshake runs as the connection is read and written.
    pub fn start_tls(stream: TcpStream, config: Arc<ServerConfig>) -> io::Result<Conn> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(Conn {
            stream,
            tls: Some(TlsState {
                conn: Box::new(conn),
                pending: Vec::new(),
            }),
        })
    }

    pub fn from_parts(stream: TcpStream, tls: Option<TlsState>) -> Conn {
        Conn { stream, tls }
    }

    pub fn into_parts(self) -> (TcpStream, Option<TlsState>) {
        (self.stream, self.tls)
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads decrypted bytes; 0 at the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.stream.read(buf).await;
        };
        loop {
            match tls.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !tls.pending.is_empty() {
                let mut rest = tls.pending.as_slice();
                let taken = tls.conn.read_tls(&mut rest)?;
                tls.pending.drain(..taken);
                let processed = tls.conn.process_new_packets();
                flush_tls(&mut self.stream, &mut tls.conn).await?;
                if let Err(e) = processed {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                if taken > 0 {
                    continue;
                }
            }
            flush_tls(&mut self.stream, &mut tls.conn).await?;
            let mut chunk = [0u8; READ_CHUNK_BYTES];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                // Tell rustls the transport ended; it answers with a clean EOF
                // after close_notify, or UnexpectedEof.
                let _ = tls.conn.read_tls(&mut &[][..]);
                let _ = tls.conn.process_new_packets();
                return match tls.conn.reader().read(buf) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                    Err(e) => Err(e),
                };
            }
            tls.pending.extend_from_slice(&chunk[..n]);
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self.tls.as_mut() {
            None => self.stream.write_all(data).await,
            Some(tls) => {
                tls.conn.writer().write_all(data)?;
                flush_tls(&mut self.stream, &mut tls.conn).await
            }
        }
    }

    /// Sends close_notify when on TLS, then closes the socket.
    pub async fn close(mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.conn.send_close_notify();
            let _ = flush_tls(&mut self.stream, &mut tls.conn).await;
        }
        let _ = self.stream.close().await;
    }
}

async fn flush_tls(stream: &mut TcpStream, conn: &mut ServerConnection) -> io::Result<()> {
    while conn.wants_write() {
        let mut out = Vec::new();
        conn.write_tls(&mut out)?;
        stream.write_all(&out).await?;
    }
    Ok(())
}
