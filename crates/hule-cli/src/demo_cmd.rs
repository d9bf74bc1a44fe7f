//! `hule demo` (the reference pipeline on embedded defaults) and `hule broker` (the embedded cluster alone).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::out;

/// `hule demo` options.
#[derive(Args)]
pub struct DemoArgs {
    /// Batches to register.
    #[arg(long, default_value_t = 12)]
    batches: usize,
    /// Essays per batch.
    #[arg(long, default_value_t = 24)]
    essays: usize,
    /// Seed of the essays and the judge.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fraction of relayed records published twice (consumers must suppress them).
    #[arg(long, default_value_t = 0.0)]
    duplicate_rate: f64,
    /// Poison records to inject, as a fraction of the essays (they must end in the DLQ).
    #[arg(long, default_value_t = 0.0)]
    poison_rate: f64,
    /// Inject produce errors and take a broker down and up (embedded cluster only).
    #[arg(long)]
    broker_faults: bool,
    /// Put the outboxes in PostgreSQL (one schema per service) instead of SQLite files.
    #[arg(long, env = "HULE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Deduplicate in Redis instead of memory: redis://[user:password@]host:port[/db], rediss://… (TLS; add
    /// ?sslrootcert=/path/ca.pem for a private CA).
    #[arg(long, env = "HULE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// A real Kafka cluster instead of the embedded one (topics must exist or be auto-created). Only these flags
    /// choose it: HULE_BROKERS alone does not, so the default demo never needs anything running.
    #[command(flatten)]
    kafka: crate::kafka_args::KafkaArgs,
    /// Partitions per topic on the embedded cluster.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Give up on the run after this many seconds (start, pipeline and clean-up); `--timeout` is how long one Kafka
    /// request may take.
    #[arg(long, default_value_t = 120)]
    max_time: u64,
    /// Write the report as JSON to this file (`-` for stdout, replacing the text report).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Do not draw progress on stderr.
    #[arg(long)]
    no_progress: bool,
    /// Serve the operator console on the embedded cluster from before the run (to watch it) until Ctrl-C after it;
    /// when the run is done its services keep running (a replay from the console is consumed again) and the report
    /// comes at Ctrl-C. A user `demo` with a one-time password (printed). Add `--poison-rate 0.05` to have dead
    /// letters to look at and replay.
    #[arg(long)]
    console: bool,
    /// Where `--console` listens.
    #[arg(long, default_value = hule_console::DEFAULT_LISTEN, requires = "console")]
    console_listen: std::net::SocketAddr,
}

/// Runs the demo; exit status 0 when every check holds, 1 when a count does not reconcile, 2 on errors.
pub fn demo(args: &DemoArgs) -> ExitCode {
    match run_demo(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: the demo's counts do not reconcile (see the checks above)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_demo(args: &DemoArgs) -> anyhow::Result<bool> {
    let config = hule_demo::DemoConfig {
        batches: args.batches,
        essays: args.essays,
        seed: args.seed,
        duplicate_rate: args.duplicate_rate,
        poison_rate: args.poison_rate,
        broker_faults: args.broker_faults,
        database_url: args.database_url.clone(),
        redis_url: args.redis_url.clone(),
        kafka: if args.kafka.on_command_line() {
            Some(args.kafka.connect()?.settings)
        } else {
            None
        },
        partitions: args.partitions,
        timeout: Duration::from_secs(args.max_time),
        progress: !args.no_progress,
        hold_after_run: args.console,
    };
    if args.partitions < 1 {
        anyhow::bail!("--partitions must be at least 1");
    }
    // The mock cluster is not Send: it lives on this thread, and the runtime is driven from here.
    let cluster = match &config.kafka {
        None => Some(hule_demo::embedded_cluster(3, args.partitions)?),
        Some(_) => None,
    };
    tracing::info!("embedded cluster started");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    // With --console the console starts first, so the run can be watched as it happens (the index follows every
    // topic, the tail shows the records, dead letters appear as they are written).
    let console = match (args.console, cluster.as_ref()) {
        (false, _) => None,
        (true, None) => anyhow::bail!(
            "--console serves the embedded cluster; for a real one run `hule console`"
        ),
        (true, Some(embedded)) => {
            Some(runtime.block_on(console_on_embedded(embedded, args.console_listen))?)
        }
    };
    let report = runtime.block_on(hule_demo::run(&config, cluster.as_ref()));
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            if let Some(c) = console {
                if let Err(ce) = runtime.block_on(c.stop()) {
                    tracing::warn!(error = %ce, "the demo's console did not stop cleanly");
                }
            }
            return Err(e.into());
        }
    };
    let json = serde_json::to_string_pretty(&report)?;
    match args.json.as_deref() {
        Some(p) if p.as_os_str() == "-" => out(json),
        Some(p) => {
            std::fs::write(p, json).with_context(|| format!("write {}", p.display()))?;
            out(report.render());
        }
        None => out(report.render()),
    }
    // The run held its services until Ctrl-C or SIGTERM (`hold_after_run`); that signal ends the console too.
    if let Some(c) = console {
        runtime.block_on(c.stop())?;
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    tracing::info!("runtime stopped");
    drop(cluster);
    tracing::info!("embedded cluster stopped");
    Ok(report.reconciled)
}

/// `hule broker` options.
#[derive(Args)]
pub struct BrokerArgs {
    /// Brokers in the embedded cluster.
    #[arg(long, default_value_t = 3)]
    brokers: i32,
    /// Partitions per topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
}

/// Starts the embedded cluster with every registered topic and serves until Ctrl-C or SIGTERM.
pub fn broker(args: &BrokerArgs) -> anyhow::Result<()> {
    if args.brokers < 1 || args.partitions < 1 {
        anyhow::bail!("--brokers and --partitions must be at least 1");
    }
    let cluster = hule_demo::embedded_cluster(args.brokers, args.partitions)?;
    out(format!(
        "bootstrap servers: {}",
        cluster.bootstrap_servers()
    ));
    out(format!(
        "every registered topic created: standard, legacy and dead-letter ({} partitions; dead-letter topics 1). \
         Ctrl-C to stop; data lives in memory only.",
        args.partitions
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(hule_kafka::shutdown_signal());
    drop(cluster);
    Ok(())
}

/// The console the demo serves on its embedded cluster.
struct DemoConsole {
    stop: tokio_util::sync::CancellationToken,
    served: tokio::task::JoinHandle<Result<(), hule_console::ConsoleError>>,
    store: std::path::PathBuf,
}

impl DemoConsole {
    /// Stops the console and removes its store.
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        let served = self.served.await;
        for suffix in ["", "-wal", "-shm", "-index", "-index-wal", "-index-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.store.display()));
        }
        served.context("the console's task")??;
        Ok(())
    }
}

/// Starts the console on the demo's embedded cluster, with a user `demo` (operator) whose password is made now and
/// printed once.
async fn console_on_embedded(
    embedded: &hule_demo::Embedded,
    listen: std::net::SocketAddr,
) -> anyhow::Result<DemoConsole> {
    // The embedded cluster has no CreateTopics: the replay ledger's topic is made here, as the demo's topics are.
    hule_kafka::mock::create_topics(
        embedded,
        [(hule_kafka::replay::LEDGER_TOPIC.to_owned(), 1)],
        1,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let password = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let hash = hule_console::auth::hash_password(&password).map_err(|e| anyhow::anyhow!(e))?;
    let store = std::env::temp_dir().join(format!("hule-demo-console-{}.db", std::process::id()));
    let config = hule_console::ConsoleConfig {
        listen,
        kafka: hule_kafka::KafkaSettings::new(&embedded.bootstrap_servers()),
        users: vec![hule_console::User {
            name: "demo".into(),
            role: hule_console::Role::Operator,
            password_hash: hash,
        }],
        store: store.clone(),
        services: Vec::new(),
        retention: Default::default(),
        no_auth: false,
        tls: None,
        oidc: None,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("console on {listen}"))?;
    let url = format!("http://{}/", listener.local_addr()?);
    eprintln!(
        "console: {url} (user demo, password {password}; the run can be watched there as it goes)"
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let served = {
        let stop = stop.clone();
        tokio::spawn(async move { hule_console::serve_on(listener, &config, stop).await })
    };
    Ok(DemoConsole {
        stop,
        served,
        store,
    })
}
