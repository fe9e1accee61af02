//! What the transcript runners share: the `C:`/`S:` line expansion (`<<N*TEXT>>`,
//! `<<xHH>>`, `<<crlf>>`, `<<no-crlf>>`), feeding modes, output display and the
//! transcript folders. Each test binary uses a part of it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How a transcript's client packets reach the session: whole, or one byte at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Chunk,
    ByteByByte,
}

pub fn expand(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if !bytes[index..].starts_with(b"<<") {
            out.push(bytes[index]);
            index += 1;
            continue;
        }
        let (spec, end) = macro_body(text, index + 2)?;
        index = end;
        if spec == "crlf" {
            out.extend_from_slice(b"\r\n");
        } else if let Some(hex) = spec.strip_prefix('x') {
            out.push(u8::from_str_radix(hex, 16).map_err(|e| format!("bad byte {spec:?}: {e}"))?);
        } else {
            let (count, unit) = spec
                .split_once('*')
                .ok_or_else(|| format!("bad macro {spec:?}"))?;
            let count: usize = count
                .parse()
                .map_err(|e| format!("bad count {count:?}: {e}"))?;
            out.extend(expand(unit)?.repeat(count));
        }
    }
    Ok(out)
}

pub fn macro_body(text: &str, start: usize) -> Result<(&str, usize), String> {
    let bytes = text.as_bytes();
    let mut depth = 1;
    let mut index = start;
    while index + 1 < bytes.len() {
        if bytes[index..].starts_with(b"<<") {
            depth += 1;
            index += 2;
        } else if bytes[index..].starts_with(b">>") {
            depth -= 1;
            if depth == 0 {
                return Ok((&text[start..index], index + 2));
            }
            index += 2;
        } else {
            index += 1;
        }
    }
    Err(format!("unclosed << in {text:?}"))
}

pub fn line_bytes(body: &str) -> Result<Vec<u8>, String> {
    match body.strip_suffix("<<no-crlf>>") {
        Some(body) => expand(body),
        None => {
            let mut bytes = expand(body)?;
            bytes.extend_from_slice(b"\r\n");
            Ok(bytes)
        }
    }
}

/// Bytes as escaped lines, for failure messages.
pub fn show(bytes: &[u8]) -> String {
    let mut text = String::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let _ = writeln!(text, "    {}", line.escape_ascii());
    }
    text
}

/// The `*.txt` transcripts of `tests/transcripts/<protocol>/`, sorted.
pub fn transcript_files(protocol: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/transcripts")
        .join(protocol);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("transcript directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    files.sort();
    files
}
