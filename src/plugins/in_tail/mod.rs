//! `@type tail`: follows files, parses each line with its `<parse>` section and emits the events.
//! Positions are kept in Fluentd's pos file format (`PATH\tPOS\tINODE`, 16 hex digits each), so
//! a node can switch from Fluentd and resume where it stopped. Each watched file has a thread of
//! its own; a line is emitted only once complete (a last line without a newline waits).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::formatter_hash::write_inspect_str;
use super::{Input, InputContext, Parser, PluginContext};
use crate::config_parser::types::{ruby_regex_with_flags, Regexp, RubyRegex, Size, Time};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::timefmt::{self, TimeZoneSpec};

mod group;
mod pos_file;
#[cfg(test)]
mod tests;
mod watcher;

use group::*;
use pos_file::*;
pub use pos_file::{parse_pos_line, PosFile, UNWATCHED};
use watcher::*;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum GlobPolicy {
    BackwardCompatible,
    Extended,
    Always,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct TailConfig {
    path: String,
    tag: String,
    #[serde(default = "default_delimiter")]
    path_delimiter: String,
    #[serde(default = "default_glob_policy")]
    glob_policy: GlobPolicy,
    #[serde(default)]
    exclude_path: Vec<String>,
    #[serde(default = "default_rotate_wait")]
    rotate_wait: Time,
    pos_file: Option<String>,
    pos_file_compaction_interval: Option<Time>,
    #[serde(default)]
    read_from_head: bool,
    #[serde(default = "default_refresh_interval")]
    refresh_interval: Time,
    #[serde(default = "default_read_lines_limit")]
    read_lines_limit: i64,
    #[serde(default = "default_bytes_limit")]
    read_bytes_limit_per_second: Size,
    multiline_flush_interval: Option<Time>,
    #[serde(default)]
    emit_unmatched_lines: bool,
    #[serde(default = "yes")]
    enable_watch_timer: bool,
    #[serde(default = "yes")]
    enable_stat_watcher: bool,
    encoding: Option<String>,
    from_encoding: Option<String>,
    path_key: Option<String>,
    #[serde(default)]
    open_on_every_update: bool,
    limit_recently_modified: Option<Time>,
    #[serde(default)]
    skip_refresh_on_startup: bool,
    #[serde(default)]
    ignore_repeated_permission_error: bool,
    path_timezone: Option<String>,
    #[serde(default)]
    follow_inodes: bool,
    max_line_size: Option<Size>,
    parse: Option<Nested>,
    group: Option<GroupConf>,
}

/// `<group>`: per-group line rate limits, the group chosen from the path's named captures.
#[derive(Deserialize)]
struct GroupConf {
    pattern: Option<Regexp>,
    #[serde(default = "default_rate_period")]
    rate_period: Time,
    #[serde(default)]
    rule: Vec<RuleConf>,
}

#[derive(Deserialize)]
struct RuleConf {
    #[serde(rename = "match")]
    matches: Option<BTreeMap<String, String>>,
    #[serde(default = "unlimited")]
    limit: i64,
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_glob_policy() -> GlobPolicy {
    GlobPolicy::BackwardCompatible
}
fn default_rotate_wait() -> Time {
    Time(5.0)
}
fn default_refresh_interval() -> Time {
    Time(60.0)
}
fn default_read_lines_limit() -> i64 {
    1000
}
fn default_bytes_limit() -> Size {
    Size(-1)
}
fn default_rate_period() -> Time {
    Time(5.0)
}
fn unlimited() -> i64 {
    -1
}
fn yes() -> bool {
    true
}

/// Fluentd's default `<group>` pattern: Kubernetes container log file names.
const DEFAULT_GROUP_PATTERN: &str = r"^\/var\/log\/containers\/(?<podname>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\/[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)_(?<namespace>[^_]+)_(?<container>.+)-(?<docker_id>[a-z0-9]{64})\.log$";

/// Bytes read per system call. Small enough that many watched files stay cheap in memory.
const READ_CHUNK: usize = 128 << 10;
/// Fluentd reads 8 KiB at a time; with a `<group>` limit the check happens that often.
const GROUP_READ_CHUNK: usize = 8192;
/// How often an idle watcher looks at its file.
const POLL: Duration = Duration::from_millis(100);

/// How bytes are turned into text: as they are, or transcoded to UTF-8.
#[derive(Clone, Copy)]
enum Transcode {
    None,
    From(&'static encoding_rs::Encoding),
}

struct Settings {
    paths: Vec<String>,
    excludes: Vec<String>,
    tag_prefix: String,
    tag_suffix: Option<String>,
    glob_policy: GlobPolicy,
    path_zone: TimeZoneSpec,
    rotate_wait: Duration,
    read_from_head: bool,
    refresh_interval: Duration,
    read_lines_limit: usize,
    bytes_per_second: Option<u64>,
    multiline_flush: Option<Duration>,
    emit_unmatched: bool,
    path_key: Option<Vec<u8>>,
    limit_recently_modified: Option<Duration>,
    skip_refresh_on_startup: bool,
    follow_inodes: bool,
    open_on_every_update: bool,
    ignore_repeated_permission_error: bool,
    compaction_interval: Option<Duration>,
    max_line_size: Option<usize>,
    transcode: Transcode,
    groups: Option<Groups>,
    parser: Arc<dyn Parser>,
    /// Per-file metrics (prometheus_tail_monitor) live here.
    metrics: Arc<crate::metrics::PluginMetrics>,
}

pub struct TailInput {
    settings: Arc<Settings>,
    pos_file: Option<PathBuf>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: TailConfig = ctx.configure(elem, "tail")?;
    let parse = elem
        .child("parse")
        .ok_or_else(|| elem.error("<parse> section is required."))?;
    let parser: Arc<dyn Parser> = Arc::from(super::new_parser(parse, ctx)?);
    let transcode = match (&cfg.encoding, &cfg.from_encoding) {
        (None, Some(_)) => {
            return Err(elem.error(
                "tail: 'from_encoding' parameter must be specified with 'encoding' parameter.",
            ))
        }
        (Some(to), from) => {
            let lookup = |name: &str| {
                encoding_rs::Encoding::for_label(name.as_bytes())
                    .ok_or_else(|| elem.error(format!("tail: unknown encoding name - {name}")))
            };
            let to_enc = lookup(to)?;
            match from {
                Some(f) => {
                    let from_enc = lookup(f)?;
                    if to_enc != encoding_rs::UTF_8 {
                        return Err(elem.error(format!(
                            "tail: only UTF-8 output is supported, got encoding {to}"
                        )));
                    }
                    if from_enc == encoding_rs::UTF_8 {
                        Transcode::None
                    } else {
                        Transcode::From(from_enc)
                    }
                }
                None => Transcode::None,
            }
        }
        (None, None) => Transcode::None,
    };
    if !cfg.enable_watch_timer && !cfg.enable_stat_watcher {
        return Err(elem.error("either of enable_watch_timer or enable_stat_watcher must be true"));
    }
    let (tag_prefix, tag_suffix) = match cfg.tag.split_once('*') {
        Some((p, s)) => (p.to_string(), Some(s.to_string())),
        None => (cfg.tag.clone(), None),
    };
    if cfg.glob_policy == GlobPolicy::Always && cfg.path_delimiter == "," {
        return Err(
            elem.error("cannot use glob_policy as always with the default path_delimiter: `,\"")
        );
    }
    let paths: Vec<String> = cfg
        .path
        .split(cfg.path_delimiter.as_str())
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if paths.is_empty() {
        return Err(elem.error("tail: 'path' parameter is required on tail input"));
    }
    if cfg.follow_inodes && cfg.pos_file.is_none() {
        return Err(elem.error("Can't follow inodes without pos_file configuration parameter"));
    }
    let path_zone = match &cfg.path_timezone {
        Some(tz) => timefmt::parse_timezone(tz)
            .ok_or_else(|| elem.error(format!("Unsupported timezone '{tz}'")))?,
        None => TimeZoneSpec::Local,
    };
    let groups = match &cfg.group {
        Some(g) => Some(Groups::build(g, elem)?),
        None => None,
    };
    if let Some(pos_file) = &cfg.pos_file {
        let id = crate::buffer::plugin_id(elem);
        if let Err(first) = ctx
            .variable_store
            .claim(&format!("in_tail:{pos_file}"), &id)
        {
            let at = elem
                .param("pos_file")
                .map(|p| &p.span)
                .unwrap_or(&elem.span);
            return Err(ConfigError::at(
                format!(
                    "Other 'in_tail' plugin already use same pos_file path: plugin_id = {first}, pos_file path = {pos_file}"
                ),
                at,
            ));
        }
    }
    if cfg.pos_file.is_none() {
        tracing::warn!("'pos_file PATH' parameter is not set to a 'tail' source.");
        tracing::warn!(
            "this parameter is highly recommended to save the position to resume tailing."
        );
    }
    let settings = Settings {
        paths,
        excludes: cfg.exclude_path,
        tag_prefix,
        tag_suffix,
        glob_policy: cfg.glob_policy,
        path_zone,
        rotate_wait: cfg.rotate_wait.as_duration(),
        read_from_head: cfg.read_from_head,
        refresh_interval: cfg
            .refresh_interval
            .as_duration()
            .max(Duration::from_millis(100)),
        read_lines_limit: cfg.read_lines_limit.max(1) as usize,
        bytes_per_second: if cfg.read_bytes_limit_per_second.0 < 0 {
            None
        } else {
            if cfg.read_bytes_limit_per_second.0 < 8192 {
                tracing::warn!(
                    "Should specify greater equal than 8192. Use 8192 for read_bytes_limit_per_second"
                );
            }
            Some(cfg.read_bytes_limit_per_second.0.max(8192) as u64)
        },
        multiline_flush: cfg.multiline_flush_interval.map(|t| t.as_duration()),
        emit_unmatched: cfg.emit_unmatched_lines,
        path_key: cfg.path_key.map(String::into_bytes),
        limit_recently_modified: cfg.limit_recently_modified.map(|t| t.as_duration()),
        skip_refresh_on_startup: cfg.skip_refresh_on_startup,
        follow_inodes: cfg.follow_inodes,
        open_on_every_update: cfg.open_on_every_update,
        ignore_repeated_permission_error: cfg.ignore_repeated_permission_error,
        compaction_interval: cfg
            .pos_file_compaction_interval
            .map(|t| t.as_duration().max(Duration::from_millis(100))),
        max_line_size: cfg.max_line_size.map(|s| s.0.max(0) as usize),
        transcode,
        groups,
        parser,
        metrics: crate::metrics::for_elem(elem, crate::metrics::Category::Input),
    };
    Ok(Box::new(TailInput {
        settings: Arc::new(settings),
        pos_file: cfg.pos_file.map(PathBuf::from),
    }))
}

impl Settings {
    /// `tag a.*` → `a.` + the path with `/` as `.`, dots squeezed, no leading dot.
    fn tag_for(&self, path: &str) -> String {
        match &self.tag_suffix {
            None => self.tag_prefix.clone(),
            Some(suffix) => {
                let mut t = String::with_capacity(path.len());
                for c in path.chars() {
                    let c = if c == '/' { '.' } else { c };
                    if c == '.' && t.ends_with('.') {
                        continue;
                    }
                    t.push(c);
                }
                let t = t.trim_start_matches('.');
                format!("{}{}{}", self.tag_prefix, t, suffix)
            }
        }
    }

    fn is_glob(&self, p: &str) -> bool {
        match self.glob_policy {
            GlobPolicy::BackwardCompatible => p.contains('*'),
            GlobPolicy::Extended => p.contains(['*', '?', '[']),
            GlobPolicy::Always => p.contains(['*', '?', '[', '{']),
        }
    }

    fn strftime(&self, p: &str) -> String {
        if p.contains('%') {
            timefmt::strftime(EventTime::now(), p, &self.path_zone)
        } else {
            p.to_string()
        }
    }

    /// Glob expansion, with `{a,b}` alternatives under `glob_policy always`.
    fn glob(&self, pat: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for p in expand_braces(pat, self.glob_policy == GlobPolicy::Always) {
            if let Ok(g) = glob::glob(&p) {
                // Ruby's Dir.glob keeps a leading `./` of the pattern; path_key and the log
                // lines show the path that way.
                let dot = p.starts_with("./");
                out.extend(g.filter_map(Result::ok).map(|e| {
                    if dot && !e.starts_with(".") {
                        Path::new(".").join(e)
                    } else {
                        e
                    }
                }));
            }
        }
        out
    }

    /// The files the `path` list names now, minus `exclude_path`; each with whether it came
    /// from a glob (such watchers end when their file goes away).
    fn expand(&self, warned: &mut Vec<String>) -> Vec<(String, bool)> {
        let mut excluded: Vec<PathBuf> = Vec::new();
        for ex in &self.excludes {
            let pat = self.strftime(ex);
            if self.is_glob(&pat) {
                excluded.extend(self.glob(&pat));
            } else {
                excluded.push(PathBuf::from(pat));
            }
        }
        let mut out: Vec<(String, bool)> = Vec::new();
        for p in &self.paths {
            let pat = self.strftime(p);
            if self.is_glob(&pat) {
                for entry in self.glob(&pat) {
                    if entry.is_dir() || excluded.contains(&entry) {
                        continue;
                    }
                    let s = entry.to_string_lossy().into_owned();
                    if !readable(&entry) && !self.ignore_repeated_permission_error {
                        tracing::warn!(
                            "{s} unreadable. It is excluded and would be examined next time."
                        );
                        continue;
                    } else if !readable(&entry) {
                        if !warned.contains(&s) {
                            tracing::warn!(
                                "{s} unreadable. It is excluded and would be examined next time."
                            );
                            warned.push(s.clone());
                        }
                        continue;
                    }
                    if let Some(limit) = self.limit_recently_modified {
                        let age = std::fs::metadata(&entry)
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|m| SystemTime::now().duration_since(m).ok());
                        if age.is_some_and(|a| a > limit) {
                            continue;
                        }
                    }
                    if !out.iter().any(|(q, _)| *q == s) {
                        out.push((s, true));
                    }
                }
            } else if !excluded.contains(&PathBuf::from(&pat))
                && !out.iter().any(|(q, _)| *q == pat)
            {
                out.push((pat, false));
            }
        }
        out
    }
}

/// `{a,b}` alternatives (Ruby's `File::FNM_EXTGLOB`), which the glob crate lacks.
fn expand_braces(pat: &str, enabled: bool) -> Vec<String> {
    if !enabled {
        return vec![pat.to_string()];
    }
    let Some(open) = pat.find('{') else {
        return vec![pat.to_string()];
    };
    let mut depth = 0;
    let mut close = None;
    for (i, c) in pat[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![pat.to_string()];
    };
    let inner = &pat[open + 1..close];
    let mut alts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                alts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    alts.push(&inner[start..]);
    let mut out = Vec::new();
    for a in alts {
        let p = format!("{}{}{}", &pat[..open], a, &pat[close + 1..]);
        out.extend(expand_braces(&p, true));
    }
    out
}

fn readable(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::R_OK) == 0 }
}

struct Shared {
    pos: Option<Mutex<PosFile>>,
    /// Positions read at start-up, each taken by the first watcher that opens its file.
    loaded: Mutex<SavedPositions>,
    /// Inodes a watcher has open (follow_inodes: a renamed file is read by one watcher only).
    claimed: Mutex<Vec<u64>>,
}

impl Input for TailInput {
    fn run(self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let (pos, loaded) = match &self.pos_file {
            Some(p) => {
                let (f, m) = PosFile::open(p, self.settings.follow_inodes)
                    .map_err(|e| anyhow::anyhow!("pos_file {}: {}", p.display(), e))?;
                (Some(Mutex::new(f)), m)
            }
            None => (None, HashMap::new()),
        };
        let shared = Arc::new(Shared {
            pos,
            loaded: Mutex::new(loaded),
            claimed: Mutex::new(Vec::new()),
        });
        let mut watchers: HashMap<String, (JoinHandle<()>, Arc<AtomicBool>)> = HashMap::new();
        let mut warned = Vec::new();
        let mut first = true;
        let mut last_refresh = Instant::now();
        let mut last_compaction = Instant::now();
        loop {
            if first || last_refresh.elapsed() >= self.settings.refresh_interval {
                let startup = first;
                first = false;
                last_refresh = Instant::now();
                if !(startup && self.settings.skip_refresh_on_startup) {
                    watchers.retain(|_, (h, _)| !h.is_finished());
                    let targets = self.settings.expand(&mut warned);
                    // Files no longer matched are released after rotate_wait, as Fluentd does.
                    for (path, (_, stop)) in &watchers {
                        let matched = targets.iter().any(|(p, _)| p == path);
                        stop.store(!matched, Ordering::Relaxed);
                    }
                    for (path, from_glob) in targets {
                        if watchers.contains_key(&path) {
                            continue;
                        }
                        let stop = Arc::new(AtomicBool::new(false));
                        let w = Watcher::new(
                            path.clone(),
                            from_glob,
                            self.settings.clone(),
                            shared.clone(),
                            startup,
                            stop.clone(),
                        );
                        let ctx2 = InputContext {
                            router: ctx.router.clone(),
                            errors: ctx.errors.clone(),
                            shutdown: ctx.shutdown.clone(),
                            runtime: ctx.runtime.clone(),
                        };
                        let h = std::thread::Builder::new()
                            .name(format!("tail:{path}"))
                            .spawn(move || w.run(ctx2))?;
                        watchers.insert(path, (h, stop));
                    }
                }
            }
            if let (Some(interval), Some(pf)) = (self.settings.compaction_interval, &shared.pos) {
                if last_compaction.elapsed() >= interval {
                    last_compaction = Instant::now();
                    if let Ok(mut pf) = pf.lock() {
                        if let Err(e) = pf.compact() {
                            tracing::warn!(
                                "pos_file {}: compaction failed: {}",
                                pf.path.display(),
                                e
                            );
                        }
                    }
                }
            }
            if ctx.shutdown.wait_timeout(Duration::from_millis(200)) {
                break;
            }
        }
        for (_, (h, _)) in watchers {
            let _ = h.join();
        }
        Ok(())
    }
}
