//! `ferrentd compare`: runs Fluentd and ferrentd on the same config and inputs and shows, output
//! by output, what each received, side by side.
//!
//! Both get the same rewritten config: every `<source>` is replaced by a tail source per fed
//! file (JSON lines, read from the head), and every output that would leave the process by
//! `out_stdout` with an `<inject>` that names the output in a reserved key. Their stdout lines
//! are then grouped by that key; event times are masked, as are `--mask` keys.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::InputError;
use crate::config_parser::{compat, Element, ParamValue};

/// The key out_stdout's `<inject>` adds to tell outputs apart.
const OUTPUT_KEY: &str = "__ferrentd_output__";

use crate::plugins::ROUTING_OUTPUTS;

#[derive(Debug, Clone)]
pub struct CompareArgs {
    pub config: PathBuf,
    pub fluentd: String,
    pub inputs: Vec<String>,
    pub seconds: u64,
    pub sort: bool,
    pub mask: Vec<String>,
}

/// A config value as a single-quoted literal (no `#{}` evaluation on the way back in).
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Writes an element tree back as config text.
pub fn to_config_text(e: &Element, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for p in &e.params {
        match &p.value {
            ParamValue::Str(s) => {
                let _ = writeln!(out, "{pad}{} {}", p.key, quote(s));
            }
            ParamValue::Nil => {
                let _ = writeln!(out, "{pad}{} \"#{{use_nil}}\"", p.key);
            }
            ParamValue::Default => {
                let _ = writeln!(out, "{pad}{} \"#{{use_default}}\"", p.key);
            }
        }
    }
    for c in &e.elements {
        if c.arg.is_empty() {
            let _ = writeln!(out, "{pad}<{}>", c.name);
        } else {
            let _ = writeln!(out, "{pad}<{} {}>", c.name, c.arg);
        }
        to_config_text(c, depth + 1, out);
        let _ = writeln!(out, "{pad}</{}>", c.name);
    }
}

/// Replaces terminal outputs (at any depth of copy stores) with labelled out_stdout.
fn capture_outputs(e: &mut Element, counter: &mut usize, names: &mut Vec<String>) {
    for c in &mut e.elements {
        let is_output =
            c.name == "match" || (c.name == "store" && (e.name == "match" || e.name == "store"));
        if !is_output {
            if c.name == "label" || c.name == "worker" {
                capture_outputs(c, counter, names);
            }
            continue;
        }
        let ty = c.plugin_type().unwrap_or("").to_string();
        if ROUTING_OUTPUTS.contains(&ty.as_str()) {
            capture_outputs(c, counter, names);
            continue;
        }
        let name = c
            .get("@id")
            .map(str::to_string)
            .unwrap_or_else(|| format!("{ty}#{counter}"));
        *counter += 1;
        names.push(name.clone());
        let mut stand_in = Element::new(c.name.clone(), c.arg.clone(), c.span.clone());
        stand_in.set("@type", "stdout");
        let mut inject = Element::new("inject", "", c.span.clone());
        inject.set("hostname_key", OUTPUT_KEY);
        inject.set("hostname", &name);
        stand_in.elements.push(inject);
        *c = stand_in;
    }
}

/// The config both implementations run, and the names of the captured outputs.
pub fn rewrite(
    root: &Element,
    feeds: &[(String, PathBuf)],
    state_dir: &Path,
) -> Result<(String, Vec<String>), InputError> {
    let mut r = root.clone();
    compat::apply(&mut r).map_err(|e| InputError(e.to_string()))?;
    r.elements.retain(|e| e.name != "source");
    for w in r.elements.iter_mut().filter(|e| e.name == "worker") {
        w.elements.retain(|e| e.name != "source");
    }
    let mut names = Vec::new();
    let mut counter = 0;
    capture_outputs(&mut r, &mut counter, &mut names);
    let mut text = String::new();
    for (i, (tag, file)) in feeds.iter().enumerate() {
        let abs = std::fs::canonicalize(file)
            .map_err(|e| InputError(format!("{}: {e}", file.display())))?;
        let _ = write!(
            text,
            "<source>\n  @type tail\n  path {}\n  pos_file {}\n  read_from_head true\n  tag {}\n  <parse>\n    @type json\n    time_key __ferrentd_no_time__\n  </parse>\n</source>\n",
            quote(&abs.display().to_string()),
            quote(&state_dir.join(format!("input{i}.pos")).display().to_string()),
            quote(tag)
        );
    }
    let mut body = String::new();
    for e in &r.elements {
        if e.arg.is_empty() {
            let _ = writeln!(body, "<{}>", e.name);
        } else {
            let _ = writeln!(body, "<{} {}>", e.name, e.arg);
        }
        to_config_text(e, 1, &mut body);
        let _ = writeln!(body, "</{}>", e.name);
    }
    text.push_str(&body);
    Ok((text, names))
}

/// Runs `cmd -c conf` in its own process group for `seconds`, then SIGTERM (SIGKILL after 20 s);
/// returns its stdout.
fn run_for(cmd: &[String], conf: &Path, seconds: u64, log: &Path) -> Result<String, InputError> {
    use std::os::unix::process::CommandExt;
    let (prog, args) = cmd
        .split_first()
        .ok_or_else(|| InputError("empty command".to_string()))?;
    let log_file =
        std::fs::File::create(log).map_err(|e| InputError(format!("{}: {e}", log.display())))?;
    let mut child = Command::new(prog)
        .args(args)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .process_group(0)
        .spawn()
        .map_err(|e| InputError(format!("cannot run {prog}: {e}")))?;
    let pgid = child.id() as i32;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| InputError("no stdout".to_string()))?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let mut exited = false;
    while start.elapsed() < Duration::from_secs(seconds) {
        if let Ok(Some(_)) = child.try_wait() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !exited {
        // SAFETY: signals the process group this function started.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let stop = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if stop.elapsed() > Duration::from_secs(20) {
                // SAFETY: as above.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    reader
        .join()
        .map_err(|_| InputError("the stdout reader failed".to_string()))
}

/// Groups out_stdout lines by output: `(output, "TAG: RECORD")`, times dropped.
pub fn parse_stdout(text: &str, mask: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        // TIME (3 fields: date, clock, zone) TAG: JSON
        let mut parts = line.splitn(4, ' ');
        let (Some(_), Some(_), Some(_), Some(rest)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some((tag, json)) = rest.split_once(": ") else {
            continue;
        };
        // Each program's own log lines (`fluent.LEVEL` events) differ by nature.
        if tag.starts_with("fluent.") {
            continue;
        }
        let Ok(serde_json::Value::Object(mut m)) = serde_json::from_str::<serde_json::Value>(json)
        else {
            continue;
        };
        let Some(serde_json::Value::String(name)) = m.shift_remove(OUTPUT_KEY) else {
            continue;
        };
        for k in mask {
            if let Some(v) = m.get_mut(k) {
                *v = serde_json::Value::String("<masked>".to_string());
            }
        }
        out.push((name, format!("{tag}: {}", serde_json::Value::Object(m))));
    }
    out
}

fn side_by_side(left: &[String], right: &[String]) -> String {
    let d = similar::capture_diff_slices(similar::Algorithm::Myers, left, right);
    let mut s = String::new();
    let width = 60;
    let cut = |t: &str| -> String {
        if t.chars().count() > width {
            let mut c: String = t.chars().take(width - 1).collect();
            c.push('…');
            c
        } else {
            t.to_string()
        }
    };
    for op in d {
        for change in op.iter_changes(left, right) {
            let v = change.value();
            let line = match change.tag() {
                similar::ChangeTag::Equal => format!("  {:<width$} | {}", cut(&v), cut(&v)),
                similar::ChangeTag::Delete => format!("< {:<width$} |", cut(&v)),
                similar::ChangeTag::Insert => format!("> {:<width$} | {}", "", cut(&v)),
            };
            let _ = writeln!(s, "{}", line.trim_end());
        }
    }
    s
}

/// Runs both and returns (equal, report).
pub fn run_compare(args: &CompareArgs, ferrentd: &Path) -> Result<(bool, String), InputError> {
    let root = super::load_config(&args.config)?;
    let mut feeds = Vec::new();
    for i in &args.inputs {
        let (tag, file) = i
            .split_once('=')
            .ok_or_else(|| InputError(format!("--input takes TAG=FILE, got {i:?}")))?;
        if !Path::new(file).is_file() {
            return Err(InputError(format!("{file}: no such file")));
        }
        feeds.push((tag.to_string(), PathBuf::from(file)));
    }
    if feeds.is_empty() {
        return Err(InputError("give at least one --input TAG=FILE".to_string()));
    }
    let dir = tempfile::Builder::new()
        .prefix("ferrentd-compare")
        .tempdir()
        .map_err(|e| InputError(format!("cannot make a temporary folder: {e}")))?;
    let mut results = Vec::new();
    let mut names = Vec::new();
    let fluentd_cmd: Vec<String> = args
        .fluentd
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let ours = vec![ferrentd.display().to_string()];
    for (who, cmd) in [("fluentd", &fluentd_cmd), ("ferrentd", &ours)] {
        let state = dir.path().join(who);
        std::fs::create_dir_all(&state).map_err(|e| InputError(e.to_string()))?;
        let (text, n) = rewrite(&root, &feeds, &state)?;
        names = n;
        let conf = state.join("fluent.conf");
        std::fs::write(&conf, text).map_err(|e| InputError(e.to_string()))?;
        let out = run_for(cmd, &conf, args.seconds, &state.join("log"))?;
        results.push(parse_stdout(&out, &args.mask));
    }
    let mut report = String::new();
    let mut equal = true;
    for name in &names {
        let pick = |r: &[(String, String)]| -> Vec<String> {
            let mut v: Vec<String> = r
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, l)| l.clone())
                .collect();
            if args.sort {
                v.sort();
            }
            v
        };
        let (l, r) = (pick(&results[0]), pick(&results[1]));
        if l == r {
            let _ = writeln!(report, "== {name}: same {} events", l.len());
        } else {
            equal = false;
            let _ = writeln!(
                report,
                "== {name}: differs (fluentd {} events, ferrentd {})",
                l.len(),
                r.len()
            );
            let _ = writeln!(report, "  {:<60} | ferrentd", "fluentd");
            report.push_str(&side_by_side(&l, &r));
        }
    }
    let _ = writeln!(report, "{}", if equal { "equal" } else { "different" });
    Ok((equal, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_replaces_sources_and_terminal_outputs() {
        let text = "<source>\n  @type forward\n</source>\n<filter **>\n  @type record_transformer\n  <record>\n    x \"${tag}\"\n  </record>\n</filter>\n<match a.**>\n  @type copy\n  <store>\n    @type elasticsearch\n    @id es\n    host h\n  </store>\n  <store>\n    @type relabel\n    @label @L\n  </store>\n</match>\n<label @L>\n  <match **>\n    @type file\n    path /x\n  </match>\n</label>\n";
        let root = crate::config_parser::parse_str(text, Path::new("t.conf"), &Default::default())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{}\n").unwrap();
        let (conf, names) = rewrite(&root, &[("a.b".to_string(), input)], dir.path()).unwrap();
        assert_eq!(names, vec!["es", "file#1"]);
        assert!(!conf.contains("forward"));
        assert!(conf.contains("  <store>\n    @type 'stdout'\n    <inject>\n      hostname_key '__ferrentd_output__'\n      hostname 'es'\n    </inject>\n  </store>"), "{conf}");
        assert!(conf.contains("x '${tag}'"));
        // The rewritten config parses back.
        crate::config_parser::parse_str(&conf, Path::new("r.conf"), &Default::default()).unwrap();
    }

    #[test]
    fn stdout_lines_are_grouped_and_masked() {
        let out = "2026-01-01 00:00:00.000000000 +0000 a.b: {\"x\":1,\"id\":\"r1\",\"__ferrentd_output__\":\"es\"}\nnoise\n2026-01-01 00:00:00.000000000 +0000 fluent.info: {\"message\":\"m\",\"__ferrentd_output__\":\"es\"}\n2026-01-01 00:00:01.000000000 +0000 a.b: {\"x\":2,\"__ferrentd_output__\":\"f\"}\n";
        let got = parse_stdout(out, &["id".to_string()]);
        assert_eq!(
            got,
            vec![
                (
                    "es".to_string(),
                    "a.b: {\"x\":1,\"id\":\"<masked>\"}".to_string()
                ),
                ("f".to_string(), "a.b: {\"x\":2}".to_string())
            ]
        );
    }
}
