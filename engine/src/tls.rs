//! TLS with rustls (DESIGN §5): the server configuration, and a self-signed
//! certificate written under the data directory on first start when none is
//! configured. The certificate is shared read-only by every shard (`Arc`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
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
