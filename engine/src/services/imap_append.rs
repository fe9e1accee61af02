//! Streaming APPEND for the IMAP backend: the literal arrives in pieces
//! (`ImapBackend::append_data`), bare LF becomes CRLF on the way, and the message is
//! kept in memory only while small. Past `IMAP_APPEND_INLINE_BYTES` it goes to a file in
//! the user's staging folder (`store::delivery::STAGING_DIR`) in bounded writes; at the
//! end the file is made durable and precomputed off the shard thread, then staged with
//! `Mailstore::stage_append_file`, whose journal record names the file instead of
//! holding the bytes.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use protocols::imap::backend as b;
use store::Address;
use store::delivery::{Flags, InternalDate, Ticket};

use crate::limits::{IMAP_APPEND_INLINE_BYTES, IMAP_APPEND_WRITE_BYTES};
use crate::services::imap_backend::map_err;
use crate::shard::Shard;

/// A streaming APPEND in progress.
#[derive(Debug, Default)]
pub struct Staging {
    /// The normalised message while it is small; then bytes not yet written.
    buf: Vec<u8>,
    file: Option<(File, PathBuf)>,
    /// Normalised bytes so far.
    size: u64,
    /// The last byte seen was CR (a CRLF split across two pieces stays one).
    last_cr: bool,
}

/// A large APPEND whose file is complete: the engine finishes it off-thread.
#[derive(Debug)]
pub struct Deferred {
    pub mailbox: String,
    pub flags: Flags,
    pub date: InternalDate,
    pub path: PathBuf,
    pub file: File,
    pub size: u64,
}

/// What `commit` leaves to do.
pub enum Staged {
    /// Small: in memory, staged like any APPEND.
    Inline(Vec<u8>),
    /// Large: in a file, still to be made durable and precomputed.
    File(File, PathBuf, u64),
}

impl Staging {
    /// For a literal of `size` bytes as announced: a small one is held in one buffer
    /// allocated once (growing it piece by piece copied the message again at every
    /// doubling), with room for some bare LFs becoming CRLF; a large one starts with a
    /// buffer of one file write.
    pub fn for_literal(size: u64) -> Staging {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let capacity = if size <= IMAP_APPEND_INLINE_BYTES {
            size + size / 64 + 2
        } else {
            IMAP_APPEND_WRITE_BYTES * 2
        };
        Staging {
            buf: Vec::with_capacity(capacity),
            file: None,
            size: 0,
            last_cr: false,
        }
    }

    /// Takes the next piece of the literal.
    pub fn push(
        &mut self,
        staging_dir: impl FnOnce() -> PathBuf,
        data: &[u8],
    ) -> std::io::Result<()> {
        let start = self.buf.len();
        // No reserve: what `for_literal` allocated holds the announced literal and some
        // CRs; only a literal with more bare LFs than that grows the buffer.
        // Whole lines are copied at once; memchr (SIMD) finds the line feeds.
        let mut from = 0;
        for lf in memchr::memchr_iter(b'\n', data) {
            let cr_before = if lf == from {
                self.last_cr
            } else {
                data[lf - 1] == b'\r'
            };
            self.buf.extend_from_slice(&data[from..lf]);
            if !cr_before {
                self.buf.push(b'\r');
            }
            from = lf;
        }
        self.buf.extend_from_slice(&data[from..]);
        if let Some(&last) = data.last() {
            self.last_cr = last == b'\r';
        }
        self.size += (self.buf.len() - start) as u64;
        if self.file.is_none() && self.buf.len() > IMAP_APPEND_INLINE_BYTES {
            let dir = staging_dir();
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(unique_name());
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            self.file = Some((file, path));
        }
        if let Some((file, _)) = &mut self.file
            && self.buf.len() >= IMAP_APPEND_WRITE_BYTES
        {
            file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// The literal is complete.
    pub fn finish(mut self) -> std::io::Result<Staged> {
        match self.file.take() {
            None => Ok(Staged::Inline(std::mem::take(&mut self.buf))),
            Some((mut file, path)) => {
                let written = file.write_all(&self.buf);
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
                Ok(Staged::File(file, path, self.size))
            }
        }
    }
}

impl Drop for Staging {
    /// An APPEND that never committed leaves no file behind.
    fn drop(&mut self) {
        if let Some((_, path)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A name no other staged file of this process has (shards share the folder).
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}.{}.{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Makes a large APPEND's file durable and precomputes it off the shard thread, then
/// stages it; the ticket commits like any other.
pub async fn stage_deferred(
    shard: &Shard,
    user: &Address,
    d: Deferred,
) -> Result<Ticket, b::BackendError> {
    let Deferred {
        mailbox,
        flags,
        date,
        path,
        file,
        size,
    } = d;
    let job_path = path.clone();
    let prepared = glommio::executor()
        .spawn_blocking(move || prepare(file, &job_path))
        .await;
    let cache = match prepared {
        Ok(cache) => cache,
        Err(e) => {
            tracing::warn!("{user} append {}: {e}", path.display());
            let _ = std::fs::remove_file(&path);
            return Err(b::BackendError::Unavailable);
        }
    };
    shard
        .mail
        .with(|ms| ms.stage_append_file(user, &mailbox, path, size, cache, &flags, date))
        .map_err(map_err)
}

/// fdatasync of the file and fsync of its folder (the journal record will name it),
/// then its cache record.
///
/// The MIME walk (`store::message::precompute`) wants the whole message as one slice,
/// so it runs in a child process (`msgstore precompute-message FILE`): the message is
/// then never resident in the server, whatever its size and however many arrive at
/// once; the spawn costs about a millisecond next to the megabytes of I/O and the
/// fsync every staged APPEND pays anyway.
fn prepare(file: File, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    file.sync_data()?;
    drop(file);
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("precompute-message")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "precompute-message: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    store::message::cache::decode(&out.stdout)
        .map_err(|e| std::io::Error::other(format!("precompute-message output: {e:?}")))?;
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces through a `Staging` sized for `announced` bytes.
    fn staged_as(announced: u64, pieces: &[&[u8]]) -> Vec<u8> {
        let mut s = Staging::for_literal(announced);
        for p in pieces {
            s.push(|| unreachable!("small literals stay in memory"), p)
                .expect("push");
        }
        match s.finish().expect("finish") {
            Staged::Inline(bytes) => bytes,
            Staged::File(..) => unreachable!("small literals stay in memory"),
        }
    }

    fn staged(pieces: &[&[u8]]) -> Vec<u8> {
        staged_as(pieces.iter().map(|p| p.len() as u64).sum(), pieces)
    }

    /// Whatever the pieces, the result is the whole literal with every bare LF made
    /// CRLF (`normalize_crlf`), a CRLF split between pieces included.
    #[test]
    fn pieces_normalise_like_the_whole() {
        let inputs: [&[u8]; 7] = [
            b"a\r\nb\nc\r\r\n\n",
            b"\n\n\r\n\r",
            b"\r",
            b"",
            b"no line end",
            b"x\ry\n\r\n\rz\n",
            b"\r\n\r\n.\r\n",
        ];
        for input in inputs {
            let want = store::message::normalize_crlf(input).into_owned();
            assert_eq!(staged(&[input]), want, "{}", input.escape_ascii());
            // The buffer sized for the literal, or for less than it grows to.
            assert_eq!(staged_as(input.len() as u64, &[input]), want);
            assert_eq!(staged_as(0, &[input]), want);
            for i in 0..=input.len() {
                for j in i..=input.len() {
                    let got = staged(&[&input[..i], &input[i..j], &input[j..]]);
                    assert_eq!(got, want, "{} split {i} {j}", input.escape_ascii());
                }
            }
        }
    }
}
