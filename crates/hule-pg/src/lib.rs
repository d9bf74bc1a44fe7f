/*!
One way to connect to PostgreSQL for every part of hule-events (outbox and relay, inbox, demo, bench), so that a
server that requires TLS works everywhere or nowhere.

The URL (`postgres://…` or `key=value` form) may carry libpq's TLS settings, which `tokio-postgres` alone does not
understand; they are taken out and applied here:

| `sslmode` | TLS | certificate checked | host name checked |
|---|---|---|---|
| `disable` | no | — | — |
| `prefer` (default, as libpq) | when the server offers it | no | no |
| `require` | yes | only when `sslrootcert` is given (then as `verify-ca`, as libpq) | no |
| `verify-ca` | yes | against `sslrootcert` | no |
| `verify-full` | yes | against `sslrootcert` | yes |

`sslrootcert` is a PEM file of trusted CA certificates. `verify-full` without it (or with `sslrootcert=system`)
uses the system's trust store; `verify-ca` without it is refused, as libpq refuses it: a chain check against every
public CA without a host name check proves nothing. When `prefer` ends in plaintext (the server offers no TLS), a
warning says so once per connection. `sslcert`/`sslkey` give a client certificate. Errors name the server (credentials redacted), say
whether TLS or authentication failed, and never contain a password.
*/

use std::str::FromStr;
use std::time::Duration;

use futures::StreamExt;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, Config};

/// A connection that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL or one of its TLS settings is wrong.
    #[error("invalid PostgreSQL URL `{url}`: {reason}")]
    Url {
        /// The URL, credentials redacted.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The server could not be reached, refused TLS, failed certificate checks or refused the login.
    #[error("cannot connect to PostgreSQL at {url} (sslmode {mode}): {reason}")]
    Connect {
        /// The URL, credentials redacted.
        url: String,
        /// The sslmode used.
        mode: String,
        /// The cause, from the driver and TLS library.
        reason: String,
    },
}

/// The TLS settings found in a URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// `sslmode` (`prefer` when absent).
    pub mode: String,
    /// `sslrootcert`.
    pub root_cert: Option<String>,
    /// `sslcert`.
    pub cert: Option<String>,
    /// `sslkey`.
    pub key: Option<String>,
    /// `server_keepalives` (hule's own parameter, taken out like the TLS ones): `off` sends no keepalive settings
    /// for the server's end in the startup `options` (for a pooler that refuses them, or PostgreSQL 11 and older,
    /// which do not know `tcp_user_timeout`); this end's keepalives stay.
    pub server_keepalives: bool,
}

/// Splits the libpq TLS settings out of `url`; returns the URL without them and the settings.
pub fn split_tls(url: &str) -> Result<(String, TlsSettings), ConnectError> {
    let mut tls = TlsSettings {
        mode: "prefer".into(),
        server_keepalives: true,
        ..TlsSettings::default()
    };
    let mut bad_switch = None;
    let mut mode_given = false;
    let mut take = |k: &str, v: String| -> bool {
        match k {
            "sslmode" => {
                tls.mode = v;
                mode_given = true;
            }
            "sslrootcert" => tls.root_cert = Some(v),
            "sslcert" => tls.cert = Some(v),
            "sslkey" => tls.key = Some(v),
            "server_keepalives" => match v.as_str() {
                "on" => tls.server_keepalives = true,
                "off" => tls.server_keepalives = false,
                other => bad_switch = Some(other.to_owned()),
            },
            _ => return false,
        }
        true
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(
                            &hule_secrets::percent_decode(k),
                            hule_secrets::percent_decode(v),
                        )
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for kw in hule_secrets::keywords(url) {
            if !take(&kw.key, kw.value) {
                kept.push(kw.raw);
            }
        }
        kept.join(" ")
    };
    if let Some(v) = bad_switch {
        return Err(ConnectError::Url {
            url: redact(url),
            reason: format!("server_keepalives `{v}` is not on or off"),
        });
    }
    if ![
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ]
    .contains(&tls.mode.as_str())
    {
        return Err(ConnectError::Url {
            url: redact(url),
            reason: format!(
                "sslmode `{}` is not one of disable, allow, prefer, require, verify-ca, verify-full",
                tls.mode
            ),
        });
    }
    // As libpq: `verify-ca` checks the chain against a CA the operator names; with the system's store every public
    // CA could vouch for any server (libpq refuses it for lack of a root certificate file, and refuses
    // `sslrootcert=system` with it).
    // As libpq 16: `sslrootcert=system` makes `verify-full` the default and refuses any weaker mode (a chain check
    // against every public CA without a host name check proves nothing; `prefer` would not even check).
    if tls.root_cert.as_deref() == Some("system") && !mode_given {
        tls.mode = "verify-full".into();
    }
    if tls.root_cert.as_deref() == Some("system")
        && tls.mode != "verify-full"
        && tls.mode != "verify-ca"
    {
        return Err(ConnectError::Url {
            url: redact(url),
            reason: "sslrootcert=system needs sslmode=verify-full (as libpq: a chain check against every public CA \
                     without a host name check proves nothing), which is its default"
                .into(),
        });
    }
    if tls.mode == "verify-ca" && tls.root_cert.as_deref().is_none_or(|r| r == "system") {
        return Err(ConnectError::Url {
            url: redact(url),
            reason: "sslmode verify-ca needs sslrootcert=<PEM file of the CA that signed the server's certificate>; \
                     use verify-full to check against the system's trust store"
                .into(),
        });
    }
    Ok((rest, tls))
}

/// The URL with every secret masked (user info password, `password`/`sslpassword` query parameters, keyword
/// form), for logs and errors: [`hule_secrets::redact_url`], the project's one redactor.
pub fn redact(url: &str) -> String {
    hule_secrets::redact_url(url)
}

fn connector(tls: &TlsSettings, url: &str) -> Result<MakeTlsConnector, ConnectError> {
    let bad = |reason: String| ConnectError::Url {
        url: redact(url),
        reason,
    };
    let mut b = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| bad(format!("TLS setup: {e}")))?;
    let verify = match tls.mode.as_str() {
        "verify-ca" | "verify-full" => true,
        "require" => tls.root_cert.is_some(),
        _ => false,
    };
    if let Some(root) = tls.root_cert.as_ref().filter(|r| *r != "system") {
        b.set_ca_file(root).map_err(|e| {
            bad(format!(
                "sslrootcert `{root}` is not a readable PEM file of CA certificates: {e}"
            ))
        })?;
    }
    if let Some(cert) = &tls.cert {
        b.set_certificate_chain_file(cert)
            .map_err(|e| bad(format!("sslcert `{cert}`: {e}")))?;
    }
    if let Some(key) = &tls.key {
        b.set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| bad(format!("sslkey `{key}`: {e}")))?;
    }
    b.set_verify(if verify {
        SslVerifyMode::PEER
    } else {
        SslVerifyMode::NONE
    });
    let mut make = MakeTlsConnector::new(b.build());
    let full = tls.mode == "verify-full";
    make.set_callback(move |config, _domain| {
        config.set_verify_hostname(full);
        Ok(())
    });
    Ok(make)
}

/// Connects to `url`; a task drives the connection and hands every asynchronous message (notifications, notices)
/// to `on_message`. The task ends, logging why, when the connection does.
pub async fn connect_with(
    url: &str,
    on_message: impl FnMut(AsyncMessage) + Send + 'static,
) -> Result<Client, ConnectError> {
    let (rest, tls) = split_tls(url)?;
    let mut config = Config::from_str(&rest).map_err(|e| ConnectError::Url {
        url: redact(url),
        reason: e.to_string(),
    })?;
    guard_half_open(&mut config, &rest, tls.server_keepalives);
    config.ssl_mode(match tls.mode.as_str() {
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        _ => SslMode::Require,
    });
    let failed = |e: tokio_postgres::Error| ConnectError::Connect {
        url: redact(url),
        mode: tls.mode.clone(),
        reason: hule_secrets::error_chain(&e),
    };
    let client = if tls.mode == "disable" {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(failed)?;
        tokio::spawn(drive(connection, on_message));
        client
    } else {
        let (client, connection) = config
            .connect(connector(&tls, url)?)
            .await
            .map_err(failed)?;
        tokio::spawn(drive(connection, on_message));
        client
    };
    if matches!(tls.mode.as_str(), "allow" | "prefer") {
        // `prefer` falls back to plaintext without saying so; the server knows what it negotiated.
        let ssl: Option<bool> = client
            .query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .ok()
            .flatten()
            .and_then(|row| row.try_get(0).ok());
        if ssl == Some(false) {
            tracing::warn!(url = %redact(url), "PostgreSQL connection is not encrypted: the server offers no TLS and sslmode is {} (set sslmode=require to refuse plaintext)", tls.mode);
        }
    }
    Ok(client)
}

/// How long a half-open connection (the peer gone without FIN or RST: a host crash, a partition) lives at most,
/// on both ends: the idle time before the first keepalive probe, plus three probes 5 s apart; and, while data waits
/// unacknowledged (where keepalives do not apply), the TCP user timeout.
pub const HALF_OPEN_BOUND: Duration = Duration::from_secs(20);

/// Sets TCP keepalives and the TCP user timeout on this end, and asks the server for the same on its end through the
/// startup `options` (`tcp_keepalives_*`, `tcp_user_timeout`, which any user may set per session), so that both
/// notice a dead peer within [`HALF_OPEN_BOUND`]. The server's end matters most: an advisory lock or a LISTEN is
/// held by the server's session, which would otherwise live until the operating system's keepalive (2 h by
/// default). Settings the URL names itself are left as given. PgBouncer refuses the startup `options` unless it
/// lists them in `ignore_startup_parameters` (and in transaction mode breaks advisory locks and LISTEN anyway); `server_keepalives=off` in the URL leaves them out.
fn guard_half_open(config: &mut Config, url_rest: &str, server_side: bool) {
    let names = parameter_names(url_rest);
    let named = |k: &str| names.iter().any(|n| n == k);
    // Each setting on its own: a URL that names one of them keeps the others at the bound's values.
    if !named("keepalives") {
        config.keepalives(true);
    }
    if !named("keepalives_idle") {
        config.keepalives_idle(Duration::from_secs(5));
    }
    if !named("keepalives_interval") {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if !named("keepalives_retries") {
        config.keepalives_retries(3);
    }
    if !named("tcp_user_timeout") {
        config.tcp_user_timeout(HALF_OPEN_BOUND);
    }
    if !named("connect_timeout") {
        config.connect_timeout(Duration::from_secs(10));
    }
    if !server_side {
        return;
    }
    let mut options = config.get_options().unwrap_or_default().to_owned();
    for (guc, value) in [
        ("tcp_keepalives_idle", "5"),
        ("tcp_keepalives_interval", "5"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "20000"),
    ] {
        if !options.contains(guc) {
            options.push_str(&format!(" -c {guc}={value}"));
        }
    }
    config.options(options.trim_start());
}

/// The parameter names a URL (query) or keyword string gives, so that settings are recognised by name, not by a
/// substring of a password or a database name.
fn parameter_names(url_rest: &str) -> Vec<String> {
    if url_rest.contains("://") {
        url_rest
            .split_once('?')
            .map(|(_, q)| {
                q.split('&')
                    .map(|pair| pair.split('=').next().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        hule_secrets::keywords(url_rest)
            .into_iter()
            .map(|kw| kw.key)
            .collect()
    }
}

async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    mut on_message: impl FnMut(AsyncMessage) + Send + 'static,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(m) = messages.next().await {
        match m {
            Ok(m) => on_message(m),
            Err(e) => {
                tracing::warn!(error = %e, "postgres connection ended");
                break;
            }
        }
    }
}

/// Connects to `url`, ignoring asynchronous messages.
pub async fn connect(url: &str) -> Result<Client, ConnectError> {
    connect_with(url, |_| {}).await
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_url_naming_one_keepalive_setting_keeps_the_others_at_the_bound() {
        let rest = "postgres://db/app?keepalives_idle=30";
        let mut config = Config::from_str(rest).expect("config");
        guard_half_open(&mut config, rest, false);
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(
            config.get_keepalives_interval(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(config.get_keepalives_retries(), Some(3));
        assert_eq!(config.get_tcp_user_timeout(), Some(&HALF_OPEN_BOUND));
    }

    use super::*;

    #[test]
    fn tls_settings_come_out_of_both_url_forms() {
        let (rest, tls) =
            split_tls("postgres://u:pw@h:5433/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem")
                .expect("ok");
        assert_eq!(rest, "postgres://u:pw@h:5433/db?application_name=x");
        assert_eq!(tls.mode, "verify-full");
        assert_eq!(tls.root_cert.as_deref(), Some("/tmp/ca.pem"));
        let (rest, tls) = split_tls(
            "host=127.0.0.1 sslmode=require sslrootcert='/a b/ca.pem' options='-c search_path=s'",
        )
        .expect("ok");
        assert_eq!(rest, "host=127.0.0.1 options='-c search_path=s'");
        assert_eq!(
            (tls.mode.as_str(), tls.root_cert.as_deref()),
            ("require", Some("/a b/ca.pem"))
        );
        let (_, tls) = split_tls("postgres://h/db").expect("ok");
        assert_eq!(tls.mode, "prefer", "libpq's default");
        let e =
            split_tls("postgres://u:secret@h/db?sslmode=verify-everything").expect_err("bad mode");
        assert!(e.to_string().contains("verify-everything") && !e.to_string().contains("secret"));
    }

    #[test]
    fn a_bad_escape_before_a_multibyte_character_is_no_panic() {
        let (rest, tls) = split_tls("postgres://h/db?sslrootcert=%aé&sslmode=require").expect("ok");
        assert_eq!(
            (rest.as_str(), tls.root_cert.as_deref()),
            ("postgres://h/db", Some("%aé"))
        );
        let _ = split_tls("host=h sslrootcert='%a\u{e9}");
    }
}
