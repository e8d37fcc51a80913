//! The command line: one sub-module per verb. Each verb builds what it needs and hands it to
//! the crates; nothing here implements a feature.

mod backend;
mod check;
mod cluster_status;
mod cluster_summary;
mod config_cmd;
mod demo;
mod generate;
mod lab;
mod readiness;
mod serve;
mod status;
mod upgrade;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// pentaflow — a load-balancing array: every node terminates HTTP and schedules each request
/// to a back-end web server (cookie injection, session-ID hash groups, URL hashing, least
/// connections) and answers clients directly.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    /// Log format on stderr: text or json. Text is coloured only when stderr is a terminal
    /// and NO_COLOR is unset (never in a file, a pipe or the journal).
    #[arg(long, global = true, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded default: one node on 127.0.0.1:8080 in front of three built-in demo
    /// back-ends, with cookie persistence and the admin API on 127.0.0.1:9090. No root, no config.
    Demo(demo::DemoArgs),
    /// Run a node from a configuration file (SIGHUP reloads it, SIGTERM drains and stops).
    Serve {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Worker threads (default: one per core; env PENTAFLOW_WORKERS). Each worker runs a
        /// single-threaded runtime of its own and accepts on every listening socket; the
        /// admin API, health checks and reloads run on one more thread. 1: everything on one
        /// single-threaded runtime.
        #[arg(long, env = "PENTAFLOW_WORKERS")]
        workers: Option<usize>,
        /// Which `[[array.node]]` this is (overrides `[array] node_id`; every node gets the
        /// same file). Ignored without an `[array]` section.
        #[arg(long, env = "PENTAFLOW_NODE_ID")]
        node_id: Option<u16>,
    },
    /// A whole array on this machine in network namespaces (root): `lab up`, `lab status`,
    /// `lab exec HOST -- CMD`, `lab down`.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Validate a configuration file and exit (non-zero on error, naming file, line and key).
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print a node's status tables from its admin API.
    Status {
        /// Admin address of the node, e.g. 127.0.0.1:9090.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
        /// Print the raw JSON document instead of tables.
        #[arg(long)]
        json: bool,
        /// The array as this node sees it: Node Status Table, bucket table (`GET /cluster`).
        #[arg(long)]
        cluster: bool,
        /// File holding the admin token, for a node that has one (`[array] admin_token`); or
        /// env PENTAFLOW_ADMIN_TOKEN.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Push, commit and show the array's configuration through a node's admin API.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Drain or re-enable a node of the array through its admin API.
    #[command(subcommand)]
    Node(config_cmd::NodeCommand),
    /// Add, remove, drain, enable or re-weight a back-end of a running node (the runtime
    /// API: effective at once, written to the node's file).
    #[command(subcommand)]
    Backend(backend::BackendCommand),
    /// Write the man pages and shell completions into a directory (for packaging).
    #[command(hide = true)]
    Generate {
        /// Where to write them.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs one command line.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Sockets handed over by the process this one replaces (or by systemd): taken before any
    // thread starts, because taking them clears `LISTEN_FDS` from the environment.
    let inherited = matches!(cli.command, Command::Serve { .. })
        .then(pentaflow_proxy::inherited::adopt_from_env);
    // Held until the command returns: dropping it writes out every queued line.
    let _log_writer = init_logging(cli.log_format);
    if let Some((adopted, errors)) = inherited {
        if !adopted.is_empty() {
            tracing::info!(sockets = ?adopted, "listening sockets handed over");
        }
        for e in errors {
            tracing::warn!(error = %e, "a descriptor in LISTEN_FDS is not a listening TCP socket");
        }
    }
    match cli.command {
        Command::Demo(args) => runtime(None)?.block_on(demo::run(args)),
        Command::Serve {
            config,
            workers,
            node_id,
        } => {
            let workers = workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            // The control plane's runtime: one thread; with two workers or more, the data plane
            // runs on worker threads of its own (pentaflow_proxy::Workers).
            runtime(Some(1))?.block_on(serve::run(config, node_id, workers.max(1)))
        }
        Command::Lab(command) => lab::run(command),
        Command::Check { config } => check::run(&config),
        Command::Status {
            admin,
            json,
            cluster,
            token_file,
        } => {
            let token = config_cmd::optional_token(token_file.as_deref())?;
            if cluster {
                cluster_status::run(admin, json, token.as_deref())
            } else {
                runtime(Some(1))?.block_on(status::run(admin, json, token.as_deref()))
            }
        }
        Command::Config(command) => config_cmd::run(command),
        Command::Node(command) => config_cmd::run_node(command),
        Command::Backend(command) => backend::run(command),
        Command::Generate { out } => generate::run(&out),
    }
}

fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    // One worker: a current-thread runtime runs every task on this thread with no work-stealing
    // queues or cross-thread wake-ups (as one nginx worker or one HAProxy thread does).
    let mut builder = if workers == Some(1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = workers {
            b.worker_threads(n.max(1));
        }
        b
    };
    Ok(builder.enable_all().build()?)
}

/// Logs go to stderr through one writer thread: the threads that log (the data plane's, for
/// every access-log line) only format and queue a line; the writer drains the queue into a
/// buffer and writes it out whenever the queue is empty, so a burst of lines costs one
/// `write(2)` instead of one each. Not lossy: when the queue is full a logging thread waits,
/// as it waited for `write(2)` before.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("PENTAFLOW_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("pentaflow-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_logs())
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    guard
}

/// Colour only for a person at a terminal: stderr is a TTY and `NO_COLOR` (no-color.org: any
/// non-empty value) is not set. A log file, a pipe or the journal gets plain text.
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}
