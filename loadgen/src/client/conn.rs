//! One client connection: plain TCP or implicit TLS over a glommio stream, with the error type
//! every client shares and the timeout wrapper that bounds each request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use glommio::net::TcpStream;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::limits::READ_CHUNK_BYTES;
use crate::proto::ProtocolError;

/// Why a request failed. `is_fatal` says whether the connection is still usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    Connect(String),
    Io(String),
    Closed,
    Timeout(&'static str),
    Protocol(String),
    /// The server answered NO/BAD/-ERR/4xx/5xx; the session goes on.
    Server(String),
    /// A correctness check failed (sizes, counts); the session goes on.
    Check(String),
}

impl ClientError {
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ClientError::Server(_) | ClientError::Check(_))
    }

    pub fn reason(&self, proto: &str, command: &str) -> String {
        match self {
            ClientError::Connect(e) => format!("{proto}: connect: {e}"),
            ClientError::Io(e) => format!("{proto} {command}: i/o: {e}"),
            ClientError::Closed => format!("{proto} {command}: connection closed by server"),
            ClientError::Timeout(what) => format!("{proto} {command}: timeout in {what}"),
            ClientError::Protocol(e) => format!("{proto} {command}: protocol: {e}"),
            ClientError::Server(e) => format!("{proto} {command}: server refused: {e}"),
            ClientError::Check(e) => format!("{proto} {command}: check failed: {e}"),
        }
    }
}

impl From<ProtocolError> for ClientError {
    fn from(e: ProtocolError) -> ClientError {
        ClientError::Protocol(e.0)
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> ClientError {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => ClientError::Closed,
            _ => ClientError::Io(e.kind().to_string()),
        }
    }
}

/// Runs `f`, failing with `Timeout(what)` after `limit`.
pub async fn timed<T>(
    limit: Duration,
    what: &'static str,
    f: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    f.or(async {
        glommio::timer::sleep(limit).await;
        Err(ClientError::Timeout(what))
    })
    .await
}

pub async fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        glommio::timer::sleep(t - now).await;
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

impl Conn {
    pub async fn connect(
        addr: SocketAddr,
        tls: Option<&TlsConnector>,
    ) -> Result<Conn, ClientError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect(short_glommio_error(&e.to_string())))?;
        let _ = tcp.set_nodelay(true);
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(connector) => {
                let name = ServerName::IpAddress(addr.ip().into());
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ClientError::Connect(format!("TLS handshake: {e}")))?;
                Stream::Tls(Box::new(tls))
            }
        };
        Ok(Conn {
            stream,
            buf: vec![0; READ_CHUNK_BYTES],
        })
    }

    /// The next bytes from the server; `Closed` at end of stream.
    pub async fn read_chunk(&mut self) -> Result<&[u8], ClientError> {
        let n = match &mut self.stream {
            Stream::Plain(s) => s.read(&mut self.buf).await?,
            Stream::Tls(s) => s.read(&mut self.buf).await?,
        };
        if n == 0 {
            return Err(ClientError::Closed);
        }
        Ok(&self.buf[..n])
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        match &mut self.stream {
            Stream::Plain(s) => {
                s.write_all(bytes).await?;
                s.flush().await?;
            }
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await?;
            }
        }
        Ok(())
    }
}

/// glommio wraps OS errors in long messages; keep the part that names the cause.
fn short_glommio_error(s: &str) -> String {
    if s.contains("refused") || s.contains("Refused") {
        "connection refused".to_string()
    } else {
        s.chars().take(80).collect()
    }
}

/// A TLS client that accepts any certificate: loadgen only talks to test servers on loopback,
/// usually with self-signed certificates, and measures them rather than trusting them.
pub fn insecure_tls_connector() -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth()
        });
    match config {
        Ok(c) => TlsConnector::from(Arc::new(c)),
        // The ring provider supports the default versions; this cannot fail.
        Err(e) => panic!("TLS configuration: {e}"),
    }
}

#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
