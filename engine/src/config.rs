//! Configuration (DESIGN §10): TOML, every key has a default, so an empty file is
//! valid. The file is walked by hand against the schema below rather than through
//! serde's derive so that every error names the exact key (`listen.imap`), in one line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One service the engine can listen for. The order is the start order; services
/// stop in reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Imap,
    Imaps,
    Pop3,
    Pop3s,
    Lmtp,
    Poppassd,
    ManageSieve,
    Http,
    Socketmap,
}

impl Service {
    pub const ALL: [Service; 9] = [
        Service::Imap,
        Service::Imaps,
        Service::Pop3,
        Service::Pop3s,
        Service::Lmtp,
        Service::Poppassd,
        Service::ManageSieve,
        Service::Http,
        Service::Socketmap,
    ];

    /// The key under `[listen]`.
    pub fn key(self) -> &'static str {
        match self {
            Service::Imap => "imap",
            Service::Imaps => "imaps",
            Service::Pop3 => "pop3",
            Service::Pop3s => "pop3s",
            Service::Lmtp => "lmtp",
            Service::Poppassd => "poppassd",
            Service::ManageSieve => "managesieve",
            Service::Http => "http",
            Service::Socketmap => "socketmap",
        }
    }

    fn default_addr(self) -> &'static str {
        match self {
            Service::Imap => "127.0.0.1:1143",
            Service::Imaps => "127.0.0.1:1993",
            Service::Pop3 => "127.0.0.1:1110",
            Service::Pop3s => "127.0.0.1:1995",
            Service::Lmtp => "127.0.0.1:2424",
            Service::Poppassd => "127.0.0.1:1106",
            Service::ManageSieve => "127.0.0.1:4190",
            Service::Http => "127.0.0.1:8080",
            Service::Socketmap => "127.0.0.1:2490",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub store: StoreConfig,
    pub engine: EngineConfig,
    /// Address per service; `None` when the service is disabled with `""`.
    pub listen: Vec<(Service, Option<SocketAddr>)>,
    /// `listen.lmtp_unix`: the folder of the shards' unix LMTP sockets.
    pub lmtp_unix: LmtpUnix,
    /// `listen.lmtp_transport`: which shard socket the socketmap's `transport` names.
    pub lmtp_transport: LmtpTransport,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub outbound: OutboundConfig,
}

/// Where shard N's unix LMTP socket `shard-N.sock` lives (DESIGN §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LmtpUnix {
    /// `<roots[0]>/lmtp` (no key, the default).
    Default,
    Dir(PathBuf),
    /// `lmtp_unix = ""`: no unix sockets.
    Off,
}

/// What the socketmap's `transport` answers for a recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LmtpTransport {
    /// `lmtp:inet:HOST:PORT` of the owner's TCP port (the default).
    Inet,
    /// `lmtp:unix:PATH` of the owner's unix socket.
    Unix,
}

/// Whether the outbound queue uses STARTTLS with the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundTls {
    /// When the relay offers it; plaintext otherwise.
    Opportunistic,
    /// Never send without TLS: a relay without STARTTLS gets the message deferred.
    Required,
    /// Never (a relay on loopback).
    Off,
}

/// `[outbound]`: where mail that leaves the store goes (external forwards).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundConfig {
    /// The smart host, `host:port`; `None` (the default) = no relay: a recipient
    /// forwarded outside the store is deferred at LMTP (`451 4.3.0`).
    pub relay: Option<String>,
    pub tls: OutboundTls,
    /// PEM file of the CA(s) the relay's certificate must chain to; empty (the
    /// default) accepts any certificate (RFC 7435 opportunistic security: the
    /// channel is encrypted, the relay is not authenticated).
    pub tls_ca: PathBuf,
    /// Our name in EHLO; empty = the host name.
    pub helo_name: String,
    /// Seconds a message is retried before it bounces.
    pub retry_window_seconds: u64,
    /// Waits after the 1st, 2nd, … failed attempt, in seconds; the last repeats.
    pub backoff_seconds: Vec<u64>,
    /// Seconds to connect, and to wait for each reply of the relay.
    pub timeout_seconds: u64,
}

impl Default for OutboundConfig {
    fn default() -> OutboundConfig {
        OutboundConfig {
            relay: None,
            tls: OutboundTls::Opportunistic,
            tls_ca: PathBuf::new(),
            helo_name: String::new(),
            retry_window_seconds: store::limits::OUTBOUND_RETRY_WINDOW_SECS_DEFAULT,
            backoff_seconds: store::limits::OUTBOUND_BACKOFF_SECS_DEFAULT.to_vec(),
            timeout_seconds: 300,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuthConfig {
    /// Whether passwords may cross a connection without TLS. `None` (the default)
    /// allows it on loopback listeners only.
    pub plaintext_without_tls: Option<bool>,
    /// Failed logins (per client IP, and per account) answered at once; each
    /// failure past this doubles a delay before the answer.
    pub failures_before_delay: u32,
    /// Failed logins after which the IP or account is refused for `block_seconds`,
    /// whatever password it sends.
    pub failures_before_block: u32,
    pub block_seconds: u64,
    /// Shortest new password poppassd (and later the web UI) accepts, in characters.
    pub password_min_length: u32,
    /// Keep a sealed CRAM-MD5/APOP secret for every password set from now on (it is
    /// plaintext-equivalent; see README). Off: only accounts given `--cram-md5`.
    pub cram_md5: bool,
    /// SASL mechanisms offered (AUTHENTICATE, POP3 AUTH), strongest first. `None`:
    /// SCRAM-SHA-256, PLAIN, LOGIN, and CRAM-MD5 (with APOP) when `cram_md5` is on.
    pub mechanisms: Option<Vec<protocols::sasl::Mechanism>>,
    /// Where the passwords of a domain live (`[auth.domains."example.org"]`); a
    /// domain not listed uses the account profile.
    pub domains: Vec<(String, PasswordLocation)>,
}

/// A password source other than the account profile, for one domain. The account
/// itself (mailbox, usage flags) is still the store's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordLocation {
    /// A Dovecot passwd-file; `local_part`: its user field is the local part.
    PasswdFile { path: PathBuf, local_part: bool },
    /// shadow(5) (user = local part).
    Shadow { path: PathBuf },
    /// LDAP: bind as `dn_template` filled in, or search `base` with `filter` (as
    /// `bind_dn` or anonymously) and bind as the entry found.
    Ldap {
        url: String,
        dn_template: Option<String>,
        base: Option<String>,
        filter: Option<String>,
        bind_dn: Option<String>,
        bind_password: Option<String>,
        timeout_seconds: u64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct LimitsConfig {
    /// Connections one client IP may hold on one shard. The default (1000) is high
    /// on purpose: an ISP's subscribers often share one address behind carrier NAT,
    /// and a webmail or proxy host opens many sessions from one address.
    pub connections_per_ip: u32,
    /// Sessions one shard serves at once (every service together); past it new
    /// connections get the protocol's "too many connections" answer. Bounded by
    /// `limits::SESSIONS_PER_SHARD_MAX`.
    pub connections_per_shard: u32,
    /// IMAP commands one connection may issue per second (with a burst of as many)
    /// before the server slows down reading from it. Generous: a syncing client
    /// pipelines hundreds; a script hammering one connection is held back.
    pub imap_commands_per_second: u32,
    /// Seconds a connection may stay silent before it logs in.
    pub idle_preauth_seconds: u64,
    /// Seconds an authenticated IMAP session may stay silent (RFC 3501: at least 30 min).
    pub idle_imap_seconds: u64,
    /// Seconds an authenticated POP3 session may stay silent (RFC 1939: at least 10 min).
    pub idle_pop3_seconds: u64,
}

impl AuthConfig {
    /// The SASL mechanisms to offer, in the order they are advertised.
    pub fn sasl_mechanisms(&self) -> Vec<protocols::sasl::Mechanism> {
        use protocols::sasl::Mechanism;
        match &self.mechanisms {
            Some(list) => list.clone(),
            None => Mechanism::ALL
                .into_iter()
                .filter(|m| *m != Mechanism::CramMd5 || self.cram_md5)
                .collect(),
        }
    }

    /// May a password cross a plaintext connection to the listener at `local`?
    pub fn plaintext_allowed(&self, local: SocketAddr) -> bool {
        self.plaintext_without_tls
            .unwrap_or_else(|| local.ip().is_loopback())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoreConfig {
    pub roots: Vec<PathBuf>,
    pub fanout_levels: u8,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// 0 = one shard per available core.
    pub shards: usize,
    /// Shards that accept connections on the shared service ports; empty = all.
    /// Lets an operator keep some cores free of pre-auth work.
    pub accept_shards: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A configuration error: one line, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(key: &str, what: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("config: `{key}`: {what}"))
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: StoreConfig {
                roots: vec![PathBuf::from("./msgstore-data")],
                fanout_levels: 2,
            },
            engine: EngineConfig {
                shards: 0,
                accept_shards: Vec::new(),
            },
            listen: Service::ALL
                .iter()
                .map(|s| (*s, s.default_addr().parse().ok()))
                .collect(),
            lmtp_unix: LmtpUnix::Default,
            lmtp_transport: LmtpTransport::Inet,
            tls: TlsConfig::default(),
            auth: AuthConfig {
                plaintext_without_tls: None,
                failures_before_delay: 3,
                failures_before_block: 10,
                block_seconds: 300,
                password_min_length: 8,
                cram_md5: false,
                mechanisms: None,
                domains: Vec::new(),
            },
            limits: LimitsConfig {
                connections_per_ip: 1000,
                connections_per_shard: crate::limits::SESSIONS_PER_SHARD_MAX as u32,
                imap_commands_per_second: 1000,
                idle_preauth_seconds: 60,
                idle_imap_seconds: 30 * 60,
                idle_pop3_seconds: 10 * 60,
            },
            outbound: OutboundConfig::default(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("config {}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("{} ({})", e.0, path.display())))
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            // toml's message spans several lines; keep the first, which says what.
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("syntax error")
                .to_owned();
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => ConfigError(format!("config: line {l}: {msg}")),
                None => ConfigError(format!("config: {msg}")),
            }
        })?;
        let mut cfg = Config::default();
        for (section, value) in &table {
            let toml::Value::Table(t) = value else {
                return Err(err(section, "expected a [section]"));
            };
            match section.as_str() {
                "store" => parse_store(t, &mut cfg.store)?,
                "engine" => parse_engine(t, &mut cfg.engine)?,
                "listen" => {
                    let mut rest = t.clone();
                    parse_listen_lmtp(&mut rest, &mut cfg)?;
                    parse_listen(&rest, &mut cfg.listen)?
                }
                "tls" => parse_tls(t, &mut cfg.tls)?,
                "auth" => parse_auth(t, &mut cfg.auth)?,
                "limits" => parse_limits(t, &mut cfg.limits)?,
                "outbound" => parse_outbound(t, &mut cfg.outbound)?,
                _ => return Err(err(section, "unknown section")),
            }
        }
        if cfg.lmtp_transport == LmtpTransport::Unix && cfg.lmtp_unix == LmtpUnix::Off {
            return Err(err(
                "listen.lmtp_transport",
                "\"unix\" needs the unix sockets (listen.lmtp_unix is \"\")",
            ));
        }
        if !cfg.engine.accept_shards.is_empty() && cfg.engine.shards != 0 {
            for s in &cfg.engine.accept_shards {
                if *s >= cfg.engine.shards {
                    return Err(err(
                        "engine.accept_shards",
                        format!(
                            "shard {s} does not exist (engine.shards = {})",
                            cfg.engine.shards
                        ),
                    ));
                }
            }
        }
        Ok(cfg)
    }

    pub fn listen_addr(&self, service: Service) -> Option<SocketAddr> {
        self.listen
            .iter()
            .find(|(s, _)| *s == service)
            .and_then(|(_, a)| *a)
    }

    /// The number of shards to run: `engine.shards`, or one per core when 0.
    pub fn shard_count(&self) -> usize {
        if self.engine.shards > 0 {
            self.engine.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    /// Shard `shard`'s unix LMTP socket, unless they are off.
    pub fn lmtp_unix_path(&self, shard: usize) -> Option<PathBuf> {
        let dir = match &self.lmtp_unix {
            LmtpUnix::Default => self.store.roots[0].join("lmtp"),
            LmtpUnix::Dir(d) => d.clone(),
            LmtpUnix::Off => return None,
        };
        Some(dir.join(format!("shard-{shard}.sock")))
    }

    /// The unix socket the running server answers admin verbs on.
    pub fn admin_socket(&self) -> PathBuf {
        self.store.roots[0].join("admin.sock")
    }
}

fn parse_store(t: &toml::Table, out: &mut StoreConfig) -> Result<(), ConfigError> {
    for (k, v) in t {
        match k.as_str() {
            "roots" => {
                let key = "store.roots";
                let arr = v
                    .as_array()
                    .ok_or_else(|| err(key, "expected a list of paths"))?;
                let mut roots = Vec::new();
                for item in arr {
                    let s = item
                        .as_str()
                        .ok_or_else(|| err(key, "expected a list of paths"))?;
                    if s.is_empty() {
                        return Err(err(key, "a root may not be empty"));
                    }
                    roots.push(PathBuf::from(s));
                }
                if roots.is_empty() {
                    return Err(err(key, "at least one root is needed"));
                }
                out.roots = roots;
            }
            "fanout_levels" => {
                let key = "store.fanout_levels";
                let n = int(v, key)?;
                if !(1..=3).contains(&n) {
                    return Err(err(key, "must be 1, 2 or 3"));
                }
                out.fanout_levels = n as u8;
            }
            _ => return Err(err(&format!("store.{k}"), "unknown key")),
        }
    }
    Ok(())
}

fn parse_engine(t: &toml::Table, out: &mut EngineConfig) -> Result<(), ConfigError> {
    for (k, v) in t {
        match k.as_str() {
            "shards" => {
                let key = "engine.shards";
                let n = int(v, key)?;
                if n > crate::limits::SHARDS_MAX as i64 {
                    return Err(err(key, format!("at most {}", crate::limits::SHARDS_MAX)));
                }
                out.shards = n as usize;
            }
            "accept_shards" => {
                let key = "engine.accept_shards";
                let arr = v
                    .as_array()
                    .ok_or_else(|| err(key, "expected a list of shard numbers"))?;
                let mut shards = Vec::new();
                for item in arr {
                    shards.push(int(item, key)? as usize);
                }
                out.accept_shards = shards;
            }
            _ => return Err(err(&format!("engine.{k}"), "unknown key")),
        }
    }
    Ok(())
}

fn parse_listen(
    t: &toml::Table,
    out: &mut [(Service, Option<SocketAddr>)],
) -> Result<(), ConfigError> {
    for (k, v) in t {
        let key = format!("listen.{k}");
        let slot = out
            .iter_mut()
            .find(|(s, _)| s.key() == k)
            .ok_or_else(|| err(&key, "unknown key"))?;
        let s = v
            .as_str()
            .ok_or_else(|| err(&key, "expected \"host:port\" or \"\""))?;
        slot.1 = if s.is_empty() {
            None
        } else {
            Some(
                s.parse()
                    .map_err(|_| err(&key, format!("{s:?} is not an ip:port address")))?,
            )
        };
    }
    Ok(())
}

/// The `[listen]` keys that are not services; removed from `t` once read.
fn parse_listen_lmtp(t: &mut toml::Table, cfg: &mut Config) -> Result<(), ConfigError> {
    if let Some(v) = t.remove("lmtp_unix") {
        let key = "listen.lmtp_unix";
        let s = v
            .as_str()
            .ok_or_else(|| err(key, "expected a folder path or \"\""))?;
        cfg.lmtp_unix = if s.is_empty() {
            LmtpUnix::Off
        } else {
            LmtpUnix::Dir(PathBuf::from(s))
        };
    }
    if let Some(v) = t.remove("lmtp_transport") {
        let key = "listen.lmtp_transport";
        cfg.lmtp_transport = match v.as_str() {
            Some("inet") => LmtpTransport::Inet,
            Some("unix") => LmtpTransport::Unix,
            _ => return Err(err(key, "expected \"inet\" or \"unix\"")),
        };
    }
    Ok(())
}

fn parse_tls(t: &toml::Table, out: &mut TlsConfig) -> Result<(), ConfigError> {
    for (k, v) in t {
        let key = format!("tls.{k}");
        let s = v.as_str().ok_or_else(|| err(&key, "expected a path"))?;
        match k.as_str() {
            "cert" => out.cert = PathBuf::from(s),
            "key" => out.key = PathBuf::from(s),
            _ => return Err(err(&key, "unknown key")),
        }
    }
    Ok(())
}

fn parse_auth(t: &toml::Table, out: &mut AuthConfig) -> Result<(), ConfigError> {
    for (k, v) in t {
        let key = format!("auth.{k}");
        match k.as_str() {
            "plaintext_without_tls" => {
                out.plaintext_without_tls = Some(
                    v.as_bool()
                        .ok_or_else(|| err(&key, "expected true or false"))?,
                )
            }
            "failures_before_delay" => out.failures_before_delay = small(v, &key)?,
            "failures_before_block" => {
                let n = small(v, &key)?;
                if n == 0 {
                    return Err(err(&key, "must be at least 1"));
                }
                out.failures_before_block = n;
            }
            "block_seconds" => out.block_seconds = int(v, &key)? as u64,
            "password_min_length" => out.password_min_length = small(v, &key)?,
            "cram_md5" => {
                out.cram_md5 = v
                    .as_bool()
                    .ok_or_else(|| err(&key, "expected true or false"))?
            }
            "mechanisms" => out.mechanisms = Some(mechanisms(v, &key)?),
            "domains" => {
                let domains = v
                    .as_table()
                    .ok_or_else(|| err(&key, "expected [auth.domains.\"DOMAIN\"] tables"))?;
                for (domain, table) in domains {
                    let key = format!("auth.domains.{domain}");
                    if domain.is_empty() || domain != &domain.to_ascii_lowercase() {
                        return Err(err(&key, "the domain must be lower-case"));
                    }
                    let table = table
                        .as_table()
                        .ok_or_else(|| err(&key, "expected a table"))?;
                    out.domains
                        .push((domain.clone(), password_location(table, &key)?));
                }
            }
            _ => return Err(err(&key, "unknown key")),
        }
    }
    Ok(())
}

/// One `[auth.domains."DOMAIN"]` table: `source` and the keys it takes.
fn password_location(t: &toml::Table, key: &str) -> Result<PasswordLocation, ConfigError> {
    let text = |name: &str| -> Result<Option<String>, ConfigError> {
        t.get(name)
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| err(&format!("{key}.{name}"), "expected a string"))
            })
            .transpose()
    };
    let source = text("source")?;
    let allowed: &[&str] = match source.as_deref() {
        Some("passwd-file") => &["source", "path", "user"],
        Some("shadow") => &["source", "path"],
        Some("ldap") => &[
            "source",
            "url",
            "dn_template",
            "base",
            "filter",
            "bind_dn",
            "bind_password",
            "timeout_seconds",
        ],
        Some(other) => {
            return Err(err(
                &format!("{key}.source"),
                format!("unknown source {other:?} (known: passwd-file, shadow, ldap)"),
            ));
        }
        None => return Err(err(&format!("{key}.source"), "missing")),
    };
    if let Some(unknown) = t.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(err(
            &format!("{key}.{unknown}"),
            "unknown key for this source",
        ));
    }
    let location = match source.as_deref() {
        Some("passwd-file") => PasswordLocation::PasswdFile {
            path: PathBuf::from(
                text("path")?.ok_or_else(|| err(&format!("{key}.path"), "missing"))?,
            ),
            local_part: match text("user")?.as_deref() {
                None | Some("address") => false,
                Some("local-part") => true,
                Some(other) => {
                    return Err(err(
                        &format!("{key}.user"),
                        format!("{other:?} is not \"address\" or \"local-part\""),
                    ));
                }
            },
        },
        Some("shadow") => PasswordLocation::Shadow {
            path: PathBuf::from(text("path")?.unwrap_or_else(|| "/etc/shadow".to_owned())),
        },
        _ => {
            let url = text("url")?.ok_or_else(|| err(&format!("{key}.url"), "missing"))?;
            if !url.starts_with("ldap://") {
                return Err(err(
                    &format!("{key}.url"),
                    "must be ldap://host:port (no TLS in this build)",
                ));
            }
            let dn_template = text("dn_template")?;
            let (base, filter) = (text("base")?, text("filter")?);
            if dn_template.is_some() == (base.is_some() || filter.is_some()) {
                return Err(err(
                    key,
                    "give either dn_template (bind) or base and filter (search + bind)",
                ));
            }
            if dn_template.is_none() && (base.is_none() || filter.is_none()) {
                return Err(err(key, "search + bind needs both base and filter"));
            }
            let timeout_seconds = match t.get("timeout_seconds") {
                None => 5,
                Some(v) => match int(v, &format!("{key}.timeout_seconds"))? {
                    0 => return Err(err(&format!("{key}.timeout_seconds"), "must be at least 1")),
                    n => n as u64,
                },
            };
            PasswordLocation::Ldap {
                url,
                dn_template,
                base,
                filter,
                bind_dn: text("bind_dn")?,
                bind_password: text("bind_password")?,
                timeout_seconds,
            }
        }
    };
    Ok(location)
}

/// `["SCRAM-SHA-256", "PLAIN"]`: known names, no repeats.
fn mechanisms(v: &toml::Value, key: &str) -> Result<Vec<protocols::sasl::Mechanism>, ConfigError> {
    let names = v
        .as_array()
        .ok_or_else(|| err(key, "expected a list of mechanism names"))?;
    let mut out = Vec::new();
    for name in names {
        let name = name
            .as_str()
            .ok_or_else(|| err(key, "expected a list of mechanism names"))?;
        let m = protocols::sasl::Mechanism::from_name(name).ok_or_else(|| {
            err(
                key,
                format!(
                    "unknown mechanism {name:?} (known: SCRAM-SHA-256, CRAM-MD5, PLAIN, LOGIN)"
                ),
            )
        })?;
        if out.contains(&m) {
            return Err(err(key, format!("{name} is listed twice")));
        }
        out.push(m);
    }
    Ok(out)
}

fn parse_limits(t: &toml::Table, out: &mut LimitsConfig) -> Result<(), ConfigError> {
    for (k, v) in t {
        let key = format!("limits.{k}");
        let positive = |v: &toml::Value| -> Result<i64, ConfigError> {
            match int(v, &key)? {
                0 => Err(err(&key, "must be at least 1")),
                n => Ok(n),
            }
        };
        match k.as_str() {
            "connections_per_ip" => out.connections_per_ip = small(v, &key)?.max(1),
            "connections_per_shard" => {
                let n = positive(v)?;
                if n as usize > crate::limits::SESSIONS_PER_SHARD_MAX {
                    return Err(err(
                        &key,
                        format!("at most {}", crate::limits::SESSIONS_PER_SHARD_MAX),
                    ));
                }
                out.connections_per_shard = n as u32;
            }
            "imap_commands_per_second" => out.imap_commands_per_second = small(v, &key)?.max(1),
            "idle_preauth_seconds" => out.idle_preauth_seconds = positive(v)? as u64,
            "idle_imap_seconds" => out.idle_imap_seconds = positive(v)? as u64,
            "idle_pop3_seconds" => out.idle_pop3_seconds = positive(v)? as u64,
            _ => return Err(err(&key, "unknown key")),
        }
    }
    Ok(())
}

fn parse_outbound(t: &toml::Table, out: &mut OutboundConfig) -> Result<(), ConfigError> {
    for (k, v) in t {
        let key = format!("outbound.{k}");
        let text = |v: &toml::Value| -> Result<String, ConfigError> {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| err(&key, "expected a string"))
        };
        match k.as_str() {
            "relay" => {
                let s = text(v)?;
                out.relay = if s.is_empty() {
                    None
                } else {
                    let port = s.rsplit_once(':').and_then(|(h, p)| {
                        (!h.is_empty()).then_some(())?;
                        p.parse::<u16>().ok().filter(|p| *p > 0)
                    });
                    if port.is_none() {
                        return Err(err(&key, format!("{s:?} is not \"host:port\"")));
                    }
                    Some(s)
                };
            }
            "tls" => {
                out.tls = match text(v)?.as_str() {
                    "opportunistic" => OutboundTls::Opportunistic,
                    "required" => OutboundTls::Required,
                    "off" => OutboundTls::Off,
                    other => {
                        return Err(err(
                            &key,
                            format!(
                                "{other:?}: expected \"opportunistic\", \"required\" or \"off\""
                            ),
                        ));
                    }
                }
            }
            "tls_ca" => out.tls_ca = PathBuf::from(text(v)?),
            "helo_name" => out.helo_name = text(v)?,
            "retry_window" => out.retry_window_seconds = duration(v, &key)?,
            "backoff" => {
                let arr = v
                    .as_array()
                    .ok_or_else(|| err(&key, "expected a list of durations"))?;
                let mut list = Vec::new();
                for item in arr {
                    list.push(duration(item, &key)?.max(1));
                }
                if list.is_empty() {
                    return Err(err(&key, "at least one interval is needed"));
                }
                out.backoff_seconds = list;
            }
            "timeout" => out.timeout_seconds = duration(v, &key)?.max(1),
            _ => return Err(err(&key, "unknown key")),
        }
    }
    Ok(())
}

/// Seconds, as a number or a string with a unit: `90`, `"90s"`, `"30m"`, `"4h"`, `"5d"`.
fn duration(v: &toml::Value, key: &str) -> Result<u64, ConfigError> {
    if let Some(n) = v.as_integer() {
        return u64::try_from(n).map_err(|_| err(key, "expected a non-negative duration"));
    }
    let s = v
        .as_str()
        .ok_or_else(|| err(key, "expected seconds or a duration like \"5d\""))?;
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err(key, format!("{s:?}: the unit must be s, m, h or d"))),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| err(key, format!("{s:?} is not a duration")))
}

fn small(v: &toml::Value, key: &str) -> Result<u32, ConfigError> {
    u32::try_from(int(v, key)?).map_err(|_| err(key, "too large"))
}

fn int(v: &toml::Value, key: &str) -> Result<i64, ConfigError> {
    match v.as_integer() {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(err(key, "expected a non-negative integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let c = Config::parse("").expect("empty config");
        assert_eq!(c, Config::default());
        assert_eq!(
            c.listen_addr(Service::Imap),
            Some("127.0.0.1:1143".parse().expect("addr"))
        );
        assert_eq!(c.store.fanout_levels, 2);
    }

    #[test]
    fn values_are_read() {
        let c = Config::parse(
            "[store]\nroots = [\"/a\", \"/b\"]\nfanout_levels = 3\n[engine]\nshards = 2\n\
             [listen]\nimap = \"127.0.0.1:9\"\npop3 = \"\"\n",
        )
        .expect("config");
        assert_eq!(
            c.store.roots,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(c.store.fanout_levels, 3);
        assert_eq!(c.shard_count(), 2);
        assert_eq!(c.listen_addr(Service::Pop3), None);
        assert_eq!(
            c.listen_addr(Service::Imap),
            Some("127.0.0.1:9".parse().expect("addr"))
        );
    }

    #[test]
    fn password_locations_per_domain() {
        let c = Config::parse(
            "[auth.domains.\"a.org\"]\nsource = \"passwd-file\"\npath = \"/p\"\n\
             user = \"local-part\"\n\
             [auth.domains.\"b.org\"]\nsource = \"ldap\"\nurl = \"ldap://127.0.0.1:389\"\n\
             base = \"dc=b\"\nfilter = \"(mail=%u)\"\n\
             [auth.domains.\"c.org\"]\nsource = \"shadow\"\n",
        )
        .expect("config");
        assert_eq!(
            c.auth.domains,
            vec![
                (
                    "a.org".to_owned(),
                    PasswordLocation::PasswdFile {
                        path: PathBuf::from("/p"),
                        local_part: true
                    }
                ),
                (
                    "b.org".to_owned(),
                    PasswordLocation::Ldap {
                        url: "ldap://127.0.0.1:389".into(),
                        dn_template: None,
                        base: Some("dc=b".into()),
                        filter: Some("(mail=%u)".into()),
                        bind_dn: None,
                        bind_password: None,
                        timeout_seconds: 5,
                    }
                ),
                (
                    "c.org".to_owned(),
                    PasswordLocation::Shadow {
                        path: PathBuf::from("/etc/shadow")
                    }
                ),
            ]
        );
    }

    #[test]
    fn outbound_is_read() {
        let c = Config::parse(
            "[outbound]\nrelay = \"smtp.example.net:25\"\ntls = \"off\"\n\
             retry_window = \"2d\"\nbackoff = [1, \"2m\"]\n",
        )
        .expect("config");
        assert_eq!(c.outbound.relay.as_deref(), Some("smtp.example.net:25"));
        assert_eq!(c.outbound.tls, OutboundTls::Off);
        assert_eq!(c.outbound.retry_window_seconds, 2 * 86_400);
        assert_eq!(c.outbound.backoff_seconds, vec![1, 120]);
        let c = Config::parse("[listen]\nlmtp_unix = \"/run/m\"\nlmtp_transport = \"unix\"\n")
            .expect("config");
        assert_eq!(
            c.lmtp_unix_path(1),
            Some(PathBuf::from("/run/m/shard-1.sock"))
        );
        assert_eq!(c.lmtp_transport, LmtpTransport::Unix);
        assert_eq!(
            Config::default().lmtp_unix_path(0),
            Some(PathBuf::from("./msgstore-data/lmtp/shard-0.sock"))
        );
    }

    #[test]
    fn errors_name_the_key_in_one_line() {
        let cases = [
            (
                "[listen]\nimapp = \"127.0.0.1:1\"\n",
                "`listen.imapp`: unknown key",
            ),
            ("[engine]\nshards = -1\n", "`engine.shards`"),
            ("[engine]\nshards = \"two\"\n", "`engine.shards`"),
            ("[store]\nfanout_levels = 4\n", "`store.fanout_levels`"),
            ("[store]\nroots = []\n", "`store.roots`"),
            ("[listen]\nimap = \"nowhere\"\n", "`listen.imap`"),
            ("[bogus]\n", "`bogus`: unknown section"),
            ("[tls]\ncrt = \"x\"\n", "`tls.crt`"),
            (
                "[auth]\nplaintext_without_tls = 1\n",
                "`auth.plaintext_without_tls`",
            ),
            (
                "[auth]\nfailures_before_block = 0\n",
                "`auth.failures_before_block`",
            ),
            ("[auth]\nmechanisms = [\"GSSAPI\"]\n", "`auth.mechanisms`"),
            ("[auth]\nmechanisms = \"PLAIN\"\n", "`auth.mechanisms`"),
            ("[auth]\ncram_md5 = \"yes\"\n", "`auth.cram_md5`"),
            (
                "[auth.domains.\"a.org\"]\nsource = \"nis\"\n",
                "`auth.domains.a.org.source`",
            ),
            (
                "[auth.domains.\"a.org\"]\nsource = \"passwd-file\"\n",
                "`auth.domains.a.org.path`",
            ),
            (
                "[auth.domains.\"a.org\"]\nsource = \"shadow\"\nurl = \"x\"\n",
                "`auth.domains.a.org.url`",
            ),
            (
                "[auth.domains.\"a.org\"]\nsource = \"ldap\"\nurl = \"ldap://h:1\"\n",
                "`auth.domains.a.org`",
            ),
            (
                "[auth.domains.\"A.org\"]\nsource = \"shadow\"\n",
                "`auth.domains.A.org`",
            ),
            (
                "[limits]\nidle_imap_seconds = 0\n",
                "`limits.idle_imap_seconds`",
            ),
            ("[limits]\nfoo = 1\n", "`limits.foo`"),
            (
                "[engine]\nshards = 2\naccept_shards = [5]\n",
                "`engine.accept_shards`",
            ),
            ("[store\n", "line 1"),
            ("[outbound]\nrelay = \"nowhere\"\n", "`outbound.relay`"),
            ("[outbound]\ntls = \"maybe\"\n", "`outbound.tls`"),
            (
                "[outbound]\nretry_window = \"5w\"\n",
                "`outbound.retry_window`",
            ),
            ("[outbound]\nbackoff = []\n", "`outbound.backoff`"),
            (
                "[listen]\nlmtp_transport = \"tcp\"\n",
                "`listen.lmtp_transport`",
            ),
            (
                "[listen]\nlmtp_unix = \"\"\nlmtp_transport = \"unix\"\n",
                "`listen.lmtp_transport`",
            ),
        ];
        for (text, want) in cases {
            let e = Config::parse(text).expect_err(text).to_string();
            assert!(e.contains(want), "{text:?} gave {e:?}");
            assert!(!e.contains('\n'), "{e:?} spans lines");
        }
    }
}
