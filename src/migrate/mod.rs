//! Migration tools: `ferrentd test` (run a config's graph on fed inputs and check what each
//! output receives), `ferrentd graph` (the routing graph), and the pieces they share.
//! They sit above the engine: nothing below imports them.

pub mod compare;
pub mod graph;
pub mod harness;
pub mod report;
pub mod takeover;
pub mod testfile;

use std::path::{Path, PathBuf};

use crate::config_parser::{self, Element, ParseOptions};
use harness::{Feed, InputError};
use testfile::{Expected, ResolvedCase};

/// Exit statuses of the migration commands.
pub const EXIT_OK: u8 = 0;
pub const EXIT_MISMATCH: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Parses a config file as the main command does (`@include`, embedded Ruby), without running it.
pub fn load_config(path: &Path) -> Result<Element, InputError> {
    config_parser::parse_file(path, &ParseOptions::default()).map_err(|e| InputError(e.to_string()))
}

fn split_pair<'a>(flag: &str, s: &'a str) -> Result<(&'a str, &'a str), InputError> {
    s.split_once('=')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| InputError(format!("{flag} takes NAME=FILE, got {s:?}")))
}

/// The options of `ferrentd test`.
#[derive(Debug, Default, Clone)]
pub struct TestArgs {
    pub config: PathBuf,
    pub tests: Option<PathBuf>,
    pub inputs: Vec<String>,
    pub sources: Vec<String>,
    pub expects: Vec<String>,
    pub update: bool,
    pub time: Option<String>,
}

/// The test file beside a config: `fluent.conf` → `fluent.test.toml`.
pub fn default_test_file(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("fluent");
    config.with_file_name(format!("{stem}.test.toml"))
}

/// The case given by `--input`/`--source`/`--expect` flags.
fn case_from_flags(args: &TestArgs) -> Result<ResolvedCase, InputError> {
    let mut feeds = Vec::new();
    for i in &args.inputs {
        let (tag, file) = split_pair("--input", i)?;
        feeds.push(Feed::Records {
            tag: tag.to_string(),
            records: harness::read_records(Path::new(file))?,
        });
    }
    for s in &args.sources {
        let (id, file) = split_pair("--source", s)?;
        let text =
            std::fs::read(file).map_err(|e| InputError(format!("{file}: cannot read: {e}")))?;
        let lines = text
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .collect::<Vec<_>>();
        let mut lines = lines;
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        feeds.push(Feed::Lines {
            source_id: id.to_string(),
            lines,
            path: PathBuf::from(file),
        });
    }
    let mut expects = Vec::new();
    for e in &args.expects {
        let (id, file) = split_pair("--expect", e)?;
        expects.push((id.to_string(), Expected::Golden(PathBuf::from(file))));
    }
    Ok(ResolvedCase {
        name: "command line".to_string(),
        feeds,
        expects,
    })
}

/// `ferrentd test`: returns the exit status, printing the report on stdout.
pub fn run_test(args: &TestArgs) -> Result<u8, InputError> {
    let root = load_config(&args.config)?;
    let from_flags = !args.inputs.is_empty() || !args.sources.is_empty();
    let (time, cases) = if from_flags {
        let t = testfile::parse_time(args.time.as_deref().unwrap_or(testfile::DEFAULT_TIME))?;
        (t, vec![case_from_flags(args)?])
    } else {
        let file = args
            .tests
            .clone()
            .unwrap_or_else(|| default_test_file(&args.config));
        if !file.exists() {
            return Err(InputError(format!(
                "no inputs: give --input TAG=FILE or --source ID=FILE, or write a test file ({} was not found)",
                file.display()
            )));
        }
        let (t, cases) = testfile::load(&file)?;
        let t = match &args.time {
            Some(s) => testfile::parse_time(s)?,
            None => t,
        };
        (t, cases)
    };
    let mut failed = 0;
    let mut checked = 0;
    for case in &cases {
        if case.expects.is_empty() {
            let result = harness::run(&root, &case.feeds, time)?;
            println!(
                "case {:?}: no expectations; what each output received:",
                case.name
            );
            print!("{}", testfile::describe_result(&result));
            continue;
        }
        checked += 1;
        let outcome = testfile::run_case(&root, case, time, args.update)?;
        println!(
            "case {:?}: {}",
            case.name,
            if outcome.passed { "ok" } else { "FAILED" }
        );
        print!("{}", outcome.report);
        if !outcome.passed {
            failed += 1;
        }
    }
    if checked > 0 {
        println!("{} passed, {} failed", checked - failed, failed);
    }
    Ok(if failed == 0 { EXIT_OK } else { EXIT_MISMATCH })
}

/// `ferrentd graph`: DOT or Mermaid, or with `tag` the path that tag takes.
pub fn run_graph(
    config: &Path,
    format: &str,
    tag: Option<&str>,
    label: &str,
) -> Result<String, InputError> {
    let mut root = load_config(config)?;
    config_parser::compat::apply(&mut root).map_err(|e| InputError(e.to_string()))?;
    let topo = graph::Topology::new(&root);
    if let Some(tag) = tag {
        let mut s = topo.trace(tag, label).join("\n");
        s.push('\n');
        return Ok(s);
    }
    match format {
        "dot" => Ok(topo.graph().to_dot()),
        "mermaid" => Ok(topo.graph().to_mermaid()),
        other => Err(InputError(format!(
            "--format must be dot or mermaid, not {other:?}"
        ))),
    }
}
