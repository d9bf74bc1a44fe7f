//! The console serving TLS itself, from a PEM certificate chain and a PKCS#8 PEM key (native-tls: the platform's
//! TLS, OpenSSL on Linux, which the Kafka and OTLP clients use already).
//!
//! Handshakes run in tasks of their own, at most [`MAX_HANDSHAKES`] at once and each bounded by
//! [`HANDSHAKE_TIMEOUT`], so a client that connects and never speaks holds up neither the accept loop nor anyone
//! else's handshake; the finished streams are handed to axum through a channel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_native_tls::{TlsAcceptor, TlsStream};

/// How long a client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes in progress at most.
pub const MAX_HANDSHAKES: usize = 256;

/// The certificate and key files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain (the server's first).
    pub cert: PathBuf,
    /// PEM private key, PKCS#8 (`BEGIN PRIVATE KEY`).
    pub key: PathBuf,
}

/// Reads `files` into an acceptor; the error says which file and why (never the key's content).
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let read = |p: &Path, what: &str| {
        std::fs::read(p).map_err(|e| format!("cannot read the TLS {what} {}: {e}", p.display()))
    };
    let cert = read(&files.cert, "certificate")?;
    let key = read(&files.key, "key")?;
    if !String::from_utf8_lossy(&key).contains("BEGIN PRIVATE KEY") {
        return Err(format!(
            "the TLS key {} is not a PKCS#8 PEM key (`BEGIN PRIVATE KEY`); convert one with \
             `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem`",
            files.key.display()
        ));
    }
    let identity = native_tls::Identity::from_pkcs8(&cert, &key).map_err(|e| {
        format!(
            "the TLS certificate {} and key {} do not make an identity: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    native_tls::TlsAcceptor::new(identity)
        .map(TlsAcceptor::from)
        .map_err(|e| format!("TLS: {e}"))
}

/// A listener whose connections are TLS streams that finished their handshake.
pub struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `tcp`, handshaking with `acceptor`.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(MAX_HANDSHAKES);
        let acceptor = Arc::new(acceptor);
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "console: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (tx, acceptor) = (tx.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "console: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "console: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop ended (it never does while the listener lives): wait for the shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
