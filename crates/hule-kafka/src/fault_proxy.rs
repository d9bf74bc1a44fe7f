//! A TCP fault proxy for tests (feature `testkit`): forwards a local port to an upstream address and, on command,
//! adds latency to every chunk, black-holes every connection (nothing forwarded either way, the sockets kept open:
//! no FIN, no RST — what a client sees during a partition; held data goes through once the partition heals, as TCP
//! retransmission would deliver it), or resets them (RST, through a zero linger).
//!
//! A proxy cannot make the client's own TCP keepalives fail (the proxy's kernel answers them), and a Kafka client
//! reconnects to the address the broker advertises, past any proxy. [`CgroupBlackHole`] drops the packets
//! themselves: nftables matches the sockets of the processes in a cgroup of the test's own, so one process of a
//! test (a relay, a consumer) is cut off from a port while the others go on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as it comes.
    Pass,
    /// Forward each chunk after this delay.
    Latency(Duration),
    /// Forward nothing, close nothing.
    BlackHole,
    /// Reset every connection, new ones included.
    Reset,
}

/// A running proxy; dropping it stops it (its connections end).
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (fault, watch) = watch::channel(Fault::Pass);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let watch = watch.clone();
                connections.spawn(async move {
                    if *watch.borrow() == Fault::Reset {
                        reset(client);
                        return;
                    }
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        reset(client);
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    // Each direction ends on its own (a close is passed on as a half-close); a reset ends both.
                    tokio::join!(pump(cr, sw, watch.clone()), pump(sr, cw, watch));
                });
            }
        });
        Ok(FaultProxy { addr, fault, task })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes what happens to the traffic, for every connection at once.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Ends a connection with a reset rather than a close.
// A zero linger does not block on drop (the deprecation is about a non-zero one): the kernel sends RST at once.
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Ends this direction's halves so that both sockets close with RST: a zero linger on each, and the write half
/// forgotten rather than shut down (dropping it would send FIN first). Each direction's pump does this for its
/// halves, so once both have, neither socket has a half left.
// A zero linger does not block on drop (the deprecation is about a non-zero one).
#[allow(deprecated)]
fn reset_both(from: tokio::net::tcp::OwnedReadHalf, to: tokio::net::tcp::OwnedWriteHalf) {
    let _ = AsRef::<TcpStream>::as_ref(&from).set_linger(Some(Duration::ZERO));
    let _ = AsRef::<TcpStream>::as_ref(&to).set_linger(Some(Duration::ZERO));
    to.forget();
    drop(from);
}

/// Copies one direction, applying the current fault to each chunk; returns when either side ends or on a reset.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = fault.wait_for(|f| *f == Fault::Reset) => {
                reset_both(from, to);
                return;
            }
        };
        loop {
            let now = *fault.borrow_and_update();
            match now {
                Fault::Pass => break,
                Fault::Latency(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                Fault::Reset => {
                    reset_both(from, to);
                    return;
                }
                // Held until the partition heals (or the connection is reset).
                Fault::BlackHole => {
                    if fault.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Numbers the black holes of one process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A black hole between the processes of one cgroup and a TCP port: while on, nftables drops every packet those
/// processes' sockets send to the port or receive from it — no FIN, no RST, as when a host is cut off. The cgroup
/// (under the cgroup v2 hierarchy) and the nftables table are the test's own and removed on drop.
pub struct CgroupBlackHole {
    cgroup: PathBuf,
    /// The cgroup's path as nftables names it (relative to /sys/fs/cgroup).
    nft_path: String,
    table: String,
    port: u16,
}

fn nft(args: &str) {
    let out = Command::new("nft")
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|e| {
            panic!("nft must be installed (scripts/setup.sh installs nftables): {e}")
        });
    assert!(
        out.status.success(),
        "nft {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl CgroupBlackHole {
    /// A cgroup and an nftables table of their own for `port`, the hole not yet made. Panics without root, nftables
    /// or a cgroup v2 hierarchy (test infrastructure: the test fails loudly).
    pub fn new(port: u16) -> Self {
        // cgroup v2 is /sys/fs/cgroup itself on a unified system, /sys/fs/cgroup/unified on a hybrid one.
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(PathBuf::from)
            .find(|r| {
                r.join("cgroup.procs").exists()
                    && std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
                        m.lines().any(|l| {
                            l.contains(" cgroup2 ") && l.contains(&format!(" {} ", r.display()))
                        })
                    })
            })
            .expect("a cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified");
        let name = format!(
            "hule-fault-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let cgroup = root.join(&name);
        std::fs::create_dir(&cgroup).expect("a cgroup of the test's own (needs root)");
        let nft_path = cgroup
            .strip_prefix("/sys/fs/cgroup")
            .expect("under /sys/fs/cgroup")
            .display()
            .to_string();
        let table = name.replace('-', "_");
        nft(&format!("add table inet {table}"));
        for (chain, hook) in [("o", "output"), ("i", "input")] {
            nft(&format!(
                "add chain inet {table} {chain} {{ type filter hook {hook} priority 0 ; }}"
            ));
        }
        CgroupBlackHole {
            cgroup,
            nft_path,
            table,
            port,
        }
    }

    /// The cgroup's directory: a process placed in it (its pid written to `cgroup.procs`) before it opens sockets is
    /// reached by the hole.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// Drops every packet between the cgroup's sockets and the port, both ways.
    pub fn on(&self) {
        let (t, p, c) = (&self.table, self.port, &self.nft_path);
        nft(&format!(
            "add rule inet {t} o socket cgroupv2 level 1 \"{c}\" tcp dport {p} drop"
        ));
        nft(&format!(
            "add rule inet {t} i socket cgroupv2 level 1 \"{c}\" tcp sport {p} drop"
        ));
    }

    /// Lets packets through again.
    pub fn off(&self) {
        nft(&format!("flush chain inet {} o", self.table));
        nft(&format!("flush chain inet {} i", self.table));
    }
}

impl Drop for CgroupBlackHole {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .output();
        // Empty once its processes are gone (the child is killed before this is dropped).
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_holds_delays_and_resets() {
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let upstream = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = FaultProxy::start(upstream).await.expect("proxy");
        let mut c = TcpStream::connect(proxy.addr()).await.expect("connect");
        let mut buf = [0u8; 4];
        c.write_all(b"ping").await.expect("write");
        c.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, b"ping");
        proxy.set(Fault::BlackHole);
        c.write_all(b"held").await.expect("write");
        let held = tokio::time::timeout(Duration::from_millis(300), c.read_exact(&mut buf)).await;
        assert!(held.is_err(), "nothing comes through a black hole");
        proxy.set(Fault::Latency(Duration::from_millis(200)));
        let started = std::time::Instant::now();
        c.read_exact(&mut buf).await.expect("released");
        assert_eq!(&buf, b"held");
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        proxy.set(Fault::Reset);
        let ended = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await;
        assert!(
            matches!(&ended, Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "a reset, not a close: {ended:?}"
        );
    }
}
