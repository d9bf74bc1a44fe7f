//! The Redis dedup store, over a small RESP2 client (four commands: `SET … NX PX`, `SET … PX`, `GET`, `DEL`).
//!
//! Keys and values are those of the original's `idempotency_v2` header path, so a Rust and a Python consumer
//! of one service recognise each other's work: `huleedu:idempotency:v2:<service>:<event_type with . → _>:<hex
//! sha256 of {"event_id":"<id>"}>`, holding `{"status":"processing"|"completed", …}` JSON.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::FutureExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::dedup::{Claim, DedupKey, DedupStore, StoreUnavailable};

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and other simple strings.
    Simple(String),
    /// A bulk string; `None` for the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// An integer.
    Int(i64),
    /// An error reply.
    Error(String),
}

/// One connection, opened lazily and dropped on any I/O error (the next call reconnects).
struct Conn {
    stream: Option<BufReader<TcpStream>>,
}

/// A small pool of RESP connections with a per-call timeout.
pub struct RedisClient {
    addr: String,
    timeout: Duration,
    conns: Vec<Mutex<Conn>>,
    next: std::sync::atomic::AtomicUsize,
}

impl RedisClient {
    /// A client for `redis://host:port` (or `host:port`) with `pool` connections and a 2 s call timeout.
    pub fn new(url: &str, pool: usize) -> Result<Self, StoreUnavailable> {
        let addr = url
            .strip_prefix("redis://")
            .unwrap_or(url)
            .trim_end_matches('/');
        if addr.is_empty() || !addr.contains(':') {
            return Err(StoreUnavailable {
                store: "redis",
                reason: format!("`{url}` is not a Redis address; expected redis://host:port"),
            });
        }
        Ok(RedisClient {
            addr: addr.to_owned(),
            timeout: Duration::from_secs(2),
            conns: (0..pool.max(1))
                .map(|_| Mutex::new(Conn { stream: None }))
                .collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> StoreUnavailable {
        StoreUnavailable {
            store: "redis",
            reason: format!("{}: {reason}", self.addr),
        }
    }

    /// Sends one command and reads its reply.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Reply, StoreUnavailable> {
        // A free connection if there is one, else wait for the next in turn.
        let n = self.conns.len();
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        let free = (0..n).find_map(|k| self.conns[(i + k) % n].try_lock().ok());
        let mut conn = match free {
            Some(c) => c,
            None => self.conns[i].lock().await,
        };
        let result = tokio::time::timeout(self.timeout, async {
            if conn.stream.is_none() {
                conn.stream = Some(BufReader::new(TcpStream::connect(&self.addr).await?));
            }
            let stream = conn
                .stream
                .as_mut()
                .ok_or_else(|| std::io::Error::other("no connection"))?;
            stream.get_mut().write_all(&encode(args)).await?;
            read_reply(stream).await
        })
        .await;
        match result {
            Ok(Ok(reply)) => match reply {
                Reply::Error(e) => Err(self.unavailable(format!("error reply: {e}"))),
                other => Ok(other),
            },
            Ok(Err(e)) => {
                conn.stream = None;
                Err(self.unavailable(e))
            }
            Err(_) => {
                conn.stream = None;
                Err(self.unavailable(format!("no reply within {:?}", self.timeout)))
            }
        }
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Reply> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad RESP line `{line}`"),
        )
    };
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => rest.parse().map(Reply::Int).map_err(|_| bad()),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            if len > 512 * 1024 * 1024 {
                return Err(bad());
            }
            let mut buf = vec![0u8; len as usize + 2];
            r.read_exact(&mut buf).await?;
            buf.truncate(len as usize);
            Ok(Reply::Bulk(Some(buf)))
        }
        _ => Err(bad()),
    }
}

/// The Redis dedup store.
pub struct RedisDedup {
    client: RedisClient,
    prefix: String,
}

impl RedisDedup {
    /// A store on `url` with the original's key prefix `huleedu:idempotency:v2` and 16 connections (one call
    /// in flight per connection; partitions are processed in parallel).
    pub fn new(url: &str) -> Result<Self, StoreUnavailable> {
        Ok(RedisDedup {
            client: RedisClient::new(url, 16)?,
            prefix: "huleedu:idempotency:v2".into(),
        })
    }

    /// Checks that Redis answers `PING`.
    pub async fn ping(&self) -> Result<(), StoreUnavailable> {
        self.client.call(&[b"PING"]).await.map(|_| ())
    }

    /// The key of an event, as the original computes it on its header path.
    pub fn key(&self, key: &DedupKey) -> String {
        let hash = Sha256::digest(format!("{{\"event_id\":\"{}\"}}", key.event_id).as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}:{}:{}:{hex}",
            self.prefix,
            key.service,
            key.event_type.replace('.', "_")
        )
    }

    fn value(key: &DedupKey, status: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut v = serde_json::json!({
            "status": status,
            "started_at": now,
            "processed_by": key.service,
            "event_id": key.event_id.to_string(),
            "correlation_id": key.correlation_id.to_string(),
            "source_service": key.source_service,
        });
        if status == "completed" {
            v["completed_at"] = serde_json::json!(now);
        }
        v.to_string()
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
            let v = Self::value(key, "processing");
            let ms = lock_ttl.as_millis().max(1).to_string();
            // SET NX can lose to a key that expires before the GET; try again then.
            for _ in 0..3 {
                match self
                    .client
                    .call(&[
                        b"SET",
                        k.as_bytes(),
                        v.as_bytes(),
                        b"NX",
                        b"PX",
                        ms.as_bytes(),
                    ])
                    .await?
                {
                    Reply::Simple(_) => return Ok(Claim::Acquired),
                    _ => match self.client.call(&[b"GET", k.as_bytes()]).await? {
                        Reply::Bulk(Some(existing)) => return Ok(stored_claim(&existing)),
                        _ => continue,
                    },
                }
            }
            Ok(Claim::InProgress)
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
            let v = Self::value(key, "completed");
            let ms = ttl.as_millis().max(1).to_string();
            self.client
                .call(&[b"SET", k.as_bytes(), v.as_bytes(), b"PX", ms.as_bytes()])
                .await
                .map(|_| ())
        }
        .boxed()
    }

    fn release<'a>(&'a self, key: &'a DedupKey) -> BoxFuture<'a, Result<(), StoreUnavailable>> {
        async move {
            let k = self.key(key);
            self.client.call(&[b"DEL", k.as_bytes()]).await.map(|_| ())
        }
        .boxed()
    }
}

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
        };
        let k = store.key(&key);
        assert!(
            k.starts_with("huleedu:idempotency:v2:svc:huleedu_cj_assessment_completed_v1:ff5a8c78"),
            "{k}"
        );
        assert!(k.ends_with("09bf9"), "{k}");
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

    #[tokio::test]
    async fn replies_parse() {
        let mut r = BufReader::new(&b"+OK\r\n$3\r\nabc\r\n$-1\r\n:5\r\n-ERR x\r\n"[..]);
        assert_eq!(
            read_reply(&mut r).await.expect("ok"),
            Reply::Simple("OK".into())
        );
        assert_eq!(
            read_reply(&mut r).await.expect("bulk"),
            Reply::Bulk(Some(b"abc".to_vec()))
        );
        assert_eq!(read_reply(&mut r).await.expect("nil"), Reply::Bulk(None));
        assert_eq!(read_reply(&mut r).await.expect("int"), Reply::Int(5));
        assert_eq!(
            read_reply(&mut r).await.expect("err"),
            Reply::Error("ERR x".into())
        );
        assert!(read_reply(&mut r).await.is_err());
        let mut bad = BufReader::new(&b"?what\r\n"[..]);
        assert!(read_reply(&mut bad).await.is_err());
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(RedisClient::new("redis://", 1).is_err());
        assert!(RedisClient::new("localhost", 1).is_err());
    }
}
