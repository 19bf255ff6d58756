//! The `ferrentd` command: a drop-in for the `fluentd` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser};

use ferrentd::config_parser::{self, ConfigError, Element, ParseOptions};
use ferrentd::engine::{self, Engine, EngineOptions};
use ferrentd::logging::{self, LogLevel, LogTarget};

#[derive(Parser, Debug)]
#[command(
    name = "ferrentd",
    version,
    about = "A Fluentd-compatible log processor"
)]
struct Cli {
    /// Config file (default: $FLUENT_CONF, else /etc/fluent/fluent.conf).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Check the config (parse it and configure every plugin), then exit.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Config text appended to the file (a literal "\n" is a newline).
    #[arg(short = 'i', long = "inline-config")]
    inline_config: Option<String>,
    /// Log file (default: stderr).
    #[arg(short = 'o', long = "log")]
    log: Option<PathBuf>,
    /// More log output (-v debug, -vv trace).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    verbose: u8,
    /// Less log output (-q warn, -qq error).
    #[arg(short = 'q', long = "quiet", action = ArgAction::Count)]
    quiet: u8,
    /// Accepted for compatibility: ferrentd always runs without a supervisor process.
    #[arg(long = "no-supervisor")]
    no_supervisor: bool,
    /// Number of workers (ferrentd runs the work of all workers in one process).
    #[arg(long = "workers")]
    workers: Option<u32>,
    /// Strict integer/float/bool conversion of parameters.
    #[arg(long = "strict-config-value")]
    strict_config_value: bool,
    /// Do not print the config at start-up.
    #[arg(long = "suppress-config-dump")]
    suppress_config_dump: bool,
    /// Ruby plugin directories: accepted, but Ruby plugins are not loaded.
    #[arg(short = 'p', long = "plugin")]
    plugin: Vec<PathBuf>,
    /// Start without <source> plugins.
    #[arg(long = "without-source")]
    without_source: bool,
    /// Accepted for compatibility (v1 syntax is the only one).
    #[arg(long = "use-v1-config")]
    use_v1_config: bool,
    /// Accepted for compatibility; ignored.
    #[arg(long = "log-rotate-age")]
    log_rotate_age: Option<String>,
    /// Accepted for compatibility; ignored.
    #[arg(long = "log-rotate-size")]
    log_rotate_size: Option<String>,
    /// Accepted for compatibility; ignored.
    #[arg(long = "suppress-repeated-stacktrace", num_args = 0..=1)]
    suppress_repeated_stacktrace: Option<Option<String>>,
    /// Accepted for compatibility; ignored.
    #[arg(long = "emit-error-log-interval")]
    emit_error_log_interval: Option<String>,
    /// Accepted for compatibility; ignored.
    #[arg(long = "umask")]
    umask: Option<String>,
}

fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .or_else(|| std::env::var_os("FLUENT_CONF").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/etc/fluent/fluent.conf"))
}

fn read_config(cli: &Cli, path: &PathBuf) -> Result<Element, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(format!("Fluent::ConfigError: {}: {}", path.display(), e)))?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if let Some(inline) = &cli.inline_config {
        text.push('\n');
        text.push_str(&inline.replace("\\n", "\n"));
        text.push('\n');
    }
    config_parser::parse_str(&text, path, &ParseOptions::default())
}

fn report_config_error(path: &std::path::Path, e: &ConfigError) {
    let class = if e.location.is_some() {
        "Fluent::ConfigParseError"
    } else {
        "Fluent::ConfigError"
    };
    tracing::error!(
        "config error file=\"{}\" error_class={} error=\"{}\"",
        path.display(),
        class,
        e.message
    );
    // The located form (file, line, column, the line and a caret) for people.
    eprintln!("{e}");
}

/// mimalloc: the parse path allocates many small strings per record; glibc malloc spent a fifth
/// of the time of the tail+parse benchmarks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // No transparent huge pages: the allocator asks for them, and each 2 MiB page that one
    // small live object keeps counts whole in RSS (a third of the tail benchmarks' peak).
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    let cli = Cli::parse();
    let path = config_path(&cli);
    let pre_level = LogLevel::from_flags(cli.verbose, cli.quiet, LogLevel::Info);
    let target = match &cli.log {
        Some(p) => LogTarget::File(p.clone()),
        None => LogTarget::Stderr,
    };

    // The config's <system> log_level sets the base level, so parse before logging starts;
    // parse errors are reported once the logger is up.
    let parsed = read_config(&cli, &path);
    let base = parsed
        .as_ref()
        .ok()
        .and_then(|root| engine::system_config(root, false).ok())
        .and_then(|s| s.log_level)
        .unwrap_or(LogLevel::Info);
    let level = if cli.verbose > 0 || cli.quiet > 0 {
        pre_level.min(LogLevel::from_flags(cli.verbose, cli.quiet, base))
    } else {
        base
    };
    if let Ok(root) = &parsed {
        let (json, time_format) = engine::log_style(root);
        logging::set_style(json, time_format.as_deref());
    }
    if let Err(e) = logging::init(level, target) {
        eprintln!("cannot open log file: {e}");
        return ExitCode::from(1);
    }
    for dir in &cli.plugin {
        tracing::warn!(
            "-p {}: Ruby plugins are not loaded by ferrentd; only its native plugins are available",
            dir.display()
        );
    }
    if cli.workers.unwrap_or(1) > 1 {
        tracing::warn!(
            "--workers {}: ferrentd runs the work of all workers in one process",
            cli.workers.unwrap_or(1)
        );
    }
    tracing::info!(
        "parsing config file is succeeded path=\"{}\"",
        path.display()
    );

    let root = match parsed {
        Ok(r) => r,
        Err(e) => {
            report_config_error(&path, &e);
            return ExitCode::from(1);
        }
    };
    let opts = EngineOptions {
        strict: cli.strict_config_value,
        without_source: cli.without_source,
    };
    let engine = match Engine::build(&root, &opts) {
        Ok(e) => e,
        Err(e) => {
            report_config_error(&path, &e);
            return ExitCode::from(1);
        }
    };
    if cli.dry_run {
        tracing::info!("finished dry run mode");
        return ExitCode::SUCCESS;
    }
    match run(engine, &cli, &path, &opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("unexpected error error=\"{e:#}\"");
            ExitCode::from(1)
        }
    }
}

fn run(mut engine: Engine, cli: &Cli, path: &PathBuf, opts: &EngineOptions) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("ferrentd-io")
        .build()?;
    // Signals are registered before inputs start so that an early SIGTERM is not lost.
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2])?;
    engine.route_log_events()?;
    tracing::info!(
        "starting fluentd worker pid={} ppid={} worker=0",
        std::process::id(),
        std::os::unix::process::parent_id()
    );
    let mut running = engine.start(runtime.handle().clone())?;
    tracing::info!("fluentd worker is now running worker=0");
    for sig in signals.forever() {
        match sig {
            SIGTERM | SIGINT => {
                tracing::info!("fluentd worker is now stopping worker=0");
                running.stop();
                break;
            }
            SIGUSR1 => {
                tracing::info!("force flushing buffered events");
                running.flush();
            }
            SIGHUP | SIGUSR2 => {
                tracing::info!("reloading config path=\"{}\"", path.display());
                let rebuilt = read_config(cli, path).and_then(|root| Engine::build(&root, opts));
                match rebuilt {
                    Ok(new_engine) => {
                        // The old graph stops first: its inputs emit what they hold and its
                        // outputs flush, so no event in flight is lost.
                        running.stop();
                        running = new_engine.start(runtime.handle().clone())?;
                        tracing::info!("config reloaded");
                    }
                    Err(e) => {
                        tracing::error!("config reload failed, keeping the running config");
                        report_config_error(path, &e);
                    }
                }
            }
            _ => {}
        }
    }
    tracing::info!("fluentd worker finished worker=0");
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(())
}
