//! A client connection as the session drivers see it: plain TCP or TLS over it.
//!
//! futures-rustls cannot rebuild a stream from `(io, ServerConnection)`, which the
//! hand-off and STARTTLS both need, so this is a small adapter of our own over
//! rustls' `read_tls`/`process_new_packets`/`write_tls` (DESIGN §11). The TLS
//! state (`ServerConnection` plus TLS bytes read but not yet fed to it) is `Send`
//! and travels with a hand-off.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt};
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
    /// IMAP COMPRESS=DEFLATE (RFC 4978), inside TLS when both are on.
    deflate: Option<Box<Deflate>>,
}

/// Raw DEFLATE both ways (RFC 1951, no zlib header), with flate2 (miniz_oxide): a
/// well-kept crate, and compression is opt-in per connection, off the default path.
struct Deflate {
    inflate: Decompress,
    deflate: Compress,
    /// Compressed bytes read and not yet inflated: `input[input_at..]`.
    input: Vec<u8>,
    input_at: usize,
}

/// Compressed input that inflates to nothing may not pile up past this (a stalled or
/// hostile stream); the connection ends instead.
const DEFLATE_INPUT_PENDING_MAX: usize = 1 << 20;

impl Conn {
    pub fn plain(stream: TcpStream) -> Conn {
        Conn {
            stream,
            tls: None,
            deflate: None,
        }
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
            deflate: None,
        })
    }

    pub fn from_parts(stream: TcpStream, tls: Option<TlsState>) -> Conn {
        Conn {
            stream,
            tls,
            deflate: None,
        }
    }

    /// For STARTTLS and the hand-off, both before login: compression (after login) is
    /// never on then.
    pub fn into_parts(self) -> (TcpStream, Option<TlsState>) {
        debug_assert!(
            self.deflate.is_none(),
            "a compressed connection is not split"
        );
        (self.stream, self.tls)
    }

    /// From now on everything written is deflated and everything read inflated
    /// (IMAP COMPRESS=DEFLATE, RFC 4978: raw DEFLATE, a sync flush after each write).
    pub fn start_deflate(&mut self) {
        self.deflate = Some(Box::new(Deflate {
            inflate: Decompress::new(false),
            deflate: Compress::new(Compression::default(), false),
            input: Vec::new(),
            input_at: 0,
        }));
    }

    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Reads bytes for the protocol: inflated when COMPRESS is on; 0 at the end.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls.is_none() && self.deflate.is_none() {
            return self.stream.read(buf).await;
        }
        let mut got = Vec::new();
        let n = self.read_vec(&mut got, buf.len()).await?;
        buf[..n].copy_from_slice(&got);
        Ok(n)
    }

    /// Reads up to `max` bytes for the protocol into `out` (emptied first; inflated when
    /// COMPRESS is on); 0 at the end. A connection waiting for its client holds no read
    /// buffer: `out` is given back (capacity 0) until bytes are there, so an idle session
    /// costs no read buffer (`read_socket`).
    pub async fn read_vec(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        out.clear();
        if max == 0 {
            return Ok(0);
        }
        if self.deflate.is_none() {
            return self.read_raw(out, max).await;
        }
        let mut chunk = Vec::new();
        loop {
            let Some(d) = self.deflate.as_mut() else {
                return Ok(0);
            };
            if d.input_at < d.input.len() {
                out.resize(max, 0);
                let (in0, out0) = (d.inflate.total_in(), d.inflate.total_out());
                let status = d
                    .inflate
                    .decompress(&d.input[d.input_at..], out, FlushDecompress::None)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                d.input_at += (d.inflate.total_in() - in0) as usize;
                let produced = (d.inflate.total_out() - out0) as usize;
                out.truncate(produced);
                if d.input_at == d.input.len() {
                    d.input = Vec::new();
                    d.input_at = 0;
                }
                if produced > 0 {
                    return Ok(produced);
                }
                if status == Status::StreamEnd {
                    // The client ended the DEFLATE stream: nothing more can follow.
                    return Ok(0);
                }
                if d.input.len() - d.input_at > DEFLATE_INPUT_PENDING_MAX {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "compressed input does not inflate",
                    ));
                }
            }
            *out = Vec::new();
            let n = self.read_raw(&mut chunk, READ_CHUNK_BYTES).await?;
            if n == 0 {
                return Ok(0);
            }
            if let Some(d) = self.deflate.as_mut() {
                d.input.extend_from_slice(&chunk);
            }
        }
    }

    /// Writes bytes of the protocol: deflated (and flushed) when COMPRESS is on.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(d) = self.deflate.as_mut() else {
            return self.write_raw(data).await;
        };
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut rest = data;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(4096));
            }
            let before = d.deflate.total_in();
            d.deflate
                .compress_vec(rest, &mut out, FlushCompress::Sync)
                .map_err(io::Error::other)?;
            rest = &rest[(d.deflate.total_in() - before) as usize..];
            // The sync flush is complete once a call left room in the output.
            if rest.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        self.write_raw(&out).await
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads up to `max` decrypted bytes into `out` (emptied first); 0 at the end of the
    /// stream. Like `read_socket`, holds no buffer while the socket has nothing.
    async fn read_raw(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        out.clear();
        let Some(tls) = self.tls.as_mut() else {
            return read_socket(&mut self.stream, out, max).await;
        };
        loop {
            match read_plaintext(&mut tls.conn, out, max) {
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
            let n = read_socket(&mut self.stream, &mut tls.pending, READ_CHUNK_BYTES).await?;
            if n == 0 {
                // Tell rustls the transport ended; it answers with a clean EOF
                // after close_notify, or UnexpectedEof.
                let _ = tls.conn.read_tls(&mut &[][..]);
                let _ = tls.conn.process_new_packets();
                return match read_plaintext(&mut tls.conn, out, max) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                    Err(e) => Err(e),
                };
            }
        }
    }

    async fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        match self.tls.as_mut() {
            None => self.stream.write_all(data).await,
            Some(tls) => {
                // rustls takes at most its buffer limit (64 KiB) of plaintext
                // before the records are written out: a bigger `write_all` into
                // its writer fails with WriteZero half-way (a large RETR or FETCH
                // over TLS did). So: what it takes, out to the socket, again.
                let mut rest = data;
                while !rest.is_empty() {
                    let taken = tls.conn.writer().write(rest)?;
                    flush_tls(&mut self.stream, &mut tls.conn).await?;
                    if taken == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "TLS session takes no more data",
                        ));
                    }
                    rest = &rest[taken..];
                }
                Ok(())
            }
        }
    }

    /// Sends `len` bytes of `file` from `offset` to a plain connection with
    /// sendfile(2): the kernel copies page cache to socket, no pass through user
    /// space (POP3 RETR of a large message). The socket is made non-blocking for
    /// the call; when its buffer is full, the next byte goes through glommio's
    /// write, which parks this task on io_uring until the socket is writable, and
    /// sendfile resumes after it. A file shorter than `len` is an error (the caller
    /// already announced the length). Not for TLS connections: their bytes must go
    /// through rustls (kTLS is not used, see `tls::probe_ktls`).
    ///
    /// The file's pages are read by the kernel on this thread: a message not in the
    /// page cache blocks the shard while the disk answers. `WILLNEED` starts that
    /// read ahead; recently delivered messages are normally cached.
    pub async fn send_file(
        &mut self,
        file: &std::fs::File,
        mut offset: u64,
        len: u64,
    ) -> io::Result<()> {
        if self.tls.is_some() {
            return Err(io::Error::other("sendfile on a TLS connection"));
        }
        let _ = rustix::fs::fadvise(
            file,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::WillNeed,
        );
        let was_blocking = with_socket(&self.stream, |fd| {
            let flags = rustix::fs::fcntl_getfl(fd)?;
            if !flags.contains(rustix::fs::OFlags::NONBLOCK) {
                rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
            }
            Ok(!flags.contains(rustix::fs::OFlags::NONBLOCK))
        })?;
        let end = offset.saturating_add(len);
        let (mut calls, mut waits) = (0u32, 0u32);
        let result = async {
            while offset < end {
                let want = usize::try_from(end - offset)
                    .unwrap_or(usize::MAX)
                    .min(SENDFILE_CALL_BYTES);
                calls += 1;
                match with_socket(&self.stream, |fd| {
                    rustix::fs::sendfile(fd, file, Some(&mut offset), want)
                }) {
                    Ok(0) => return Err(short_file()),
                    Ok(_) => glommio::yield_if_needed().await,
                    Err(rustix::io::Errno::AGAIN) => {
                        waits += 1;
                        let mut byte = [0u8; 1];
                        if rustix::io::pread(file, &mut byte, offset)? == 0 {
                            return Err(short_file());
                        }
                        self.stream.write_all(&byte).await?;
                        offset += 1;
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        }
        .await;
        tracing::debug!("sendfile {len} bytes: {calls} calls, {waits} waits for room");
        if was_blocking {
            let _ = with_socket(&self.stream, |fd| {
                let flags = rustix::fs::fcntl_getfl(fd)?;
                rustix::fs::fcntl_setfl(fd, flags - rustix::fs::OFlags::NONBLOCK)
            });
        }
        result
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

/// Most bytes one sendfile(2) call is asked for (a non-blocking socket takes what
/// fits its buffer anyway); between calls the shard yields when other tasks wait.
const SENDFILE_CALL_BYTES: usize = 1024 * 1024;

fn short_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "file shorter than the length announced",
    )
}

/// Runs `f` with the socket of `stream` as a `BorrowedFd` (glommio only gives
/// `AsRawFd`).
#[allow(unsafe_code)]
fn with_socket<T>(
    stream: &TcpStream,
    f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> rustix::io::Result<T>,
) -> rustix::io::Result<T> {
    use std::os::fd::AsRawFd;
    // SAFETY: `stream` owns the fd and outlives the borrow, which `f` cannot keep.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    f(fd)
}

/// Appends up to `max` bytes read from the socket to `out`; 0 at the end of the stream.
/// glommio's read tries a non-blocking recv and, when nothing is there, parks the task on a
/// readiness poll without keeping the caller's buffer; this makes room for each attempt and
/// gives it back when nothing came, freeing an empty `out`: a connection waiting for its
/// client holds no read buffer (idle IMAP sessions are most of a server's connections).
async fn read_socket(stream: &mut TcpStream, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        let start = out.len();
        out.resize(start + max, 0);
        let polled = Pin::new(&mut *stream).poll_read(cx, &mut out[start..]);
        let n = match &polled {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        out.truncate(start + n);
        if out.is_empty() {
            *out = Vec::new();
        }
        polled
    })
    .await
}

/// Decrypted bytes rustls has ready, up to `max`, into `out` (empty before); `WouldBlock`
/// when none (`out` then holds nothing).
fn read_plaintext(conn: &mut ServerConnection, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    out.resize(max, 0);
    let read = conn.reader().read(out);
    out.truncate(*read.as_ref().unwrap_or(&0));
    if out.is_empty() {
        *out = Vec::new();
    }
    read
}

async fn flush_tls(stream: &mut TcpStream, conn: &mut ServerConnection) -> io::Result<()> {
    while conn.wants_write() {
        let mut out = Vec::new();
        conn.write_tls(&mut out)?;
        stream.write_all(&out).await?;
    }
    Ok(())
}
