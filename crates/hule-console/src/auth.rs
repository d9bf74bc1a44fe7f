//! Logins and sessions: argon2 password hashes, a signed session cookie (user, role, CSRF token, expiry) and a
//! limit on failed logins.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::config::Role;

/// The session cookie's name.
pub const COOKIE: &str = "hule_session";

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// An argon2id hash of `password` (a PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A logged-in user, as the signed cookie carries it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// The user.
    pub user: String,
    /// The role.
    pub role: Role,
    /// The token every form of this session carries.
    pub csrf: String,
    /// Seconds since the epoch when it ends.
    pub expires: i64,
    /// Vouched for by the OpenID Connect provider (its role then comes from `[oidc] operators`).
    #[serde(default)]
    pub sso: bool,
}

impl Session {
    /// A new session for `user`.
    pub fn new(user: &str, role: Role) -> Session {
        Session {
            user: user.to_owned(),
            role,
            csrf: uuid::Uuid::new_v4().simple().to_string(),
            expires: chrono::Utc::now().timestamp() + SESSION_TTL.as_secs() as i64,
            sso: false,
        }
    }

    /// The session a cookie value holds, if it has not ended.
    pub fn from_cookie(value: &str) -> Option<Session> {
        let s: Session = serde_json::from_str(value).ok()?;
        (s.expires > chrono::Utc::now().timestamp()).then_some(s)
    }

    /// The cookie value.
    pub fn to_cookie(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether this session may act.
    pub fn operator(&self) -> bool {
        self.role == Role::Operator
    }
}

/// Failed logins per name: at most [`LoginLimiter::MAX_FAILURES`] in [`LoginLimiter::WINDOW`].
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    /// Failures allowed per window.
    pub const MAX_FAILURES: u32 = 5;
    /// The window.
    pub const WINDOW: Duration = Duration::from_secs(60);

    /// Counts an attempt of `name` (as a failure until [`LoginLimiter::succeeded`] says otherwise) and says whether
    /// it may go ahead: counted before the check, so guesses sent in parallel cannot all pass.
    pub fn try_attempt(&self, name: &str) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Names kept are bounded: past 10,000, the windows that have ended are forgotten.
        if map.len() > 10_000 {
            map.retain(|_, (_, since)| since.elapsed() <= Self::WINDOW);
        }
        let entry = map.entry(name.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() > Self::WINDOW {
            *entry = (0, Instant::now());
        }
        if entry.0 >= Self::MAX_FAILURES {
            return false;
        }
        entry.0 += 1;
        true
    }

    /// Forgets `name`'s failures (after a success).
    pub fn succeeded(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

/// A dummy hash to verify against when the name is unknown, so that a wrong name takes as long as a wrong password.
pub fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("no such user").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horse!", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn the_limiter_stops_the_sixth_failure_in_a_minute() {
        let l = LoginLimiter::default();
        for _ in 0..LoginLimiter::MAX_FAILURES {
            assert!(l.try_attempt("eve"));
        }
        assert!(!l.try_attempt("eve"), "the sixth attempt in the window");
        assert!(l.try_attempt("bob"));
        l.succeeded("eve");
        assert!(l.try_attempt("eve"));
    }

    #[test]
    fn an_ended_session_is_not_one() {
        let mut s = Session::new("a", Role::Viewer);
        assert!(Session::from_cookie(&s.to_cookie()).is_some());
        s.expires = 0;
        assert!(Session::from_cookie(&s.to_cookie()).is_none());
        assert!(Session::from_cookie("garbage").is_none());
    }
}
