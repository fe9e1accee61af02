//! TLS with rustls (DESIGN §5): the server configuration, and a self-signed
//! certificate written under the data directory on first start when none is
//! configured. Every shard reads the one live configuration ([`Certificates`]);
//! SIGHUP swaps in a new one made from the files, and sessions already running keep
//! the one they started with (rustls holds it in each `ServerConnection`).
//!
//! kTLS (the kernel doing the record layer, so sendfile works under TLS) is probed
//! at start ([`probe_ktls`]); see there for what is used of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

/// Where the certificate and key are: the configured files, or the generated pair
/// under `<first root>/tls/`.
pub fn paths(config: &Config) -> (PathBuf, PathBuf, bool) {
    if config.tls.cert.as_os_str().is_empty() {
        let dir = config.store.roots[0].join("tls");
        (dir.join("cert.pem"), dir.join("key.pem"), true)
    } else {
        (config.tls.cert.clone(), config.tls.key.clone(), false)
    }
}

/// The live TLS configuration, shared by every shard. A new TLS session takes the
/// current one (`current`, one atomic load: `arc-swap` rather than a lock, as shard
/// threads must not block); `reload` replaces it for sessions started afterwards.
pub struct Certificates {
    live: ArcSwap<ServerConfig>,
}

impl Certificates {
    pub fn new(config: Arc<ServerConfig>) -> Arc<Certificates> {
        Arc::new(Certificates {
            live: ArcSwap::new(config),
        })
    }

    /// What a TLS session starting now uses.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.live.load_full()
    }

    /// Reads the certificate and key again (SIGHUP). On any error the old pair stays
    /// in use and the error is returned for the log.
    pub fn reload(&self, config: &Config) -> anyhow::Result<()> {
        let fresh = server_config(config)?;
        self.live.store(fresh);
        Ok(())
    }
}

/// Loads (or on first start makes) the certificate and builds the server config.
pub fn server_config(config: &Config) -> anyhow::Result<Arc<ServerConfig>> {
    let (cert, key, generated) = paths(config);
    if generated && !cert.exists() {
        make_self_signed(&cert, &key)?;
        tracing::info!("made a self-signed certificate {}", cert.display());
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .with_context(|| format!("tls.cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("tls.cert {}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("tls.cert {}: no certificate in the file", cert.display());
    }
    let key =
        PrivateKeyDer::from_pem_file(&key).with_context(|| format!("tls.key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("tls versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls.cert/tls.key do not make a usable pair")?;
    server.ignore_client_order = true;
    Ok(Arc::new(server))
}

fn make_self_signed(cert: &Path, key: &Path) -> anyhow::Result<()> {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let mut names = vec!["localhost".to_owned()];
    if !host.is_empty() && host != "localhost" {
        names.push(host);
    }
    let generated = rcgen::generate_simple_self_signed(names).context("making a certificate")?;
    let dir = cert.parent().context("certificate path has no folder")?;
    store::durable::create_dir_durable(dir)?;
    // The key first: a certificate without its key would be taken as made.
    store::durable::write_atomic(key, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::set_permissions(key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    store::durable::write_atomic(cert, generated.cert.pem().as_bytes())?;
    Ok(())
}

/// Whether the kernel has kTLS: the `tls` upper-layer protocol can be attached to a
/// connected TCP socket (a loopback pair made for the probe). Logged at start.
///
/// What follows from it: with kTLS, the record layer could move into the kernel after
/// the rustls handshake (`dangerous_extract_secrets`) and RETR/FETCH could sendfile
/// under TLS. That hand-over is not built: the `ktls` crate is tied to tokio-rustls,
/// and this kernel (the one the project builds and tests on) has no `tls` module to
/// test it against, so TLS connections always use rustls' own record layer and the
/// sendfile path is for plain connections only.
pub fn probe_ktls() -> Result<(), String> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let client = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let _server = listener.accept().map_err(|e| e.to_string())?;
    set_tcp_ulp_tls(&client).map_err(|e| e.to_string())
}

#[allow(unsafe_code)]
fn set_tcp_ulp_tls(socket: &std::net::TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    const ULP: &[u8] = b"tls";
    // SAFETY: the fd is an open TCP socket owned by `socket` for the whole call; the
    // option value points to `ULP.len()` readable bytes.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_ULP,
            ULP.as_ptr().cast(),
            ULP.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
