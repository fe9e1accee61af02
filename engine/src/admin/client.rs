//! The CLI's side of the admin socket: blocking, one request per connection.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::proto::{AdminRequest, AdminResponse};

/// Sends `req` to the server listening on `socket`.
pub fn call(socket: &Path, req: &AdminRequest) -> anyhow::Result<AdminResponse> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        anyhow::anyhow!(
            "the running server's admin socket {} does not answer: {e}",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    if answer.is_empty() {
        anyhow::bail!("the server closed the admin connection without an answer");
    }
    Ok(serde_json::from_str(&answer)?)
}
