//! The Redis dedup store, on the maintained `redis` crate: one multiplexed connection (concurrent commands of all
//! partitions are pipelined on it) managed by `ConnectionManager`, which reconnects after the server restarts or
//! drops the connection. URLs are the crate's: `redis://[user][:password@]host:port[/db]`, `rediss://…` for TLS
//! (rustls), and `redis+unix:///path`. A `sslrootcert=/path/ca.pem` query parameter (libpq's name, as for
//! PostgreSQL) names the CA that signed the server's certificate when it is not a public one.
//!
//! Keys and values are those of the original's `idempotency_v2` header path: `huleedu:idempotency:v2:<namespace>:
//! <event_type with . → _>:<hex sha256 of {"event_id":"<id>"}>`, holding `{"status":"processing"|"completed", …}`
//! JSON (plus `claim_owner`, the claim's owner token, which the original ignores). The namespace is the consumer
//! group, as in the PostgreSQL inbox (the original puts its service name there, so that two consumer groups of one
//! service skip each other's events): a Rust and a Python consumer recognise each other's work when the Python
//! service's name is the Rust consumer's group. Moving a Rust consumer from an earlier release (which used the
//! service name) to this one would forget its completion markers: a service with one consumer group can keep
//! `EventConsumerBuilder::dedup_namespace("<service name>")` (or `standard_stack_in`) for good, upgrading every
//! member together; switching namespace at any time forgets the old markers, so redeliveries within one
//! completion TTL after the switch are handled again. Do not change the group id for this: a new group has no
//! committed offsets and replays the topics.
//!
//! This replaces a hand-written RESP client; `hule bench --only consumer` measured both on the same machine
//! (BENCHMARKS.md).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::dedup::{Claim, DedupKey, DedupStore, StoreUnavailable};

/// The URL with every secret masked, for errors and logs ([`hule_secrets::redact_url`], the project's one
/// redactor: a password in the user info, a lone user info (an old-style `redis://PASSWORD@host`), and secret
/// query parameters).
pub fn redact(url: &str) -> String {
    hule_secrets::redact_url(url)
}

/// Splits our `sslrootcert` parameter off a Redis URL.
fn split_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(path) => {
                root = Some(path.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, root)
}

/// The Redis dedup store.
pub struct RedisDedup {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    url: String,
    prefix: String,
    /// Whether the server takes `SET … NX … GET` (Redis ≥ 7.0); cleared at the first refusal.
    nx_get: std::sync::atomic::AtomicBool,
}

impl RedisDedup {
    /// A store on `url` with the original's key prefix `huleedu:idempotency:v2`. The URL is checked now; the
    /// connection is made on first use (and remade whenever it breaks), with 2 s connect and response timeouts.
    pub fn new(url: &str) -> Result<Self, StoreUnavailable> {
        let (rest, root) = split_root_cert(url);
        let bad = |reason: String| StoreUnavailable {
            store: "redis",
            reason: format!("`{}`: {reason}", redact(url)),
        };
        let client = match root {
            None => redis::Client::open(rest.as_str())
                .map_err(|e| bad(format!("not a Redis URL: {e}")))?,
            Some(path) => {
                let pem =
                    std::fs::read(&path).map_err(|e| bad(format!("sslrootcert `{path}`: {e}")))?;
                redis::Client::build_with_tls(
                    rest.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
                .map_err(|e| bad(format!("not a Redis URL or CA: {e}")))?
            }
        };
        Ok(RedisDedup {
            client,
            conn: OnceCell::new(),
            url: redact(url),
            prefix: "huleedu:idempotency:v2".into(),
            nx_get: std::sync::atomic::AtomicBool::new(true),
        })
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> StoreUnavailable {
        StoreUnavailable {
            store: "redis",
            reason: format!("{}: {reason}", self.url),
        }
    }

    /// The managed connection, made on first use.
    async fn conn(&self) -> Result<ConnectionManager, StoreUnavailable> {
        self.conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Duration::from_secs(2))
                    .set_response_timeout(Duration::from_secs(2))
                    .set_number_of_retries(2)
                    .set_max_delay(500);
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await
            .cloned()
            .map_err(|e| self.unavailable(e))
    }

    /// Runs one command.
    async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreUnavailable> {
        let mut conn = self.conn().await?;
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// Checks that Redis answers `PING` (and that the login, database and TLS settings are accepted).
    pub async fn ping(&self) -> Result<(), StoreUnavailable> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }

    /// The key of an event, as the original computes it on its header path. Built without a temporary string
    /// (with [`RedisDedup::value`] this was a tenth of the consumer's samples with Redis dedup, perf, 2026-12-07).
    pub fn key(&self, key: &DedupKey) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = uuid::Uuid::encode_buffer();
        let hash = Sha256::new()
            .chain_update(b"{\"event_id\":\"")
            .chain_update(key.event_id.hyphenated().encode_lower(&mut id).as_bytes())
            .chain_update(b"\"}")
            .finalize();
        let mut out = String::with_capacity(
            self.prefix.len() + key.service.len() + key.event_type.len() + 3 + 64,
        );
        for part in [self.prefix.as_str(), ":", &key.service, ":"] {
            out.push_str(part);
        }
        out.extend(
            key.event_type
                .chars()
                .map(|c| if c == '.' { '_' } else { c }),
        );
        out.push(':');
        for b in hash {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// Now, as the stored values write it (seconds since the epoch with a fraction, as Python's `time.time()`
    /// dumps), formatted once for a pipeline's values.
    fn now() -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        now.to_string()
    }

    /// The stored JSON value, field for field the original's, at `now` ([`RedisDedup::now`]). Written directly:
    /// this runs twice per record.
    fn value(key: &DedupKey, status: &str, now: &str) -> String {
        let mut out = String::with_capacity(
            224 + now.len() * 2 + key.service.len() + key.source_service.len(),
        );
        let uuid = |out: &mut String, name: &str, id: uuid::Uuid| {
            out.push_str(name);
            out.push_str(
                id.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            );
            out.push('"');
        };
        out.push_str("{\"status\":\"");
        out.push_str(status);
        out.push_str("\",\"started_at\":");
        out.push_str(now);
        out.push_str(",\"processed_by\":");
        push_json_string(&mut out, &key.service);
        uuid(&mut out, ",\"event_id\":\"", key.event_id);
        uuid(&mut out, ",\"correlation_id\":\"", key.correlation_id);
        out.push_str(",\"source_service\":");
        push_json_string(&mut out, &key.source_service);
        uuid(&mut out, ",\"claim_owner\":\"", key.owner);
        if status == "completed" {
            out.push_str(",\"completed_at\":");
            out.push_str(now);
        }
        out.push('}');
        out
    }
}

/// Appends `s` as a JSON string, as serde_json writes it: between quotes as it is when it is printable ASCII
/// without a quote or a backslash (service names are), else through serde_json.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    }
}

/// Reads a stored value the way the original does: `processing` is in progress; `completed`, a missing status
/// and a non-JSON legacy value are done.
fn stored_claim(value: &[u8]) -> Claim {
    match serde_json::from_slice::<serde_json::Value>(value) {
        Ok(v) if v.get("status").and_then(|s| s.as_str()) == Some("processing") => {
            Claim::InProgress
        }
        _ => Claim::AlreadyDone,
    }
}

impl DedupStore for RedisDedup {
    fn method(&self) -> &'static str {
        "redis"
    }

    fn claim<'a>(
        &'a self,
        key: &'a DedupKey,
        lock_ttl: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreUnavailable>> {
        async move {
            let k = self.key(key);
            let v = Self::value(key, "processing", &Self::now());
            let ms = lock_ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
            // SET NX can lose to a key that expires before the GET; try again then.
            for _ in 0..3 {
                let set: Option<String> = self
                    .query(
                        redis::cmd("SET")
                            .arg(&k)
                            .arg(&v)
                            .arg("NX")
                            .arg("PX")
                            .arg(ms),
                    )
                    .await?;
                if set.is_some() {
                    return Ok(Claim::Acquired);
                }
                let existing: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(&k)).await?;
                if let Some(existing) = existing {
                    return Ok(stored_claim(&existing));
                }
            }
            Ok(Claim::InProgress)
        }
        .boxed()
    }

    /// One pipeline of `SET key value NX PX lease GET` (Redis 7: sets when absent, and answers the value that was
    /// there), so a run of records is claimed in one round trip. A server that refuses the form (Redis before 7.0
    /// rejects `NX` with `GET`) gets the claims one by one from then on.
    fn claim_many<'a>(
        &'a self,
        keys: &'a [DedupKey],
        lock_ttl: Duration,
    ) -> BoxFuture<'a, Vec<Result<Claim, StoreUnavailable>>> {
        async move {
            if !self.nx_get.load(std::sync::atomic::Ordering::Relaxed) {
                return crate::dedup::claim_each(self, keys, lock_ttl).await;
            }
            let ms = lock_ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
            let (mut pipe, now) = (redis::pipe(), Self::now());
            for key in keys {
                pipe.cmd("SET")
                    .arg(self.key(key))
                    .arg(Self::value(key, "processing", &now))
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .arg("GET");
            }
            let mut conn = match self.conn().await {
                Ok(c) => c,
                Err(e) => return keys.iter().map(|_| Err(e.clone())).collect(),
            };
            match pipe.query_async::<Vec<Option<Vec<u8>>>>(&mut conn).await {
                Ok(previous) if previous.len() == keys.len() => previous
                    .into_iter()
                    .map(|p| Ok(p.map_or(Claim::Acquired, |v| stored_claim(&v))))
                    .collect(),
                Ok(previous) => {
                    let e = self.unavailable(format!("{} answers to {} claims", previous.len(), keys.len()));
                    keys.iter().map(|_| Err(e.clone())).collect()
                }
                Err(e) if e.kind() == redis::ErrorKind::ResponseError => {
                    // Nothing was set: a syntax error rejects the command before it runs.
                    tracing::info!(error = %e, "Redis refuses SET NX GET; claiming one record at a time");
                    self.nx_get.store(false, std::sync::atomic::Ordering::Relaxed);
                    crate::dedup::claim_each(self, keys, lock_ttl).await
                }
                Err(e) => {
                    let e = self.unavailable(e);
                    keys.iter().map(|_| Err(e.clone())).collect()
                }
            }
        }
        .boxed()
    }

    /// One pipeline of `SET key value PX ttl`.
    fn complete_many<'a>(
        &'a self,
        keys: &'a [(DedupKey, Duration)],
    ) -> BoxFuture<'a, Vec<Result<(), StoreUnavailable>>> {
        async move {
            let (mut pipe, now) = (redis::pipe(), Self::now());
            for (key, ttl) in keys {
                let ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
                pipe.cmd("SET")
                    .arg(self.key(key))
                    .arg(Self::value(key, "completed", &now))
                    .arg("PX")
                    .arg(ms)
                    .ignore();
            }
            let result = match self.conn().await {
                Ok(mut conn) => pipe
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| self.unavailable(e)),
                Err(e) => Err(e),
            };
            keys.iter().map(|_| result.clone()).collect()
        }
        .boxed()
    }

    fn complete<'a>(
        &'a self,
        key: &'a DedupKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreUnavailable>> {
        async move {
            let k = self.key(key);
            let v = Self::value(key, "completed", &Self::now());
            let ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
            self.query::<()>(redis::cmd("SET").arg(&k).arg(&v).arg("PX").arg(ms))
                .await
        }
        .boxed()
    }

    fn release<'a>(&'a self, key: &'a DedupKey) -> BoxFuture<'a, Result<(), StoreUnavailable>> {
        async move {
            let k = self.key(key);
            self.query::<i64>(
                redis::cmd("EVAL")
                    .arg(RELEASE_OWNED)
                    .arg(1)
                    .arg(&k)
                    .arg(owner_mark(key)),
            )
            .await
            .map(|_| ())
        }
        .boxed()
    }

    fn extend<'a>(
        &'a self,
        key: &'a DedupKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), StoreUnavailable>> {
        async move {
            let k = self.key(key);
            let ms = lease.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
            self.query::<i64>(
                redis::cmd("EVAL")
                    .arg(RENEW_OWNED)
                    .arg(1)
                    .arg(&k)
                    .arg(owner_mark(key))
                    .arg(ms)
                    .arg(Self::now()),
            )
            .await
            .map(|_| ())
        }
        .boxed()
    }
}

/// The owner token as it appears in a claim's value.
fn owner_mark(key: &DedupKey) -> String {
    format!("\"claim_owner\":\"{}\"", key.owner)
}

/// Deletes the claim only while it is `processing` and holds the caller's owner token (a completion, or a claim a
/// successor made after this one's lease lapsed, stays). One script: the check and the delete are atomic.
const RELEASE_OWNED: &str = "local v = redis.call('GET', KEYS[1]) \
    if v and string.find(v, '\"status\":\"processing\"', 1, true) and string.find(v, ARGV[1], 1, true) then \
    return redis.call('DEL', KEYS[1]) end return 0";

/// Renews the claim only while it is `processing` and holds the caller's owner token (a completion written
/// meanwhile keeps its TTL; a successor's claim is not this consumer's to renew). Its `started_at` is renewed too
/// (to `ARGV[3]`): the original deletes a `processing` value that started more than 300 s ago as abandoned, so a
/// claim this consumer keeps alive past that must not look so to a Python consumer of the same namespace.
const RENEW_OWNED: &str = "local v = redis.call('GET', KEYS[1]) \
    if v and string.find(v, '\"status\":\"processing\"', 1, true) and string.find(v, ARGV[1], 1, true) then \
    local renewed = string.gsub(v, '\"started_at\":[^,}]*', '\"started_at\":' .. ARGV[3], 1) \
    redis.call('SET', KEYS[1], renewed, 'PX', ARGV[2]) return 1 end return 0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_matches_the_originals_header_path() {
        // Reference section f: event id 1111… gives sha256 ff5a8c78…09bf9 and this key layout.
        let store = RedisDedup::new("redis://127.0.0.1:6379").expect("url");
        let key = DedupKey {
            service: "svc".into(),
            event_id: "11111111-1111-1111-1111-111111111111"
                .parse()
                .expect("uuid"),
            event_type: "huleedu.cj_assessment.completed.v1".into(),
            correlation_id: uuid::Uuid::nil(),
            source_service: "x".into(),
            owner: uuid::Uuid::from_u128(1),
        };
        let k = store.key(&key);
        assert!(
            k.starts_with("huleedu:idempotency:v2:svc:huleedu_cj_assessment_completed_v1:ff5a8c78"),
            "{k}"
        );
        assert!(k.ends_with("09bf9"), "{k}");
        assert_eq!(
            k.len(),
            "huleedu:idempotency:v2:svc:huleedu_cj_assessment_completed_v1:".len() + 64
        );
    }

    #[test]
    fn keys_are_those_of_the_format_string_they_replace() {
        let store = RedisDedup::new("redis://127.0.0.1:6379").expect("url");
        for (event_type, id) in [
            (
                "huleedu.essay.spellcheck.completed.v1",
                0xabcd_ef01_2345_6789_abcd_ef01_2345_6789,
            ),
            ("ü.ß€.x", u128::MAX),
            ("", 0),
        ] {
            let key = DedupKey {
                service: "group-1".into(),
                event_id: uuid::Uuid::from_u128(id),
                event_type: event_type.into(),
                correlation_id: uuid::Uuid::nil(),
                source_service: "x".into(),
                owner: uuid::Uuid::from_u128(1),
            };
            let hash = Sha256::digest(format!("{{\"event_id\":\"{}\"}}", key.event_id).as_bytes());
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            let want = format!(
                "huleedu:idempotency:v2:group-1:{}:{hex}",
                event_type.replace('.', "_")
            );
            assert_eq!(store.key(&key), want);
        }
    }

    #[test]
    fn values_are_the_originals_json() {
        let key = DedupKey {
            service: "svc \"quoted\"".into(),
            event_id: uuid::Uuid::from_u128(7),
            event_type: "t".into(),
            correlation_id: uuid::Uuid::from_u128(9),
            source_service: "src".into(),
            owner: uuid::Uuid::from_u128(11),
        };
        // Byte for byte what the format string wrote before the value was built piece by piece (ids with
        // letters, so that a change of case shows).
        let lettered = DedupKey {
            event_id: uuid::Uuid::from_u128(0xabcd_ef01_2345_6789_abcd_ef01_2345_6789),
            correlation_id: uuid::Uuid::from_u128(0xfedc_ba98_7654_3210_fedc_ba98_7654_3210),
            owner: uuid::Uuid::from_u128(0xa1b2_c3d4_e5f6_0000_0000_0000_0000_000f),
            ..key.clone()
        };
        for status in ["processing", "completed"] {
            let completed = if status == "completed" {
                ",\"completed_at\":1765000000.25"
            } else {
                ""
            };
            assert_eq!(
                RedisDedup::value(&lettered, status, "1765000000.25"),
                format!(
                    r#"{{"status":"{status}","started_at":1765000000.25,"processed_by":"svc \"quoted\"","event_id":"{}","correlation_id":"{}","source_service":"src","claim_owner":"{}"{completed}}}"#,
                    lettered.event_id, lettered.correlation_id, lettered.owner
                )
            );
        }
        // The fast path for names and serde_json agree on every kind of string, ASCII ones needing escapes too.
        for name in [
            "plain-name_1.x",
            "back\\slash",
            "ctl\u{1}",
            "new\nline",
            "tab\t",
            "del\u{7f}",
            "quote\"",
            "é",
            "",
            " ~",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, name);
            assert_eq!(out, serde_json::to_string(name).expect("json"), "{name:?}");
        }
        // The time is written as the shortest decimal of the seconds, as f64's Display (and Python's repr) write it.
        let now = RedisDedup::now();
        let secs: f64 = now.parse().expect("a number");
        assert!(secs > 1.6e9 && !now.contains(['e', 'E']), "{now}");
        assert_eq!(secs.to_string(), now);
        for status in ["processing", "completed"] {
            let v: serde_json::Value =
                serde_json::from_str(&RedisDedup::value(&key, status, &RedisDedup::now()))
                    .expect("valid JSON");

            assert_eq!(v["status"], status);
            assert_eq!(v["processed_by"], "svc \"quoted\"");
            assert_eq!(v["event_id"], uuid::Uuid::from_u128(7).to_string());
            assert_eq!(v["correlation_id"], uuid::Uuid::from_u128(9).to_string());
            assert_eq!(v["source_service"], "src");
            assert_eq!(v["claim_owner"], uuid::Uuid::from_u128(11).to_string());
            assert!(v["started_at"].as_f64().is_some_and(|t| t > 1.6e9));
            assert_eq!(v.get("completed_at").is_some(), status == "completed");
        }
    }

    #[test]
    fn stored_values_read_as_the_original_reads_them() {
        assert_eq!(
            stored_claim(br#"{"status":"processing"}"#),
            Claim::InProgress
        );
        assert_eq!(
            stored_claim(br#"{"status":"completed"}"#),
            Claim::AlreadyDone
        );
        assert_eq!(stored_claim(br#"{"event_id":"x"}"#), Claim::AlreadyDone);
        assert_eq!(stored_claim(b"1"), Claim::AlreadyDone);
    }

    #[test]
    fn bad_urls_are_refused_and_passwords_redacted() {
        assert!(RedisDedup::new("http://x").is_err());
        let e = RedisDedup::new("redis://u:hunter2@h:1/0?sslrootcert=/nonexistent/ca.pem")
            .err()
            .expect("missing CA file");
        assert!(
            e.reason.contains("/nonexistent/ca.pem") && !e.reason.contains("hunter2"),
            "{e:?}"
        );
        assert_eq!(redact("redis://u:hunter2@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://:hunter2@h:1"), "redis://:***@h:1");
        assert_eq!(
            split_root_cert("rediss://h:1/2?sslrootcert=/ca.pem&protocol=resp3"),
            (
                "rediss://h:1/2?protocol=resp3".to_owned(),
                Some("/ca.pem".to_owned())
            )
        );
    }
}
