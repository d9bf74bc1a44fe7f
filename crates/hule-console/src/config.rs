//! The console's configuration file (TOML): where it listens, the Kafka cluster, the users and its store.
//!
//! ```toml
//! listen = "127.0.0.1:8470"
//! store = "/var/lib/hule/console.db"   # SQLite: the audit log and the session key
//!
//! [kafka]
//! brokers = "kafka-1:9092"
//!
//! [[users]]
//! name = "alice"
//! role = "operator"                    # or "viewer"
//! password_hash = "$argon2id$v=19$..." # `hule console hash-password`
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page; sees no record payload and no action.
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

/// The file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleFile {
    /// Where to listen (default 127.0.0.1:8470).
    pub listen: Option<SocketAddr>,
    /// The SQLite file of the audit log and the session key (default `hule-console.db` in the working directory).
    pub store: Option<PathBuf>,
    /// The Kafka cluster.
    #[serde(default)]
    pub kafka: hule_kafka::KafkaSection,
    /// The users.
    #[serde(default)]
    pub users: Vec<User>,
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
        Ok(())
    }
}

/// The address the console listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";
