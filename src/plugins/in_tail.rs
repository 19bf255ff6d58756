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

/// The `<group>` rate limits: groups in Fluentd's lookup order, the default one last.
struct Groups {
    pattern: RubyRegex,
    names: Vec<String>,
    rate_period: Duration,
    groups: Vec<Group>,
}

struct Group {
    /// None for the default group, which is never searched, only fallen back to.
    key: Option<regex::Regex>,
    limit: i64,
    members: Mutex<Vec<String>>,
}

/// Ruby's `Regexp#to_s`, which Fluentd joins into the group key.
fn ruby_regexp_to_s(src: &str, flags: &str) -> String {
    let on: String = ['m', 'i', 'x']
        .iter()
        .filter(|c| flags.contains(**c))
        .collect();
    let off: String = ['m', 'i', 'x']
        .iter()
        .filter(|c| !flags.contains(**c))
        .collect();
    if off.is_empty() {
        format!("(?{on}:{src})")
    } else {
        format!("(?{on}-{off}:{src})")
    }
}

impl Groups {
    fn build(g: &GroupConf, elem: &Element) -> Result<Groups, ConfigError> {
        let pattern = match &g.pattern {
            Some(p) => p.0.clone(),
            None => RubyRegex::new(DEFAULT_GROUP_PATTERN, "").map_err(|e| elem.error(e))?,
        };
        let names: Vec<String> = pattern.capture_names().into_iter().flatten().collect();
        if g.rule.is_empty() {
            return Err(elem.error("'<rule>' sections are required in <group>"));
        }
        let mut rules: Vec<&RuleConf> = g.rule.iter().collect();
        for r in &rules {
            if r.limit < -1 {
                return Err(elem.error("Metadata Group Limit >= DEFAULT_LIMIT"));
            }
        }
        // Rules naming more keys are more specific and are tried first.
        rules.sort_by_key(|r| std::cmp::Reverse(r.matches.as_ref().map_or(2, |m| m.len())));
        let default_key = vec![ruby_regexp_to_s(".*", ""); names.len()].join("_");
        let mut keys: Vec<String> = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        for r in rules {
            let mut shown = Vec::new();
            let mut rust = Vec::new();
            for name in &names {
                let (src, flags) = match r.matches.as_ref().and_then(|m| m.get(name)) {
                    Some(v) => {
                        crate::config_parser::types::regexp_source(v).map_err(|e| elem.error(e))?
                    }
                    None => (".*".to_string(), String::new()),
                };
                shown.push(ruby_regexp_to_s(&src, &flags));
                rust.push(format!("(?:{})", ruby_regex_with_flags(&src, &flags)));
            }
            let shown = shown.join("_");
            if keys.contains(&shown) {
                continue;
            }
            let key = if shown == default_key {
                None
            } else {
                Some(
                    regex::Regex::new(&rust.join("_"))
                        .map_err(|e| elem.error(format!("invalid <rule> match: {e}")))?,
                )
            };
            keys.push(shown);
            groups.push(Group {
                key,
                limit: r.limit,
                members: Mutex::new(Vec::new()),
            });
        }
        if !keys.contains(&default_key) {
            groups.push(Group {
                key: None,
                limit: -1,
                members: Mutex::new(Vec::new()),
            });
        }
        Ok(Groups {
            pattern,
            names,
            rate_period: g.rate_period.as_duration(),
            groups,
        })
    }

    /// The group a path belongs to (index into `groups`).
    fn find(&self, path: &str) -> usize {
        let default = self
            .groups
            .iter()
            .position(|g| g.key.is_none())
            .unwrap_or(0);
        let Some(caps) = self.pattern.captures_owned(path.as_bytes()) else {
            tracing::warn!("Cannot find group from metadata, Adding file in the default group");
            return default;
        };
        let by_name = self.pattern.capture_names();
        let metadata: Vec<String> = self
            .names
            .iter()
            .map(|n| {
                by_name
                    .iter()
                    .position(|x| x.as_deref() == Some(n.as_str()))
                    .and_then(|i| caps.get(i).cloned().flatten())
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let metadata = metadata.join("_");
        self.groups
            .iter()
            .position(|g| g.key.as_ref().is_some_and(|k| k.is_match(&metadata)))
            .unwrap_or(default)
    }
}

/// One watcher's share of its group's limit.
struct GroupMember {
    groups_index: usize,
    lines: u64,
    since: Option<Instant>,
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

/// Fluentd's pos file: one fixed-width line per file, updated in place.
pub struct PosFile {
    file: File,
    path: PathBuf,
    follow_inodes: bool,
    /// key (path, or inode with follow_inodes) → where its line is and what it holds.
    entries: HashMap<String, PosEntry>,
    len: u64,
}

#[derive(Clone, Copy)]
struct PosEntry {
    /// Byte offset of the position field in the file.
    seek: u64,
    pos: u64,
    inode: u64,
}

pub const UNWATCHED: u64 = u64::MAX;

/// What a pos file holds: path (or inode key) → (position, inode).
pub type SavedPositions = HashMap<String, (u64, u64)>;

/// One pos file line as Fluentd's `/^([^\t]+)\t([0-9a-fA-F]+)\t([0-9a-fA-F]+)/` reads it.
pub fn parse_pos_line(line: &[u8]) -> Option<(String, u64, u64)> {
    let tab = memchr::memchr(b'\t', line)?;
    if tab == 0 {
        return None;
    }
    let path = std::str::from_utf8(&line[..tab]).ok()?;
    let hex = |s: &[u8]| -> Option<(u64, usize)> {
        let n = s.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if n == 0 {
            return None;
        }
        let digits = std::str::from_utf8(&s[..n]).ok()?;
        Some((u64::from_str_radix(digits, 16).ok()?, n))
    };
    let rest = &line[tab + 1..];
    let (pos, n) = hex(rest)?;
    let rest = rest.get(n..)?.strip_prefix(b"\t")?;
    let (ino, _) = hex(rest)?;
    Some((path.to_string(), pos, ino))
}

fn pos_key(follow_inodes: bool, path: &str, inode: u64) -> String {
    if follow_inodes {
        inode.to_string()
    } else {
        path.to_string()
    }
}

impl PosFile {
    /// Opens (creating) and compacts the pos file: unparsable and unwatched lines dropped, the
    /// last of duplicated keys kept. Returns the file and the loaded `key → (pos, inode)` map.
    pub fn open(path: &Path, follow_inodes: bool) -> std::io::Result<(PosFile, SavedPositions)> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut pf = PosFile {
            file,
            path: path.to_path_buf(),
            follow_inodes,
            entries: HashMap::new(),
            len: 0,
        };
        pf.compact()?;
        let loaded = pf
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), (e.pos, e.inode)))
            .collect();
        Ok((pf, loaded))
    }

    /// Rewrites the file in place without unwatched, unparsable and superseded lines.
    pub fn compact(&mut self) -> std::io::Result<()> {
        let mut text = Vec::new();
        (&self.file).seek(SeekFrom::Start(0))?;
        (&self.file).read_to_end(&mut text)?;
        let mut order: Vec<String> = Vec::new();
        let mut kept: HashMap<String, (String, u64, u64)> = HashMap::new();
        for line in text.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let Some((p, pos, ino)) = parse_pos_line(line) else {
                tracing::warn!(
                    "Unparsable line in pos_file: {}",
                    String::from_utf8_lossy(line)
                );
                continue;
            };
            if pos == UNWATCHED {
                tracing::debug!("Remove unwatched line from pos_file: {p}");
                continue;
            }
            let key = pos_key(self.follow_inodes, &p, ino);
            if let Some(old) = kept.get(&key) {
                tracing::warn!(
                    "{} already exists. use latest one: deleted {}\t{:016x}\t{:016x}",
                    p,
                    old.0,
                    old.1,
                    old.2
                );
                order.retain(|k| *k != key);
            }
            order.push(key.clone());
            kept.insert(key, (p, pos, ino));
        }
        let mut body = Vec::new();
        self.entries.clear();
        for key in order {
            if let Some((p, pos, ino)) = kept.remove(&key) {
                let seek = body.len() as u64 + p.len() as u64 + 1;
                body.extend_from_slice(format!("{p}\t{pos:016x}\t{ino:016x}\n").as_bytes());
                self.entries.insert(
                    key,
                    PosEntry {
                        seek,
                        pos,
                        inode: ino,
                    },
                );
            }
        }
        self.replace_with(&body)?;
        self.len = body.len() as u64;
        Ok(())
    }

    /// Puts `body` in place of the file's content: written to a temporary file beside it and
    /// renamed over it, so a crash leaves the old or the new positions, never a torn file. Where
    /// the directory is not writable, the file is rewritten in place (as Fluentd always does).
    fn replace_with(&mut self, body: &[u8]) -> std::io::Result<()> {
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".compact{}", std::process::id()));
        let tmp = self.path.with_file_name(tmp_name);
        let replaced = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            if let Ok(meta) = self.file.metadata() {
                let _ = f.set_permissions(meta.permissions());
            }
            std::io::Write::write_all(&mut f, body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
        })();
        match replaced {
            Ok(file) => {
                self.file = file;
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::debug!("pos_file {}: rewriting in place ({e})", self.path.display());
                self.file.set_len(0)?;
                self.file.write_all_at(body, 0)
            }
        }
    }

    /// The position and inode recorded for `key`.
    fn get(&self, key: &str) -> Option<(u64, u64)> {
        self.entries.get(key).map(|e| (e.pos, e.inode))
    }

    /// Writes `pos` and `inode` for `key` (whose file is `path`), appending an entry when there
    /// is none.
    pub fn update(&mut self, key: &str, path: &str, pos: u64, inode: u64) -> std::io::Result<()> {
        match self.entries.get_mut(key) {
            Some(e) => {
                if e.pos == pos && e.inode == inode {
                    return Ok(());
                }
                e.pos = pos;
                e.inode = inode;
                let text = format!("{pos:016x}\t{inode:016x}");
                self.file.write_all_at(text.as_bytes(), e.seek)
            }
            None => {
                let line = format!("{path}\t{pos:016x}\t{inode:016x}\n");
                self.file.write_all_at(line.as_bytes(), self.len)?;
                self.entries.insert(
                    key.to_string(),
                    PosEntry {
                        seek: self.len + path.len() as u64 + 1,
                        pos,
                        inode,
                    },
                );
                self.len += line.len() as u64;
                Ok(())
            }
        }
    }
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

/// One followed path.
struct Watcher {
    path: String,
    tag: String,
    /// Matched by a glob: the watcher ends once its file is gone.
    from_glob: bool,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    startup: bool,
    stop: Arc<AtomicBool>,
    metrics: Arc<crate::metrics::TailFileMetrics>,
}

/// Where a newly opened file is read from when the pos file has nothing to say.
#[derive(Clone, Copy, PartialEq)]
enum OpenMode {
    /// Present at start-up: the tail, or the head with read_from_head.
    Startup,
    /// Found later: the head.
    Discovered,
    /// Rotated in under the watched name: the head, whatever the pos file says.
    Rotated,
}

struct OpenFile {
    /// None between updates with `open_on_every_update`.
    file: Option<File>,
    inode: u64,
    /// Offset after the last line consumed (emitted or skipped): what the pos file records.
    pos: u64,
    /// Bytes after the last complete line.
    partial: Vec<u8>,
    /// Dropping the rest of a line longer than `max_line_size`.
    skip_line: bool,
}

impl OpenFile {
    fn read_offset(&self) -> u64 {
        self.pos + self.partial.len() as u64
    }
}

impl Watcher {
    fn new(
        path: String,
        from_glob: bool,
        settings: Arc<Settings>,
        shared: Arc<Shared>,
        startup: bool,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let tag = settings.tag_for(&path);
        let metrics = settings.metrics.tail_file(&path);
        Watcher {
            metrics,
            path,
            tag,
            from_glob,
            settings,
            shared,
            startup,
            stop,
        }
    }

    fn key(&self, inode: u64) -> String {
        pos_key(self.settings.follow_inodes, &self.path, inode)
    }

    fn save_pos(&self, f: &OpenFile) {
        self.write_pos(f.inode, f.pos);
    }

    fn write_pos(&self, inode: u64, pos: u64) {
        if pos != UNWATCHED {
            self.metrics.position.set(pos);
            self.metrics.inode.set(inode);
        }
        if let Some(p) = &self.shared.pos {
            if let Ok(mut p) = p.lock() {
                if let Err(e) = p.update(&self.key(inode), &self.path, pos, inode) {
                    tracing::warn!("cannot update pos_file for {}: {}", self.path, e);
                }
            }
        }
    }

    fn claim(&self, inode: u64) -> bool {
        if !self.settings.follow_inodes {
            return true;
        }
        match self.shared.claimed.lock() {
            Ok(c) if c.contains(&inode) => false,
            Ok(mut c) => {
                c.push(inode);
                true
            }
            Err(_) => true,
        }
    }

    fn unclaim(&self, inode: u64) {
        if self.settings.follow_inodes {
            if let Ok(mut c) = self.shared.claimed.lock() {
                c.retain(|i| *i != inode);
            }
        }
    }

    /// Lets go of a file: its entry is marked unwatched unless (follow_inodes) the file still
    /// exists under another name, where a watcher of that name will pick it up.
    fn release(&self, f: OpenFile) {
        self.metrics.closed.inc();
        let renamed = self.settings.follow_inodes
            && f.file
                .as_ref()
                .and_then(|h| h.metadata().ok())
                .is_some_and(|m| m.nlink() > 0);
        if renamed {
            self.write_pos(f.inode, f.pos);
        } else {
            self.write_pos(f.inode, UNWATCHED);
        }
        self.unclaim(f.inode);
    }

    /// Opens the path. The first open of a watcher resumes from the pos file (or starts at the
    /// head/tail as Fluentd decides); files rotated in are read from the head.
    fn open(&self, mode: OpenMode, warned: &mut bool) -> Option<OpenFile> {
        let file = match File::open(&self.path) {
            Ok(f) => {
                *warned = false;
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                if !*warned {
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        tracing::warn!(
                            "{} unreadable. It is excluded and would be examined next time. ({})",
                            self.path,
                            e
                        );
                    } else {
                        tracing::warn!("cannot open {}: {}", self.path, e);
                    }
                    *warned = true;
                }
                return None;
            }
        };
        let meta = file.metadata().ok()?;
        let inode = meta.ino();
        if !self.claim(inode) {
            return None;
        }
        let key = self.key(inode);
        let saved = match self.shared.loaded.lock() {
            Ok(mut l) => l.remove(&key),
            Err(_) => None,
        };
        // With follow_inodes a renamed file continues where the watcher of its old name left.
        let live = if self.settings.follow_inodes {
            self.shared
                .pos
                .as_ref()
                .and_then(|p| p.lock().ok().and_then(|p| p.get(&key)))
                .filter(|(pos, _)| *pos != UNWATCHED)
        } else {
            None
        };
        let pos = match saved.or(live) {
            _ if mode == OpenMode::Rotated => 0,
            Some((pos, ino)) if ino == inode => {
                if pos <= meta.len() {
                    pos
                } else {
                    0
                }
            }
            // A different file than the one recorded: it was rotated while we were down.
            Some((_, ino)) if ino != 0 => 0,
            _ if mode == OpenMode::Discovered || self.settings.read_from_head => 0,
            _ => meta.len(),
        };
        let mut handle = file;
        let pos = if handle.seek(SeekFrom::Start(pos)).is_ok() {
            pos
        } else {
            0
        };
        let f = OpenFile {
            file: Some(handle),
            inode,
            pos,
            partial: Vec::new(),
            skip_line: false,
        };
        self.save_pos(&f);
        self.metrics.opened.inc();
        Some(f)
    }

    /// `open_on_every_update`: reopens a closed file when it has grown.
    fn reopen(&self, f: &mut OpenFile) -> bool {
        if f.file.is_some() {
            return true;
        }
        let Ok(file) = File::open(&self.path) else {
            return false;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        if meta.ino() != f.inode || meta.len() <= f.read_offset() {
            return false;
        }
        let mut file = file;
        if file.seek(SeekFrom::Start(f.read_offset())).is_err() {
            return false;
        }
        f.file = Some(file);
        true
    }

    fn run(self, ctx: InputContext) {
        let mut group = self.settings.groups.as_ref().map(|g| {
            let i = g.find(&self.path);
            if let Ok(mut m) = g.groups[i].members.lock() {
                m.push(self.path.clone());
            }
            GroupMember {
                groups_index: i,
                lines: 0,
                since: None,
            }
        });
        self.follow(&ctx, &mut group);
        if let (Some(g), Some(m)) = (&self.settings.groups, &group) {
            if let Ok(mut members) = g.groups[m.groups_index].members.lock() {
                if let Some(i) = members.iter().position(|p| *p == self.path) {
                    members.remove(i);
                }
            }
        }
    }

    fn follow(&self, ctx: &InputContext, group: &mut Option<GroupMember>) {
        let mut state = LineState::new(self);
        let mut open_warned = false;
        let first = if self.startup {
            OpenMode::Startup
        } else {
            OpenMode::Discovered
        };
        let mut current = self.open(first, &mut open_warned);
        let mut draining: Vec<(OpenFile, Instant)> = Vec::new();
        let mut gone_since: Option<Instant> = None;
        let chunk = if self.settings.groups.is_some() {
            GROUP_READ_CHUNK
        } else {
            READ_CHUNK
        };
        let mut io = ReadBuf {
            buf: vec![0u8; chunk],
            budget: ByteBudget::new(self.settings.bytes_per_second),
        };
        loop {
            let mut progressed = false;
            // The rotated-away files are read (their positions live only here) until rotate_wait.
            for (old, _) in draining.iter_mut() {
                // Without follow_inodes the pos entry belongs to the path's new file.
                let save = self.settings.follow_inodes;
                progressed |= self.read_some(old, &mut io, &mut state, ctx, None, save);
            }
            let mut i = 0;
            while i < draining.len() {
                if draining[i].1.elapsed() >= self.settings.rotate_wait {
                    let (old, _) = draining.remove(i);
                    self.unclaim(old.inode);
                } else {
                    i += 1;
                }
            }
            if let Some(f) = current.as_mut() {
                if !self.group_limited(group) && self.reopen(f) {
                    progressed |= self.read_some(f, &mut io, &mut state, ctx, group.as_mut(), true);
                }
            }
            if ctx.shutdown.is_set() {
                // Stop promptly: what was read is emitted, the rest stays for the next start.
                state.flush_pending(ctx);
                return;
            }
            state.flush_if_stale(ctx);
            if progressed {
                continue;
            }
            if self.settings.open_on_every_update {
                if let Some(f) = current.as_mut() {
                    f.file = None;
                }
            }
            // At EOF: look for rotation, truncation, deletion or the end of watching.
            let stopping = self.stop.load(Ordering::Relaxed);
            let meta = if stopping {
                None
            } else {
                std::fs::metadata(&self.path).ok()
            };
            match meta {
                Some(meta) => {
                    gone_since = None;
                    match current.as_mut() {
                        // Appeared (or became readable) after start-up: read from the head.
                        None => current = self.open(OpenMode::Discovered, &mut open_warned),
                        Some(f) if meta.ino() != f.inode => {
                            tracing::info!(
                                "detected rotation of {}; waiting {} seconds",
                                self.path,
                                self.settings.rotate_wait.as_secs_f64()
                            );
                            if let Some(old) = current.take() {
                                if old.file.is_some() && !self.settings.rotate_wait.is_zero() {
                                    draining.push((old, Instant::now()));
                                } else {
                                    self.unclaim(old.inode);
                                }
                            }
                            self.metrics.rotated.inc();
                            current = self.open(OpenMode::Rotated, &mut open_warned);
                            state.flush_pending(ctx);
                        }
                        Some(f) if meta.len() < f.read_offset() => {
                            tracing::info!("detected file truncation of {}", self.path);
                            f.pos = 0;
                            f.partial.clear();
                            f.skip_line = false;
                            if let Some(h) = f.file.as_mut() {
                                let _ = h.seek(SeekFrom::Start(0));
                            }
                            self.save_pos(f);
                        }
                        Some(_) => {}
                    }
                }
                None => {
                    // Deleted, moved away or no longer matched: the open handle is read to its
                    // end for rotate_wait, then released.
                    let since = *gone_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.settings.rotate_wait || current.is_none() {
                        if let Some(f) = current.take() {
                            state.flush_pending(ctx);
                            self.release(f);
                        }
                        if (self.from_glob || stopping) && draining.is_empty() {
                            return;
                        }
                    }
                }
            }
            if ctx.shutdown.wait_timeout(POLL) {
                continue;
            }
        }
    }

    /// Whether the watcher's `<group>` share of lines is used up for this rate period.
    fn group_limited(&self, member: &mut Option<GroupMember>) -> bool {
        let (Some(groups), Some(m)) = (&self.settings.groups, member.as_mut()) else {
            return false;
        };
        let g = &groups.groups[m.groups_index];
        if g.limit == 0 {
            return true;
        }
        if g.limit < 0 {
            return false;
        }
        let size = g.members.lock().map(|v| v.len()).unwrap_or(1).max(1) as u64;
        if m.lines < g.limit as u64 / size {
            return false;
        }
        match m.since {
            Some(s) if s.elapsed() < groups.rate_period => true,
            _ => {
                m.lines = 0;
                m.since = None;
                false
            }
        }
    }

    /// Reads one chunk and emits its complete lines; false at EOF (or when throttled).
    fn read_some(
        &self,
        f: &mut OpenFile,
        io: &mut ReadBuf,
        state: &mut LineState,
        ctx: &InputContext,
        group: Option<&mut GroupMember>,
        save: bool,
    ) -> bool {
        let ReadBuf { buf, budget } = io;
        let want = budget.allow(buf.len());
        if want == 0 {
            self.metrics.throttled.inc();
            return false;
        }
        let Some(handle) = f.file.as_mut() else {
            return false;
        };
        let n = match handle.read(&mut buf[..want]) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return true,
            Err(e) => {
                tracing::warn!("read error on {}: {}", self.path, e);
                return false;
            }
        };
        budget.spend(n);
        let data = &buf[..n];
        let mut es = EventStream::with_capacity(self.settings.read_lines_limit.min(1024));
        let mut lines = 0u64;
        let mut start = 0usize;
        // Bytes consumed by this call: they count towards the position.
        let mut consumed = 0u64;
        if f.skip_line || !f.partial.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(nl) => {
                    if f.skip_line {
                        // The tail of an over-long line.
                        if let Some(max) = self.settings.max_line_size {
                            tracing::warn!("received line length is longer than {max}");
                        }
                        f.skip_line = false;
                    } else {
                        let mut l = std::mem::take(&mut f.partial);
                        consumed = l.len() as u64;
                        l.extend_from_slice(&data[..nl]);
                        state.line(&l, &mut es);
                        lines += 1;
                    }
                    start = nl + 1;
                    consumed += start as u64;
                }
                None => {
                    if f.skip_line {
                        f.pos += n as u64;
                        if save {
                            self.save_pos(f);
                        }
                        return true;
                    }
                    start = 0;
                }
            }
        }
        let mut line_start = start;
        if f.partial.is_empty() {
            if let Some(last_nl) = memchr::memrchr(b'\n', &data[start..]) {
                line_start = start + last_nl + 1;
                let limit = self.settings.read_lines_limit;
                let block = &data[start..line_start];
                lines += state.lines(block, &mut es, limit, &mut |full| {
                    ctx.router.emit(&self.tag, full)
                });
            }
            consumed += (line_start - start) as u64;
        }
        if !es.is_empty() {
            ctx.router.emit(&self.tag, es);
        }
        f.partial.extend_from_slice(&data[line_start..]);
        if let Some(max) = self.settings.max_line_size {
            if f.partial.len() > max {
                // A line without end: drop it and the rest of it, so memory stays bounded.
                tracing::warn!("received line length is longer than {max}");
                consumed += f.partial.len() as u64;
                f.partial.clear();
                f.skip_line = true;
            }
        }
        f.pos += consumed;
        if let Some(m) = group {
            m.since.get_or_insert_with(Instant::now);
            m.lines += lines;
        }
        if save {
            self.save_pos(f);
        }
        true
    }
}

/// A watcher's read buffer and its `read_bytes_limit_per_second` budget.
struct ReadBuf {
    buf: Vec<u8>,
    budget: ByteBudget,
}

/// `read_bytes_limit_per_second`: a byte budget refilled every second.
struct ByteBudget {
    limit: Option<u64>,
    used: u64,
    window: Instant,
}

impl ByteBudget {
    fn new(limit: Option<u64>) -> Self {
        ByteBudget {
            limit,
            used: 0,
            window: Instant::now(),
        }
    }
    fn allow(&mut self, want: usize) -> usize {
        let Some(limit) = self.limit else { return want };
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.used = 0;
        }
        (limit.saturating_sub(self.used) as usize).min(want)
    }
    fn spend(&mut self, n: usize) {
        self.used += n as u64;
    }
}

/// Turns lines into events: chomping, size limit, transcoding, multi-line grouping, parsing.
struct LineState {
    settings: Arc<Settings>,
    path: String,
    path_value: Value,
    tag: String,
    /// Multi-line: the raw lines of the event being collected, joined with `\n`.
    pending: Vec<u8>,
    pending_since: Option<Instant>,
    transcoded: String,
}

impl LineState {
    fn new(w: &Watcher) -> Self {
        LineState {
            settings: w.settings.clone(),
            path: w.path.clone(),
            path_value: Value::from(w.path.as_str()),
            tag: w.tag.clone(),
            pending: Vec::new(),
            pending_since: None,
            transcoded: String::new(),
        }
    }

    /// Every line of `block` (each ending in `\n`); a batch that reaches `limit` events goes
    /// to `full`. Returns the number of lines.
    fn lines(
        &mut self,
        block: &[u8],
        es: &mut EventStream,
        limit: usize,
        full: &mut dyn FnMut(EventStream),
    ) -> u64 {
        let mut n = 0u64;
        let mut line_start = 0usize;
        for nl in memchr::memchr_iter(b'\n', block) {
            self.line(&block[line_start..nl], es);
            n += 1;
            line_start = nl + 1;
            if es.len() >= limit {
                full(std::mem::take(es));
            }
        }
        n
    }

    /// One line without its `\n`.
    fn line(&mut self, raw: &[u8], es: &mut EventStream) {
        if let Some(max) = self.settings.max_line_size {
            // Fluentd measures the line with its newline.
            if raw.len() + 1 > max {
                tracing::warn!("received line length is longer than {max}");
                return;
            }
        }
        if let Transcode::From(enc) = self.settings.transcode {
            self.transcoded.clear();
            let mut dec = enc.new_decoder_without_bom_handling();
            self.transcoded.reserve(
                dec.max_utf8_buffer_length(raw.len())
                    .unwrap_or(raw.len() * 3),
            );
            let _ = dec.decode_to_string(raw, &mut self.transcoded, true);
            let t = std::mem::take(&mut self.transcoded);
            self.line_text(t.as_bytes(), es);
            self.transcoded = t;
            return;
        }
        self.line_text(raw, es);
    }

    fn line_text(&mut self, line: &[u8], es: &mut EventStream) {
        if !self.settings.parser.is_multiline() {
            // `chomp`: the `\r` of a `\r\n` ending goes too.
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.parse_into(line, es);
            return;
        }
        if self.settings.parser.is_firstline(line) {
            if !self.pending.is_empty() {
                let done = std::mem::take(&mut self.pending);
                self.parse_pending(&done, es);
            }
            self.pending.extend_from_slice(line);
            self.pending_since = Some(Instant::now());
        } else if !self.pending.is_empty() {
            self.pending.push(b'\n');
            self.pending.extend_from_slice(line);
        } else {
            if self.settings.emit_unmatched {
                self.push_unmatched(line, es);
            }
            let mut shown = Vec::new();
            write_inspect_str(&mut shown, &[line, b"\n"].concat(), true);
            tracing::warn!(
                "got incomplete line before first line from {}: {}",
                self.path,
                String::from_utf8_lossy(&shown)
            );
        }
    }

    /// A collected multi-line event, chomped as Fluentd does.
    fn parse_pending(&mut self, done: &[u8], es: &mut EventStream) {
        let text = done.strip_suffix(b"\r").unwrap_or(done);
        self.parse_into(text, es);
    }

    fn push_unmatched(&self, line: &[u8], es: &mut EventStream) {
        let mut r = Record::new();
        r.insert("unmatched_line", Value::Str(line.to_vec()));
        if let Some(k) = &self.settings.path_key {
            set_path_key(&mut r, k, &self.path_value);
        }
        es.push(EventTime::now(), r);
    }

    fn parse_into(&mut self, line: &[u8], es: &mut EventStream) {
        let path_key = self.settings.path_key.as_ref();
        let path_value = &self.path_value;
        let mut matched = 0usize;
        // Fluentd treats each result without a time (or record) as a mismatch of the line.
        let mut unmatched = 0usize;
        let result = self
            .settings
            .parser
            .parse(line, &mut |time, mut record: Record| match time {
                Some(time) => {
                    if let Some(k) = path_key {
                        set_path_key(&mut record, k, path_value);
                    }
                    es.push(time, record);
                    matched += 1;
                }
                None => unmatched += 1,
            });
        if let Err(e) = &result {
            if e.0 != "pattern not matched" {
                tracing::warn!(
                    "invalid line found file=\"{}\" line={:?} error=\"{}\"",
                    self.path,
                    String::from_utf8_lossy(line),
                    e
                );
                return;
            }
            // Also after events: a multi-line text whose rest does not match is one mismatch.
            unmatched += 1;
        }
        for _ in 0..unmatched {
            if self.settings.emit_unmatched {
                self.push_unmatched(line, es);
            }
            let mut shown = Vec::new();
            write_inspect_str(&mut shown, line, true);
            tracing::warn!("pattern not matched: {}", String::from_utf8_lossy(&shown));
        }
    }

    fn flush_pending(&mut self, ctx: &InputContext) {
        if self.pending.is_empty() {
            return;
        }
        let done = std::mem::take(&mut self.pending);
        self.pending_since = None;
        let mut es = EventStream::new();
        self.parse_pending(&done, &mut es);
        if !es.is_empty() {
            ctx.router.emit(&self.tag, es);
        }
    }

    fn flush_if_stale(&mut self, ctx: &InputContext) {
        if let (Some(interval), Some(since)) = (self.settings.multiline_flush, self.pending_since) {
            if since.elapsed() >= interval {
                self.flush_pending(ctx);
            }
        }
    }
}

/// `record[path_key] ||= path`: set unless present with a truthy value.
fn set_path_key(record: &mut Record, key: &[u8], path: &Value) {
    match record.get(key) {
        None | Some(Value::Nil) | Some(Value::Bool(false)) => {
            record.insert(key.to_vec(), path.clone())
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn pos_file_format_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pos");
        std::fs::write(
            &p,
            "/a.log\t000000000000000d\t0000000000000042\n/b.log\tffffffffffffffff\t0000000000000001\n/a.log\t0000000000000020\t0000000000000042\ngarbage\n",
        )
        .unwrap();
        let (mut pf, loaded) = PosFile::open(&p, false).unwrap();
        assert_eq!(loaded.get("/a.log"), Some(&(0x20, 0x42)));
        assert!(!loaded.contains_key("/b.log"));
        pf.update("/a.log", "/a.log", 0x30, 0x42).unwrap();
        pf.update("/c.log", "/c.log", 5, 7).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "/a.log\t0000000000000030\t0000000000000042\n/c.log\t0000000000000005\t0000000000000007\n"
        );
        pf.update("/a.log", "/a.log", UNWATCHED, 0x42).unwrap();
        let before = std::fs::metadata(&p).unwrap().ino();
        pf.compact().unwrap();
        // Replaced by rename (never truncated in place), and nothing left beside it.
        assert_ne!(std::fs::metadata(&p).unwrap().ino(), before);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.pos")]);
        pf.update("/c.log", "/c.log", 6, 7).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "/c.log\t0000000000000006\t0000000000000007\n"
        );
    }

    #[test]
    fn pos_lines_read_like_fluentds_regexp() {
        assert_eq!(
            parse_pos_line(b"/a\t00000000000000FF\t0000000000000001"),
            Some(("/a".to_string(), 255, 1))
        );
        // Trailing text after the inode is ignored; short hex is fine.
        assert_eq!(
            parse_pos_line(b"/a\tff\t1junk"),
            Some(("/a".to_string(), 255, 1))
        );
        assert_eq!(parse_pos_line(b"\tff\t1"), None);
        assert_eq!(parse_pos_line(b"/a\tzz\t1"), None);
        assert_eq!(parse_pos_line(b"/a\tff"), None);
        assert_eq!(parse_pos_line(b"/a\t1ffffffffffffffff\t1"), None);
    }

    #[test]
    fn follow_inodes_pos_file_keys_by_inode_but_writes_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pos");
        std::fs::write(
            &p,
            "/a.log\t0000000000000001\t0000000000000042\n/a.log.1\t0000000000000002\t0000000000000042\n",
        )
        .unwrap();
        let (mut pf, loaded) = PosFile::open(&p, true).unwrap();
        assert_eq!(loaded.get("66"), Some(&(2, 0x42)));
        pf.update("7", "/b.log", 3, 7).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "/a.log.1\t0000000000000002\t0000000000000042\n/b.log\t0000000000000003\t0000000000000007\n"
        );
    }

    #[test]
    fn brace_alternatives() {
        assert_eq!(
            expand_braces("/l/{a,b}/*.{log,txt}", true),
            vec!["/l/a/*.log", "/l/a/*.txt", "/l/b/*.log", "/l/b/*.txt"]
        );
        assert_eq!(expand_braces("/l/{a,b}", false), vec!["/l/{a,b}"]);
        assert_eq!(expand_braces("/l/{a", true), vec!["/l/{a"]);
    }

    #[test]
    fn group_lookup_follows_fluentd_key_matching() {
        let text = r#"<group>
  pattern /^\/logs\/(?<app>[a-z]+)_(?<ns>[a-z]+)\.log$/
  <rule>
    match {"ns": "/prod/"}
    limit 10
  </rule>
  <rule>
    match {
      "ns": "/prod/",
      "app": "/web/"
    }
    limit 100
  </rule>
  <rule>
    limit 3
  </rule>
</group>
"#;
        let root = crate::config_parser::parse_str(
            text,
            std::path::Path::new("t.conf"),
            &Default::default(),
        )
        .unwrap();
        let elem = &root.elements[0];
        let g: GroupConf = PluginContext::for_tests().configure(elem, "tail").unwrap();
        let gs = Groups::build(&g, elem).unwrap();
        let limit = |p: &str| gs.groups[gs.find(p)].limit;
        assert_eq!(limit("/logs/web_prod.log"), 100);
        assert_eq!(limit("/logs/db_prod.log"), 10);
        assert_eq!(limit("/logs/db_dev.log"), 3);
        assert_eq!(limit("/elsewhere.log"), 3);
        assert_eq!(ruby_regexp_to_s("a", "i"), "(?i-mx:a)");
        assert_eq!(ruby_regexp_to_s(".*", ""), "(?-mix:.*)");
    }

    #[test]
    fn tag_expansion_from_path() {
        let s = settings_for_tests();
        assert_eq!(s.tag_for("./logs/web.log"), "app.logs.web.log");
        assert_eq!(s.tag_for("/var/log/a.log"), "app.var.log.a.log");
        assert_eq!(s.strftime("/l/%Y/x.log").len(), "/l/2024/x.log".len());
        assert_eq!(
            s.strftime("/l/%Q.log"),
            timefmt::strftime(EventTime::now(), "/l/%Q.log", &TimeZoneSpec::Utc)
        );
    }

    #[test]
    fn glob_keeps_a_leading_dot_slash() {
        let dir = tempfile::Builder::new()
            .prefix("glob-dot-")
            .tempdir_in("target")
            .unwrap();
        std::fs::write(dir.path().join("a.log"), "x\n").unwrap();
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut s = settings_for_tests();
        s.paths = vec![format!("./target/{name}/*.log")];
        let got = s.expand(&mut Vec::new());
        assert_eq!(got, vec![(format!("./target/{name}/a.log"), true)]);
        s.paths = vec![format!("target/{name}/*.log")];
        assert_eq!(
            s.expand(&mut Vec::new()),
            vec![(format!("target/{name}/a.log"), true)]
        );
    }

    fn settings_for_tests() -> Settings {
        Settings {
            paths: vec![],
            excludes: vec![],
            tag_prefix: "app.".into(),
            tag_suffix: Some(String::new()),
            glob_policy: GlobPolicy::BackwardCompatible,
            path_zone: TimeZoneSpec::Utc,
            rotate_wait: Duration::from_secs(5),
            read_from_head: true,
            refresh_interval: Duration::from_secs(60),
            read_lines_limit: 1000,
            bytes_per_second: None,
            multiline_flush: None,
            emit_unmatched: false,
            path_key: None,
            limit_recently_modified: None,
            skip_refresh_on_startup: false,
            follow_inodes: false,
            open_on_every_update: false,
            ignore_repeated_permission_error: false,
            compaction_interval: None,
            max_line_size: None,
            transcode: Transcode::None,
            groups: None,
            parser: Arc::new(NoneParser),
            metrics: crate::metrics::PluginMetrics::detached(
                "tail",
                crate::metrics::Category::Input,
            ),
        }
    }

    struct NoneParser;
    impl Parser for NoneParser {
        fn parse(
            &self,
            text: &[u8],
            emit: &mut dyn FnMut(Option<EventTime>, Record),
        ) -> Result<(), super::super::ParserError> {
            let mut r = Record::new();
            r.insert("message", Value::Str(text.to_vec()));
            emit(Some(EventTime::now()), r);
            Ok(())
        }
    }
}
