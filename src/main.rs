//! The `ferrentd` command: a drop-in for the `fluentd` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

use ferrentd::config_parser::{self, ConfigError, Element, ParseOptions};
use ferrentd::engine::{self, Engine, EngineOptions};
use ferrentd::logging::{self, LogLevel, LogTarget};

#[derive(Parser, Debug)]
#[command(
    name = "ferrentd",
    version,
    about = "A Fluentd-compatible log processor",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (default: $FLUENT_CONF, else /etc/fluent/fluent.conf).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Check the config (parse it and configure every plugin), then exit.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// With --dry-run: a compatibility report (text or json) of every directive, parameter and
    /// embedded Ruby, the state a Fluentd left on this node, and a verdict.
    #[arg(long = "report", num_args = 0..=1, default_missing_value = "text", value_parser = ["text", "json"])]
    report: Option<String>,
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

/// Migration tools; without one, ferrentd runs a config as `fluentd` does.
#[derive(Subcommand, Debug)]
enum Command {
    /// Run a config's event graph on fed inputs with a fixed clock and check what each output
    /// receives (no source is read, no sink contacted). See docs/testing.md.
    Test {
        #[arg(short = 'c', long = "config", default_value = "fluent.conf")]
        config: PathBuf,
        /// Test file (default: CONFIG's name with .test.toml, beside it).
        #[arg(long = "tests")]
        tests: Option<PathBuf>,
        /// Records for a tag: TAG=FILE (JSON lines, or msgpack [time, record] for .msgpack).
        #[arg(long = "input")]
        input: Vec<String>,
        /// Raw lines through a source's <parse>: ID=FILE, ID being the source's @id.
        #[arg(long = "source")]
        source: Vec<String>,
        /// The records the output whose @id is ID must receive: ID=FILE (JSON lines).
        #[arg(long = "expect")]
        expect: Vec<String>,
        /// Rewrite golden files (and --expect files) with what was received.
        #[arg(long = "update")]
        update: bool,
        /// The fixed clock, RFC 3339 (default 2026-01-01T00:00:00Z).
        #[arg(long = "time")]
        time: Option<String>,
    },
    /// Run Fluentd and ferrentd on the same config and inputs and diff what each output
    /// received (sources replaced by the inputs, outputs captured; event times masked).
    Compare {
        #[arg(short = 'c', long = "config", default_value = "fluent.conf")]
        config: PathBuf,
        /// The Fluentd command, e.g. "fluentd" or "/opt/fluent/bin/fluentd --no-supervisor".
        #[arg(long = "fluentd", default_value = "fluentd")]
        fluentd: String,
        /// Records for a tag: TAG=FILE (JSON lines).
        #[arg(long = "input")]
        input: Vec<String>,
        /// How long each one runs before it is stopped (and flushes).
        #[arg(long = "seconds", default_value_t = 10)]
        seconds: u64,
        /// Compare each output's events as sets (sorted) rather than in order.
        #[arg(long = "sort")]
        sort: bool,
        /// Record keys whose values differ by nature (ids, run times): compared as masked.
        #[arg(long = "mask")]
        mask: Vec<String>,
    },
    /// Print the routing graph as Graphviz DOT or Mermaid, or the path one tag takes.
    Graph {
        #[arg(short = 'c', long = "config", default_value = "fluent.conf")]
        config: PathBuf,
        #[arg(long = "format", default_value = "dot")]
        format: String,
        /// Show the path this tag takes instead of the whole graph.
        #[arg(long = "tag")]
        tag: Option<String>,
        /// The label the tag enters (with --tag).
        #[arg(long = "label", default_value = "@ROOT")]
        label: String,
    },
}

fn run_command(cmd: &Command) -> ExitCode {
    use ferrentd::migrate;
    let _ = logging::init(LogLevel::Warn, LogTarget::Stderr);
    let result = match cmd {
        Command::Test {
            config,
            tests,
            input,
            source,
            expect,
            update,
            time,
        } => migrate::run_test(&migrate::TestArgs {
            config: config.clone(),
            tests: tests.clone(),
            inputs: input.clone(),
            sources: source.clone(),
            expects: expect.clone(),
            update: *update,
            time: time.clone(),
        }),
        Command::Compare {
            config,
            fluentd,
            input,
            seconds,
            sort,
            mask,
        } => {
            let args = migrate::compare::CompareArgs {
                config: config.clone(),
                fluentd: fluentd.clone(),
                inputs: input.clone(),
                seconds: *seconds,
                sort: *sort,
                mask: mask.clone(),
            };
            std::env::current_exe()
                .map_err(|e| {
                    migrate::harness::InputError(format!("cannot find ferrentd itself: {e}"))
                })
                .and_then(|me| migrate::compare::run_compare(&args, &me))
                .map(|(equal, report)| {
                    print!("{report}");
                    if equal {
                        migrate::EXIT_OK
                    } else {
                        migrate::EXIT_MISMATCH
                    }
                })
        }
        Command::Graph {
            config,
            format,
            tag,
            label,
        } => migrate::run_graph(config, format, tag.as_deref(), label).map(|text| {
            print!("{text}");
            migrate::EXIT_OK
        }),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ferrentd: {e}");
            ExitCode::from(migrate::EXIT_USAGE)
        }
    }
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
    if let Some(cmd) = &cli.command {
        return run_command(cmd);
    }
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

    if let Some(format) = &cli.report {
        let report = ferrentd::migrate::report::build(&path, parsed);
        if format == "json" {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.to_text());
        }
        return if report.status == "cannot_run" {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
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
        output_capture: None,
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
                ferrentd::metrics::health::set_reloading();
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
                        ferrentd::metrics::health::set_ready();
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
