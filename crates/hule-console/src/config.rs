//! The console's configuration file (TOML): where it listens, the Kafka cluster, the users and its store.
//!
//! ```toml
//! listen = "127.0.0.1:8470"
//! store = "/var/lib/hule/console.db"   # SQLite: the audit log and the session key (the index: console.db-index)
//! tls_cert = "/etc/hule/console.crt"   # optional: serve HTTPS (PEM chain)
//! tls_key = "/etc/hule/console.key"    # and its PKCS#8 PEM key
//!
//! [kafka]
//! brokers = "kafka-1:9092"
//!
//! [[users]]
//! name = "alice"
//! role = "operator"                    # or "viewer"
//! password_hash = "$argon2id$v=19$..." # `hule console hash-password`
//!
//! [[services]]                         # each service whose outbox and health the console shows
//! name = "essay-svc"
//! outbox = "postgresql://console@db/essays"   # never shown on a page
//! schema = "essays"                    # optional: the schema holding event_outbox
//! health = "http://essay-svc:9100/healthz"    # optional: its relay's /healthz
//!
//! [oidc]                               # optional: log in through an OpenID Connect provider
//! issuer = "https://sso.example.org/realms/huleedu"
//! client_id = "hule-console"
//! client_secret = "..."                # or $HULE_CONSOLE_OIDC_CLIENT_SECRET
//! redirect_url = "https://console.example.org/oidc/callback"
//! operators = ["olga", "pat@example.org"]   # the others are viewers
//!
//! [index]                              # what the index of every topic keeps
//! max_age_days = 7
//! max_rows = 5000000
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page (personal data masked); no action.
    Viewer,
    /// Reads and acts (replays).
    Operator,
}

/// A local user.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// An argon2 PHC string (`hule console hash-password` makes one); never the password itself.
    pub password_hash: String,
}

/// The hash is not shown.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A service the console watches.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Its name (as the pages show it).
    pub name: String,
    /// Its outbox database URL (PostgreSQL); credentials in it are never shown.
    pub outbox: Option<String>,
    /// The schema holding its `event_outbox` (a plain name).
    pub schema: Option<String>,
    /// Its relay's health endpoint (`/healthz`).
    pub health: Option<String>,
}

/// The URL is not shown.
impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// The outbox URL the console connects with, when the service has an outbox: its schema as the search_path,
    /// and a 3 s `statement_timeout`, so a query the console gave up on does not go on running on the server (a URL
    /// that sets `options` itself is used as it is).
    pub fn outbox_url(&self) -> Option<String> {
        let url = self.outbox.as_ref()?;
        if url.contains("options=") {
            return Some(url.clone());
        }
        let mut options = String::from("-cstatement_timeout%3D3000");
        if let Some(schema) = &self.schema {
            options.push_str(&format!("%20-csearch_path%3D{schema}"));
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        Some(format!("{url}{sep}options={options}"))
    }
}

/// What the index keeps.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSection {
    /// Days a record stays indexed.
    #[serde(default = "default_days")]
    pub max_age_days: u32,
    /// Rows kept at most.
    #[serde(default = "default_rows")]
    pub max_rows: i64,
}

fn default_days() -> u32 {
    7
}

fn default_rows() -> i64 {
    5_000_000
}

impl Default for IndexSection {
    fn default() -> Self {
        IndexSection {
            max_age_days: default_days(),
            max_rows: default_rows(),
        }
    }
}

impl IndexSection {
    /// As the index takes it.
    pub fn retention(&self) -> crate::index::Retention {
        crate::index::Retention {
            max_age: std::time::Duration::from_secs(u64::from(self.max_age_days) * 86_400),
            max_rows: self.max_rows,
        }
    }
}

/// The file.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleFile {
    /// Where to listen (default 127.0.0.1:8470).
    pub listen: Option<SocketAddr>,
    /// The SQLite file of the audit log and the session key (default `hule-console.db` in the working directory),
    /// the index being the file beside it (`<store>-index`); or a `postgresql://` URL, where several consoles share
    /// all of it.
    pub store: Option<PathBuf>,
    /// The Kafka cluster.
    #[serde(default)]
    pub kafka: hule_kafka::KafkaSection,
    /// The users.
    #[serde(default)]
    pub users: Vec<User>,
    /// The services.
    #[serde(default)]
    pub services: Vec<Service>,
    /// The index's retention.
    #[serde(default)]
    pub index: IndexSection,
    /// Serve HTTPS: the PEM certificate chain.
    pub tls_cert: Option<PathBuf>,
    /// Serve HTTPS: the PKCS#8 PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Logins through an OpenID Connect provider.
    pub oidc: Option<crate::oidc::OidcConfig>,
}

/// A PostgreSQL store's password is not shown.
impl std::fmt::Debug for ConsoleFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleFile")
            .field("listen", &self.listen)
            .field(
                "store",
                &self
                    .store
                    .as_ref()
                    .map(|s| hule_pg::redact(&s.to_string_lossy())),
            )
            .field("users", &self.users)
            .field("services", &self.services)
            .field("oidc", &self.oidc)
            .finish_non_exhaustive()
    }
}

impl ConsoleFile {
    /// Reads and checks `path`: every user named once, with a hash that parses.
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the console configuration {}: {e}",
                path.display()
            )
        })?;
        let file: ConsoleFile =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        file.check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(file)
    }

    /// Every user named once, each hash an argon2 PHC string.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for u in &self.users {
            if u.name.trim().is_empty() {
                return Err("a user has an empty name".into());
            }
            if !seen.insert(u.name.as_str()) {
                return Err(format!("user `{}` is named twice", u.name));
            }
            password_hash::PasswordHash::new(&u.password_hash).map_err(|e| {
                format!(
                    "user `{}`: password_hash is not a PHC string ({e}); make one with `hule console hash-password`",
                    u.name
                )
            })?;
        }
        check_services(&self.services)?;
        if let Some(o) = &self.oidc {
            o.check()?;
        }
        if self.index.max_age_days == 0 || self.index.max_rows < 1000 {
            return Err(
                "[index]: max_age_days must be at least 1 and max_rows at least 1000".into(),
            );
        }
        Ok(())
    }
}

/// Every service named once with a plain name; a schema a plain identifier; URLs of the right kind.
pub fn check_services(services: &[Service]) -> Result<(), String> {
    let plain = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    let mut seen = std::collections::HashSet::new();
    for s in services {
        if !plain(&s.name, 64) {
            return Err(format!(
                "service name `{}` must be lower-case letters, digits, - and _",
                s.name
            ));
        }
        if !seen.insert(s.name.as_str()) {
            return Err(format!("service `{}` is named twice", s.name));
        }
        if let Some(schema) = &s.schema {
            if !plain(schema, 63) || schema.contains('-') {
                return Err(format!(
                    "service `{}`: schema `{schema}` is not a plain schema name",
                    s.name
                ));
            }
            if s.outbox.as_deref().is_some_and(|u| u.contains("options=")) {
                return Err(format!(
                    "service `{}`: give the schema or an `options` key in the URL, not both",
                    s.name
                ));
            }
        }
        if let Some(url) = &s.outbox {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(format!(
                    "service `{}`: outbox must be a postgres:// or postgresql:// URL",
                    s.name
                ));
            }
        }
        if let Some(h) = &s.health {
            if !(h.starts_with("http://") || h.starts_with("https://")) {
                return Err(format!(
                    "service `{}`: health must be an http:// or https:// URL",
                    s.name
                ));
            }
        }
    }
    Ok(())
}

/// The address the console listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";
