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

`sslrootcert` is a PEM file of trusted CA certificates; without it, `verify-ca`/`verify-full` use the system's
trust store. `sslcert`/`sslkey` give a client certificate. Errors name the server (credentials redacted), say
whether TLS or authentication failed, and never contain a password.
*/

use std::str::FromStr;

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
}

/// Splits the libpq TLS settings out of `url`; returns the URL without them and the settings.
pub fn split_tls(url: &str) -> Result<(String, TlsSettings), ConnectError> {
    let mut tls = TlsSettings {
        mode: "prefer".into(),
        ..TlsSettings::default()
    };
    let mut take = |k: &str, v: String| -> bool {
        match k {
            "sslmode" => tls.mode = v,
            "sslrootcert" => tls.root_cert = Some(v),
            "sslcert" => tls.cert = Some(v),
            "sslkey" => tls.key = Some(v),
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
                        !take(k, percent_decode(v))
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
        for (k, v, raw) in key_values(url) {
            if !take(&k, v) {
                kept.push(raw);
            }
        }
        kept.join(" ")
    };
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
    Ok((rest, tls))
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&v[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `key=value` pairs of libpq's keyword form, values optionally in single quotes with `\\` escapes; also the raw
/// text of each pair.
fn key_values(s: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let start = i;
        let mut key = String::new();
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            key.push(chars[i]);
            i += 1;
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if i < chars.len() && chars[i] == '\'' {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    value.push(chars[i]);
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && !chars[i].is_whitespace() {
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }
        if !key.is_empty() {
            out.push((
                key,
                value,
                chars[start..i.min(chars.len())].iter().collect(),
            ));
        }
    }
    out
}

/// The URL with any password replaced by `***`, for logs and errors (URL form `user:password@`, and `password=`
/// in the keyword form).
pub fn redact(url: &str) -> String {
    if let (Some(s), Some(at)) = (url.find("://"), url.rfind('@')) {
        if at > s {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            return format!("{}://{masked}{}", &url[..s], &url[at..]);
        }
        return url.to_owned();
    }
    key_values(url)
        .into_iter()
        .map(|(k, _, raw)| {
            if k == "password" {
                "password=***".to_owned()
            } else {
                raw
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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
    if let Some(root) = &tls.root_cert {
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
    config.ssl_mode(match tls.mode.as_str() {
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        _ => SslMode::Require,
    });
    let failed = |e: tokio_postgres::Error| {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        ConnectError::Connect {
            url: redact(url),
            mode: tls.mode.clone(),
            reason,
        }
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
    Ok(client)
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
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("host=h password=secret user=u"),
            "host=h password=*** user=u"
        );
        assert!(!redact("host=h password='se cret' user=u").contains("se cret"));
    }
}
