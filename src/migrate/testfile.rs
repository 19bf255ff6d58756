//! `ferrentd test`: cases (inputs and the records each output must receive) from a TOML test
//! file beside the config, or one case from `--input`/`--source`/`--expect` flags. Exit status:
//! 0 every case matched, 1 a case failed (with a diff), 2 bad usage or input.
//! The format is documented in `docs/testing.md`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::harness::{self, Feed, InputError, RunResult};
use crate::config_parser::Element;
use crate::event::EventTime;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The fixed clock, RFC 3339 (default 2026-01-01T00:00:00Z).
    pub time: Option<String>,
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub input: Vec<InputSpec>,
    #[serde(default)]
    pub source: Vec<SourceSpec>,
    #[serde(default)]
    pub expect: Vec<ExpectSpec>,
}

/// Records for a tag: inline (`records`, TOML tables), JSON lines (`json`), or a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub tag: String,
    #[serde(default)]
    pub records: Vec<toml::Table>,
    #[serde(default)]
    pub json: Vec<String>,
    pub file: Option<PathBuf>,
}

/// Raw lines through the `<parse>` of the source whose `@id` is `id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub id: String,
    #[serde(default)]
    pub lines: Vec<String>,
    pub file: Option<PathBuf>,
}

/// What the output named `output` (its `@id`, else `TYPE#N`) must receive, in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub output: String,
    #[serde(default)]
    pub records: Vec<toml::Table>,
    #[serde(default)]
    pub json: Vec<String>,
    /// A JSON-lines file with the expected records; `--update` rewrites it.
    pub golden: Option<PathBuf>,
}

/// Where expected records come from, resolved.
#[derive(Debug, Clone)]
pub enum Expected {
    Lines(Vec<String>),
    Golden(PathBuf),
}

/// One case ready to run.
#[derive(Debug, Clone)]
pub struct ResolvedCase {
    pub name: String,
    pub feeds: Vec<Feed>,
    pub expects: Vec<(String, Expected)>,
}

pub const DEFAULT_TIME: &str = "2026-01-01T00:00:00Z";

pub fn parse_time(s: &str) -> Result<EventTime, InputError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| EventTime::new(t.timestamp(), t.timestamp_subsec_nanos()))
        .map_err(|e| InputError(format!("time {s:?} is not RFC 3339: {e}")))
}

fn table_to_json(t: &toml::Table) -> Result<String, InputError> {
    serde_json::to_string(t).map_err(|e| InputError(format!("cannot convert a TOML record: {e}")))
}

fn read_text(base: &Path, p: &Path) -> Result<(PathBuf, String), InputError> {
    let full = base.join(p);
    let text = std::fs::read_to_string(&full)
        .map_err(|e| InputError(format!("{}: cannot read: {e}", full.display())))?;
    Ok((full, text))
}

/// Reads and checks a test file; paths in it are relative to the file's folder.
pub fn load(path: &Path) -> Result<(EventTime, Vec<ResolvedCase>), InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError(format!("{}: cannot read: {e}", path.display())))?;
    let file: TestFile = toml::from_str(&text).map_err(|e| {
        let loc = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(" line {line},{col}")
            })
            .unwrap_or_default();
        InputError(format!("{}{loc}: {}", path.display(), e.message()))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let time = parse_time(file.time.as_deref().unwrap_or(DEFAULT_TIME))?;
    if file.cases.is_empty() {
        return Err(InputError(format!(
            "{}: no [[case]] in the file",
            path.display()
        )));
    }
    let mut cases = Vec::new();
    for c in file.cases {
        let mut feeds = Vec::new();
        for i in &c.input {
            let mut records = Vec::new();
            for t in &i.records {
                records.extend(harness::records_from_json_lines(
                    &table_to_json(t)?,
                    &c.name,
                )?);
            }
            records.extend(harness::records_from_json_lines(
                &i.json.join("\n"),
                &c.name,
            )?);
            if let Some(f) = &i.file {
                records.extend(harness::read_records(&base.join(f))?);
            }
            feeds.push(Feed::Records {
                tag: i.tag.clone(),
                records,
            });
        }
        for s in &c.source {
            let mut lines: Vec<Vec<u8>> = s.lines.iter().map(|l| l.as_bytes().to_vec()).collect();
            let mut origin = PathBuf::from(format!("{}.log", s.id));
            if let Some(f) = &s.file {
                let (full, text) = read_text(base, f)?;
                lines.extend(text.lines().map(|l| l.as_bytes().to_vec()));
                origin = full;
            }
            feeds.push(Feed::Lines {
                source_id: s.id.clone(),
                lines,
                path: origin,
            });
        }
        let mut expects = Vec::new();
        for e in &c.expect {
            let exp = match &e.golden {
                Some(g) => Expected::Golden(base.join(g)),
                None => {
                    let mut lines = Vec::new();
                    for t in &e.records {
                        lines.push(harness::normalize_json_bytes(table_to_json(t)?.as_bytes()));
                    }
                    for j in &e.json {
                        lines.push(harness::normalize_json_bytes(j.as_bytes()));
                    }
                    Expected::Lines(lines)
                }
            };
            expects.push((e.output.clone(), exp));
        }
        cases.push(ResolvedCase {
            name: c.name,
            feeds,
            expects,
        });
    }
    Ok((time, cases))
}

/// Reads expected JSON lines (normalized); a missing golden file under `--update` is empty.
fn expected_lines(e: &Expected, update: bool) -> Result<Vec<String>, InputError> {
    match e {
        Expected::Lines(l) => Ok(l.clone()),
        Expected::Golden(p) => match std::fs::read_to_string(p) {
            Ok(text) => {
                let mut out = Vec::new();
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    serde_json::from_str::<serde_json::Value>(line).map_err(|err| {
                        InputError(format!("{}:{}: not JSON ({err})", p.display(), i + 1))
                    })?;
                    out.push(harness::normalize_json_bytes(line.as_bytes()));
                }
                Ok(out)
            }
            Err(_) if update => Ok(Vec::new()),
            Err(err) => Err(InputError(format!("{}: cannot read: {err}", p.display()))),
        },
    }
}

/// The outcome of one case: its report text and whether it matched.
pub struct CaseOutcome {
    pub passed: bool,
    pub report: String,
}

/// Runs one case and compares (or, with `update`, rewrites golden files).
pub fn run_case(
    root: &Element,
    case: &ResolvedCase,
    now: EventTime,
    update: bool,
) -> Result<CaseOutcome, InputError> {
    let result = harness::run(root, &case.feeds, now)?;
    let mut report = String::new();
    let mut passed = true;
    for (name, exp) in &case.expects {
        let Some(out) = result.output(name) else {
            let names: Vec<&str> = result.outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(InputError(format!(
                "case {:?}: no output named {name} (outputs: {})",
                case.name,
                names.join(", ")
            )));
        };
        let got: Vec<String> = out
            .events
            .iter()
            .map(|e| harness::normalize_record(&e.record))
            .collect();
        if update {
            if let Expected::Golden(p) = exp {
                let mut text = got.join("\n");
                if !text.is_empty() {
                    text.push('\n');
                }
                std::fs::write(p, text)
                    .map_err(|e| InputError(format!("{}: cannot write: {e}", p.display())))?;
                let _ = writeln!(report, "  updated {} ({} records)", p.display(), got.len());
                continue;
            }
        }
        let want = expected_lines(exp, update)?;
        if want == got {
            let _ = writeln!(report, "  {name}: {} records as expected", got.len());
        } else {
            passed = false;
            let _ = writeln!(report, "  {name}: records differ (- expected, + received)");
            report.push_str(&diff(&want, &got));
        }
    }
    if !result.unparsed.is_empty() {
        let _ = writeln!(report, "  {} lines did not parse:", result.unparsed.len());
        for l in result.unparsed.iter().take(10) {
            let _ = writeln!(report, "    {l}");
        }
    }
    if result.logged_errors > 0 {
        let _ = writeln!(
            report,
            "  {} error events (no <label @ERROR> in the config: they are only logged)",
            result.logged_errors
        );
    }
    Ok(CaseOutcome { passed, report })
}

/// A line diff: `-` expected only, `+` received only, ` ` both.
pub fn diff(want: &[String], got: &[String]) -> String {
    let want_text = lines_text(want);
    let got_text = lines_text(got);
    let d = similar::TextDiff::from_lines(&want_text, &got_text);
    let mut s = String::new();
    for change in d.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        let _ = write!(s, "    {sign} {}", change.value());
        if !change.value().ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

fn lines_text(lines: &[String]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Prints what every output received, for a run without expectations.
pub fn describe_result(result: &RunResult) -> String {
    let mut s = String::new();
    for o in &result.outputs {
        let _ = writeln!(
            s,
            "== {}  {}  ({} records)",
            o.name,
            o.directive,
            o.events.len()
        );
        for e in &o.events {
            let t = chrono::DateTime::from_timestamp(e.time.sec, e.time.nsec)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S%.9f +0000").to_string())
                .unwrap_or_default();
            let _ = writeln!(s, "{t} {}: {}", e.tag, harness::normalize_record(&e.record));
        }
    }
    if !result.unparsed.is_empty() {
        let _ = writeln!(s, "== {} lines did not parse", result.unparsed.len());
        for l in &result.unparsed {
            let _ = writeln!(s, "{l}");
        }
    }
    if result.logged_errors > 0 {
        let _ = writeln!(
            s,
            "== {} error events (only logged: no <label @ERROR>)",
            result.logged_errors
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_records() {
        let want = vec!["{\"a\":1}".to_string(), "{\"a\":2}".to_string()];
        let got = vec!["{\"a\":1}".to_string(), "{\"a\":3}".to_string()];
        assert_eq!(
            diff(&want, &got),
            "      {\"a\":1}\n    - {\"a\":2}\n    + {\"a\":3}\n"
        );
    }

    #[test]
    fn test_file_errors_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.test.toml");
        std::fs::write(&p, "[[case]]\nname = \"x\"\nbogus = 1\n").unwrap();
        let e = load(&p).unwrap_err();
        assert!(
            e.0.contains("t.test.toml line 3,1: unknown field `bogus`"),
            "{}",
            e.0
        );
    }

    #[test]
    fn inline_records_keep_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.test.toml");
        std::fs::write(
            &p,
            "[[case]]\nname = \"x\"\n[[case.input]]\ntag = \"a\"\nrecords = [{ z = 1, a = \"b\" }]\n\
             [[case.expect]]\noutput = \"o\"\njson = ['{ \"z\": 1, \"a\": \"b\" }']\n",
        )
        .unwrap();
        let (_, cases) = load(&p).unwrap();
        let Feed::Records { records, .. } = &cases[0].feeds[0] else {
            panic!("not records")
        };
        assert_eq!(
            harness::normalize_record(&records[0].1),
            r#"{"z":1,"a":"b"}"#
        );
        let Expected::Lines(l) = &cases[0].expects[0].1 else {
            panic!("not lines")
        };
        assert_eq!(l, &vec![r#"{"z":1,"a":"b"}"#.to_string()]);
    }
}
