//! `hule console`: serve the operator console; `hule console hash-password`: make a user's password hash.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use hule_console::{ConsoleConfig, ConsoleFile, DEFAULT_LISTEN};

use crate::kafka_args::KafkaArgs;

/// `hule console`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConsoleArgs {
    #[command(subcommand)]
    command: Option<ConsoleCommand>,
    /// The console's TOML file: listen address, [kafka], [[users]], store.
    #[arg(long, env = "HULE_CONSOLE_CONFIG")]
    config: Option<PathBuf>,
    /// Where to listen [default: 127.0.0.1:8470].
    #[arg(long, env = "HULE_CONSOLE_LISTEN")]
    listen: Option<SocketAddr>,
    /// The SQLite file of the audit log and the session key, the index beside it (`<store>-index`); or a
    /// `postgresql://` URL, one store several consoles share [default: hule-console.db].
    #[arg(long, env = "HULE_CONSOLE_STORE")]
    store: Option<PathBuf>,
    /// Serve without a login, every visitor the operator `local` (refused unless --listen is a loopback address).
    #[arg(long)]
    no_auth: bool,
    /// Serve HTTPS: the PEM certificate chain (with --tls-key).
    #[arg(long, env = "HULE_CONSOLE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Serve HTTPS: the PKCS#8 PEM private key (with --tls-cert).
    #[arg(long, env = "HULE_CONSOLE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    kafka: KafkaArgs,
}

#[derive(Subcommand)]
enum ConsoleCommand {
    /// Read a password from stdin (one line) and print its argon2id hash for the `[[users]]` table.
    HashPassword,
}

/// Runs `hule console`.
pub fn run(args: &ConsoleArgs) -> anyhow::Result<()> {
    if let Some(ConsoleCommand::HashPassword) = args.command {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("read the password from stdin")?;
        let password = line.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!password.is_empty(), "an empty password is refused");
        let hash = hule_console::auth::hash_password(password).map_err(|e| anyhow::anyhow!(e))?;
        crate::out(hash);
        return Ok(());
    }
    let file = match &args.config {
        Some(path) => ConsoleFile::read(path).map_err(|e| anyhow::anyhow!(e))?,
        None => ConsoleFile::default(),
    };
    let kafka = args.kafka.connect_with_file(&file.kafka)?;
    let listen = match args.listen.or(file.listen) {
        Some(a) => a,
        None => DEFAULT_LISTEN.parse()?,
    };
    let config = ConsoleConfig {
        listen,
        kafka: kafka.settings,
        users: file.users,
        store: args
            .store
            .clone()
            .or(file.store)
            .unwrap_or_else(|| PathBuf::from("hule-console.db")),
        services: file.services,
        retention: file.index.retention(),
        no_auth: args.no_auth,
        oidc: file.oidc,
        tls: match (
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(hule_console::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => anyhow::bail!("TLS needs both a certificate and a key (--tls-cert and --tls-key, or tls_cert and tls_key in the file)"),
        },
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let flag = stop.clone();
        tokio::spawn(async move {
            hule_kafka::shutdown_signal().await;
            flag.cancel();
        });
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        eprintln!("console: {scheme}://{listen}/ (Ctrl-C stops it)");
        hule_console::serve(config, stop).await?;
        anyhow::Ok(())
    })
}
