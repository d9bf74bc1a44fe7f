//! The services the console watches: each one's outbox (a connection opened on first use and opened again after
//! it fails) and its relay's health endpoint. A database or an endpoint that does not answer is a verdict on that
//! service's row, never an error of the page; every call is bounded by [`PROBE_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use hule_outbox::model::{Gauges, Listed};
use hule_outbox::store::RetryTarget;
use hule_outbox::{OutboxStore as _, PgOutbox};
use tokio::sync::Mutex;

use crate::config::Service;

/// How long one database query or health request may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One service's connections.
pub struct Watched {
    /// Its configuration.
    pub service: Service,
    outbox: Mutex<Slot>,
}

/// A service's outbox connection: none yet, open, or failed a moment ago (then callers fail at once for
/// [`RETRY_AFTER`] instead of each waiting for its own connect).
#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    Open(Arc<PgOutbox>),
    Failed(String, std::time::Instant),
}

/// How long a failed connect is remembered.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What a probe of one service found.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// The service.
    pub name: String,
    /// Its outbox's gauges, or why they cannot be read (`None`: no outbox configured).
    pub outbox: Option<Result<Gauges, String>>,
    /// Its health endpoint's verdict: (HTTP status, first line of the body), or why it did not answer.
    pub health: Option<Result<(u16, String), String>>,
}

/// Every service.
pub struct Services {
    watched: Vec<Watched>,
    http: reqwest::Client,
}

/// `text` without `url` or its password, whatever an error message quotes of it.
fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &hule_secrets::redact_url(url));
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(info, _)| info);
    if let Some((_, password)) = userinfo.and_then(|i| i.split_once(':')) {
        for p in [password.to_owned(), hule_secrets::percent_decode(password)] {
            if !p.is_empty() {
                out = out.replace(&p, "***");
            }
        }
    }
    out
}

fn timed_out(what: &str) -> String {
    format!("{what} did not answer within {PROBE_TIMEOUT:?}")
}

impl Services {
    /// Watches `services`.
    pub fn new(services: &[Service]) -> Self {
        Services {
            watched: services
                .iter()
                .map(|s| Watched {
                    service: s.clone(),
                    outbox: Mutex::new(Slot::Empty),
                })
                .collect(),
            http: reqwest::Client::builder()
                .timeout(PROBE_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    /// The services' names.
    pub fn names(&self) -> Vec<&str> {
        self.watched
            .iter()
            .map(|w| w.service.name.as_str())
            .collect()
    }

    fn get(&self, name: &str) -> Option<&Watched> {
        self.watched.iter().find(|w| w.service.name == name)
    }

    /// The outbox of `name`, connected when it was not (a failed connection is forgotten, so the next call tries
    /// again). The error never holds the URL's password.
    pub async fn outbox(&self, name: &str) -> Result<Arc<PgOutbox>, String> {
        let w = self
            .get(name)
            .ok_or_else(|| format!("no service `{name}`"))?;
        let url = w
            .service
            .outbox_url()
            .ok_or_else(|| format!("service `{name}` has no outbox configured"))?;
        let mut slot = w.outbox.lock().await;
        match &*slot {
            Slot::Open(o) => return Ok(o.clone()),
            Slot::Failed(e, at) if at.elapsed() < RETRY_AFTER => return Err(e.clone()),
            _ => {}
        }
        let opened = match tokio::time::timeout(PROBE_TIMEOUT, PgOutbox::open_existing(&url)).await
        {
            Err(_) => Err(timed_out("the outbox database")),
            Ok(r) => r.map_err(|e| scrub(&e.to_string(), &url)),
        };
        match opened {
            Ok(o) => {
                let o = Arc::new(o);
                *slot = Slot::Open(o.clone());
                Ok(o)
            }
            Err(e) => {
                *slot = Slot::Failed(e.clone(), std::time::Instant::now());
                Err(e)
            }
        }
    }

    /// Runs `f` on `name`'s outbox within [`PROBE_TIMEOUT`]; a failure drops the connection (it is opened again on
    /// the next call).
    pub async fn with_outbox<T, F, Fut>(&self, name: &str, f: F) -> Result<T, String>
    where
        F: FnOnce(Arc<PgOutbox>) -> Fut,
        Fut: std::future::Future<Output = Result<T, hule_outbox::StoreError>>,
    {
        let o = self.outbox(name).await?;
        let url = o.url().to_owned();
        let out = match tokio::time::timeout(PROBE_TIMEOUT, f(o)).await {
            Err(_) => Err(timed_out("the outbox database")),
            Ok(r) => r.map_err(|e| scrub(&e.to_string(), &url)),
        };
        if let Err(e) = &out {
            if let Some(w) = self.get(name) {
                *w.outbox.lock().await = Slot::Failed(e.clone(), std::time::Instant::now());
            }
        }
        out
    }

    /// Probes every service at once.
    pub async fn probe(&self) -> Vec<Probe> {
        let probes = self.watched.iter().map(|w| async move {
            let name = w.service.name.clone();
            let outbox = match w.service.outbox {
                None => None,
                Some(_) => Some(
                    self.with_outbox(&name, |o| async move { o.gauges().await })
                        .await,
                ),
            };
            let health = match &w.service.health {
                None => None,
                Some(url) => Some(match self.http.get(url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body = r.text().await.unwrap_or_default();
                        Ok((
                            status,
                            body.lines()
                                .next()
                                .unwrap_or("")
                                .chars()
                                .take(200)
                                .collect(),
                        ))
                    }
                    Err(e) if e.is_timeout() => Err(timed_out("the health endpoint")),
                    Err(e) => Err(format!(
                        "the health endpoint cannot be reached ({})",
                        if e.is_connect() {
                            "connection refused or unreachable"
                        } else {
                            "request failed"
                        }
                    )),
                }),
            };
            Probe {
                name,
                outbox,
                health,
            }
        });
        futures::future::join_all(probes).await
    }

    /// Unpublished rows of `name`: parked or pending.
    pub async fn rows(&self, name: &str, parked: bool, limit: i64) -> Result<Vec<Listed>, String> {
        self.with_outbox(name, |o| async move { o.list(parked, limit).await })
            .await
    }

    /// Every service's unpublished rows whose event id, key or correlation id is `q`: (service, row).
    pub async fn find(&self, q: &str) -> Vec<(String, Result<Vec<Listed>, String>)> {
        let finds = self
            .watched
            .iter()
            .filter(|w| w.service.outbox.is_some())
            .map(|w| async move {
                let name = w.service.name.clone();
                let q = q.to_owned();
                let found = self
                    .with_outbox(&name, |o| async move { o.find(&q, 500).await })
                    .await;
                (name, found)
            });
        futures::future::join_all(finds).await
    }

    /// Makes `target`'s parked or failed rows of `name` due now; returns how many.
    pub async fn retry(&self, name: &str, target: RetryTarget) -> Result<u64, String> {
        self.with_outbox(name, |o| async move { o.retry(target).await })
            .await
    }

    /// Discards `target`'s failed rows of `name` for `reason` (kept in `hule_outbox_discarded`); returns how many.
    pub async fn discard(
        &self,
        name: &str,
        target: RetryTarget,
        reason: String,
    ) -> Result<usize, String> {
        self.with_outbox(name, |o| async move {
            o.discard(target, &reason).await.map(|d| d.len())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_password_survives_a_scrubbed_error() {
        let url = "postgresql://console:s%3Dcret@db/essays";
        let e = format!("cannot connect to {url}: password s=cret refused");
        let shown = super::scrub(&e, url);
        assert!(
            !shown.contains("s=cret") && !shown.contains("s%3Dcret"),
            "{shown}"
        );
    }
}
