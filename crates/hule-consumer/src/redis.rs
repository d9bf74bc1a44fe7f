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
use tokio::sync::{mpsc, oneshot};

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

/// A request to a connection task: the encoded command and where its reply goes.
struct Request {
    bytes: Vec<u8>,
    reply: oneshot::Sender<std::io::Result<Reply>>,
}

/// A pool of multiplexed RESP connections with a per-call timeout.
///
/// Each connection is a writer task and a reader task. Callers hand their command to the writer, which sends every
/// command waiting at that moment in one write (pipelining: Redis reads and answers them in one go); the reader
/// matches replies to callers in order. So many concurrent callers (one per partition) cost a few system calls
/// per batch instead of two per command. A connection that fails is dropped with its pending calls, which report
/// the error, and the next call opens a new one.
pub struct RedisClient {
    addr: String,
    timeout: Duration,
    conns: Vec<std::sync::Mutex<Option<mpsc::UnboundedSender<Request>>>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Commands sent in one write at most (bounds the latency a large backlog adds to its first caller).
const MAX_PIPELINE: usize = 256;

impl RedisClient {
    /// A client for `redis://host:port` (or `host:port`) with `pool` multiplexed connections and a 2 s call
    /// timeout.
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
                .map(|_| std::sync::Mutex::new(None))
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

    /// The sender of connection `i`, starting the connection when it is not running.
    fn sender(&self, i: usize) -> mpsc::UnboundedSender<Request> {
        let mut slot = self.conns[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.as_ref() {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(connection(self.addr.clone(), rx));
                *slot = Some(tx.clone());
                tx
            }
        }
    }

    /// Sends one command and reads its reply.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Reply, StoreUnavailable> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.conns.len();
        let (reply, rx) = oneshot::channel();
        let mut request = Request {
            bytes: encode(args),
            reply,
        };
        // A connection that died since it was started refuses the request; start another once.
        for _ in 0..2 {
            match self.sender(i).send(request) {
                Ok(()) => {
                    return match tokio::time::timeout(self.timeout, rx).await {
                        Ok(Ok(Ok(Reply::Error(e)))) => {
                            Err(self.unavailable(format!("error reply: {e}")))
                        }
                        Ok(Ok(Ok(reply))) => Ok(reply),
                        Ok(Ok(Err(e))) => Err(self.unavailable(e)),
                        Ok(Err(_)) => Err(self.unavailable("connection lost before the reply")),
                        Err(_) => {
                            Err(self.unavailable(format!("no reply within {:?}", self.timeout)))
                        }
                    };
                }
                Err(mpsc::error::SendError(back)) => request = back,
            }
        }
        Err(self.unavailable("cannot start a connection"))
    }
}

/// One connection: connects, then writes batches of waiting commands while a reader task answers them in order.
/// Ends, failing what is pending, on the first I/O error.
async fn connection(addr: String, mut requests: mpsc::UnboundedReceiver<Request>) {
    let stream = match TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => {
            requests.close();
            while let Ok(r) = requests.try_recv() {
                let _ = r
                    .reply
                    .send(Err(std::io::Error::new(e.kind(), e.to_string())));
            }
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let (pending_tx, mut pending) =
        mpsc::unbounded_channel::<oneshot::Sender<std::io::Result<Reply>>>();
    let (dead_tx, mut dead) = oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut read = BufReader::new(read);
        while let Some(reply) = pending.recv().await {
            match read_reply(&mut read).await {
                Ok(r) => {
                    let _ = reply.send(Ok(r));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    break;
                }
            }
        }
        let _ = dead_tx.send(());
    });
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let first = tokio::select! {
            r = requests.recv() => match r { Some(r) => r, None => break },
            _ = &mut dead => break,
        };
        buf.clear();
        buf.extend_from_slice(&first.bytes);
        let mut replies = vec![first.reply];
        while replies.len() < MAX_PIPELINE {
            match requests.try_recv() {
                Ok(r) => {
                    buf.extend_from_slice(&r.bytes);
                    replies.push(r.reply);
                }
                Err(_) => break,
            }
        }
        // Replies are queued before the bytes go out, so the reader always knows whom the next reply is for.
        if replies.into_iter().any(|r| pending_tx.send(r).is_err()) {
            break;
        }
        if write.write_all(&buf).await.is_err() {
            break;
        }
    }
    // Stop taking requests; those not yet sent are dropped (their callers see the connection lost), and the reader
    // is stopped with whatever it still waits for.
    requests.close();
    reader.abort();
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
    /// A store on `url` with the original's key prefix `huleedu:idempotency:v2` and 2 multiplexed connections
    /// (the partitions' concurrent calls are pipelined on them).
    pub fn new(url: &str) -> Result<Self, StoreUnavailable> {
        Ok(RedisDedup {
            client: RedisClient::new(url, 2)?,
            prefix: "huleedu:idempotency:v2".into(),
        })
    }

    /// Checks that Redis answers `PING`.
    pub async fn ping(&self) -> Result<(), StoreUnavailable> {
        self.client.call(&[b"PING"]).await.map(|_| ())
    }

    /// The key of an event, as the original computes it on its header path.
    pub fn key(&self, key: &DedupKey) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let hash = Sha256::digest(format!("{{\"event_id\":\"{}\"}}", key.event_id).as_bytes());
        let event_type = key.event_type.replace('.', "_");
        let mut out = String::with_capacity(
            self.prefix.len() + key.service.len() + event_type.len() + 3 + 64,
        );
        for part in [
            self.prefix.as_str(),
            ":",
            &key.service,
            ":",
            &event_type,
            ":",
        ] {
            out.push_str(part);
        }
        for b in hash {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// The stored JSON value, field for field the original's (written directly: this runs twice per record).
    fn value(key: &DedupKey, status: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        // Service names are JSON-escaped; ids and the status are plain ASCII.
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        let completed = if status == "completed" {
            format!(",\"completed_at\":{now}")
        } else {
            String::new()
        };
        format!(
            "{{\"status\":\"{status}\",\"started_at\":{now},\"processed_by\":{},\"event_id\":\"{}\",\"correlation_id\":\"{}\",\"source_service\":{}{completed}}}",
            quote(&key.service),
            key.event_id,
            key.correlation_id,
            quote(&key.source_service),
        )
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
        assert_eq!(
            k.len(),
            "huleedu:idempotency:v2:svc:huleedu_cj_assessment_completed_v1:".len() + 64
        );
    }

    #[test]
    fn values_are_the_originals_json() {
        let key = DedupKey {
            service: "svc \"quoted\"".into(),
            event_id: uuid::Uuid::from_u128(7),
            event_type: "t".into(),
            correlation_id: uuid::Uuid::from_u128(9),
            source_service: "src".into(),
        };
        for status in ["processing", "completed"] {
            let v: serde_json::Value =
                serde_json::from_str(&RedisDedup::value(&key, status)).expect("valid JSON");
            assert_eq!(v["status"], status);
            assert_eq!(v["processed_by"], "svc \"quoted\"");
            assert_eq!(v["event_id"], uuid::Uuid::from_u128(7).to_string());
            assert_eq!(v["correlation_id"], uuid::Uuid::from_u128(9).to_string());
            assert_eq!(v["source_service"], "src");
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
