//! `@type tail`: follows files, parses each line with its `<parse>` section and emits the events.
//! Positions are kept in Fluentd's pos file format (`PATH\tPOS\tINODE`, 16 hex digits each), so
//! a node can switch from Fluentd and resume where it stopped. Each watched file has a thread of
//! its own; a line is emitted only once complete (a last line without a newline waits).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::{Input, InputContext, Parser, PluginContext};
use crate::config_parser::types::{Size, Time};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::{EventStream, EventTime, Record, Value};

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum GlobPolicy {
    BackwardCompatible,
    Extended,
    Always,
}

#[derive(Debug, Deserialize)]
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
    group: Option<Nested>,
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
fn yes() -> bool {
    true
}

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
    max_line_size: Option<usize>,
    transcode: Transcode,
    parser: Arc<dyn Parser>,
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
            return Err(elem.error("tail: 'from_encoding' parameter must be specified with 'encoding' parameter."))
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
                        return Err(elem.error(format!("tail: only UTF-8 output is supported, got encoding {to}")));
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
    let (tag_prefix, tag_suffix) = match cfg.tag.split_once('*') {
        Some((p, s)) => (p.to_string(), Some(s.to_string())),
        None => (cfg.tag.clone(), None),
    };
    let paths: Vec<String> = cfg
        .path
        .split(cfg.path_delimiter.as_str())
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if paths.is_empty() {
        return Err(elem.error("tail: 'path' parameter is required"));
    }
    if cfg.follow_inodes && cfg.pos_file.is_none() {
        return Err(elem.error("tail: 'follow_inodes' requires 'pos_file'"));
    }
    if cfg.pos_file.is_none() {
        tracing::warn!("'pos_file PATH' parameter is not set to a 'tail' source.");
        tracing::warn!("this parameter is highly recommended to save the position to resume tailing.");
    }
    let settings = Settings {
        paths,
        excludes: cfg.exclude_path,
        tag_prefix,
        tag_suffix,
        glob_policy: cfg.glob_policy,
        rotate_wait: cfg.rotate_wait.as_duration(),
        read_from_head: cfg.read_from_head,
        refresh_interval: cfg.refresh_interval.as_duration().max(Duration::from_millis(100)),
        read_lines_limit: cfg.read_lines_limit.max(1) as usize,
        bytes_per_second: if cfg.read_bytes_limit_per_second.0 < 0 {
            None
        } else {
            Some(cfg.read_bytes_limit_per_second.0.max(8192) as u64)
        },
        multiline_flush: cfg.multiline_flush_interval.map(|t| t.as_duration()),
        emit_unmatched: cfg.emit_unmatched_lines,
        path_key: cfg.path_key.map(String::into_bytes),
        limit_recently_modified: cfg.limit_recently_modified.map(|t| t.as_duration()),
        skip_refresh_on_startup: cfg.skip_refresh_on_startup,
        follow_inodes: cfg.follow_inodes,
        max_line_size: cfg.max_line_size.map(|s| s.0.max(0) as usize),
        transcode,
        parser,
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
            GlobPolicy::Extended | GlobPolicy::Always => p.contains(['*', '?', '[']),
        }
    }

    /// The files the `path` list names now, minus `exclude_path`.
    fn expand(&self) -> Vec<String> {
        let now = chrono::Local::now();
        let mut out: Vec<String> = Vec::new();
        let mut excluded: Vec<PathBuf> = Vec::new();
        for ex in &self.excludes {
            let pat = now.format(ex).to_string();
            if let Ok(g) = glob::glob(&pat) {
                excluded.extend(g.filter_map(Result::ok));
            }
        }
        for p in &self.paths {
            let pat = if p.contains('%') { now.format(p).to_string() } else { p.clone() };
            if self.is_glob(&pat) {
                if let Ok(g) = glob::glob(&pat) {
                    for entry in g.filter_map(Result::ok) {
                        if entry.is_file() && !excluded.contains(&entry) {
                            let s = entry.to_string_lossy().into_owned();
                            if !out.contains(&s) {
                                out.push(s);
                            }
                        }
                    }
                }
            } else if !excluded.contains(&PathBuf::from(&pat)) && !out.contains(&pat) {
                out.push(pat);
            }
        }
        if let Some(limit) = self.limit_recently_modified {
            out.retain(|p| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .map(|age| age <= limit)
                    .unwrap_or(true)
            });
        }
        out
    }
}

/// Fluentd's pos file: one fixed-width line per file, updated in place.
pub struct PosFile {
    file: File,
    /// key (path, or inode with follow_inodes) → byte offset of the line in the file.
    entries: HashMap<String, (u64, usize)>,
    len: u64,
}

pub const UNWATCHED: u64 = u64::MAX;

impl PosFile {
    /// Opens (creating) and compacts the pos file: unwatched entries dropped, the last of
    /// duplicated paths kept. Returns the file and the loaded `path → (pos, inode)` map.
    pub fn open(path: &Path) -> std::io::Result<(PosFile, HashMap<String, (u64, u64)>)> {
        let mut loaded: Vec<(String, u64, u64)> = Vec::new();
        if let Ok(text) = std::fs::read(path) {
            for line in text.split(|b| *b == b'\n') {
                let line = String::from_utf8_lossy(line);
                let mut parts = line.rsplitn(3, '\t');
                let (Some(ino), Some(pos), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
                    if !line.trim().is_empty() {
                        tracing::warn!("pos_file {}: skipping a malformed line {:?}", path.display(), line);
                    }
                    continue;
                };
                let (Ok(pos), Ok(ino)) = (u64::from_str_radix(pos, 16), u64::from_str_radix(ino, 16)) else {
                    tracing::warn!("pos_file {}: skipping a malformed line {:?}", path.display(), line);
                    continue;
                };
                if pos == UNWATCHED {
                    continue;
                }
                loaded.retain(|(q, _, _)| q != p);
                loaded.push((p.to_string(), pos, ino));
            }
        }
        // Rewrite compacted through a temporary file so that a crash leaves either version whole.
        let tmp = path.with_extension("pos.tmp");
        let mut body = Vec::new();
        for (p, pos, ino) in &loaded {
            body.extend_from_slice(format!("{p}\t{pos:016x}\t{ino:016x}\n").as_bytes());
        }
        {
            let mut t = File::create(&tmp)?;
            t.write_all(&body)?;
            t.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        let mut entries = HashMap::new();
        let mut offset = 0u64;
        let mut map = HashMap::new();
        for (p, pos, ino) in loaded {
            let line_len = p.len() + 1 + 16 + 1 + 16 + 1;
            entries.insert(p.clone(), (offset, p.len()));
            offset += line_len as u64;
            map.insert(p, (pos, ino));
        }
        Ok((
            PosFile {
                file,
                entries,
                len: offset,
            },
            map,
        ))
    }

    /// Writes `pos` and `inode` for `key`, appending an entry when there is none.
    pub fn update(&mut self, key: &str, pos: u64, inode: u64) -> std::io::Result<()> {
        match self.entries.get(key) {
            Some(&(offset, klen)) => {
                let text = format!("{pos:016x}\t{inode:016x}");
                self.file.write_all_at(text.as_bytes(), offset + klen as u64 + 1)
            }
            None => {
                let line = format!("{key}\t{pos:016x}\t{inode:016x}\n");
                self.file.write_all_at(line.as_bytes(), self.len)?;
                self.entries.insert(key.to_string(), (self.len, key.len()));
                self.len += line.len() as u64;
                Ok(())
            }
        }
    }
}

struct Shared {
    pos: Option<Mutex<PosFile>>,
    loaded: HashMap<String, (u64, u64)>,
}

impl Input for TailInput {
    fn run(self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let (pos, loaded) = match &self.pos_file {
            Some(p) => {
                let (f, m) = PosFile::open(p)
                    .map_err(|e| anyhow::anyhow!("pos_file {}: {}", p.display(), e))?;
                (Some(Mutex::new(f)), m)
            }
            None => (None, HashMap::new()),
        };
        let shared = Arc::new(Shared { pos, loaded });
        let mut watchers: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut first = true;
        let mut last_refresh = Instant::now();
        loop {
            if first || last_refresh.elapsed() >= self.settings.refresh_interval {
                let startup = first;
                first = false;
                last_refresh = Instant::now();
                if !(startup && self.settings.skip_refresh_on_startup) {
                    watchers.retain(|_, h| !h.is_finished());
                    for path in self.settings.expand() {
                        if watchers.contains_key(&path) {
                            continue;
                        }
                        let w = Watcher::new(path.clone(), self.settings.clone(), shared.clone(), startup);
                        let ctx2 = InputContext {
                            router: ctx.router.clone(),
                            errors: ctx.errors.clone(),
                            shutdown: ctx.shutdown.clone(),
                            runtime: ctx.runtime.clone(),
                        };
                        let h = std::thread::Builder::new()
                            .name(format!("tail:{path}"))
                            .spawn(move || w.run(ctx2))?;
                        watchers.insert(path, h);
                    }
                }
            }
            if ctx.shutdown.wait_timeout(Duration::from_millis(200)) {
                break;
            }
        }
        for (_, h) in watchers {
            let _ = h.join();
        }
        Ok(())
    }
}

/// One followed path.
struct Watcher {
    path: String,
    tag: String,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    startup: bool,
}

struct OpenFile {
    file: File,
    inode: u64,
    pos: u64,
    /// Bytes after the last complete line.
    partial: Vec<u8>,
}

impl Watcher {
    fn new(path: String, settings: Arc<Settings>, shared: Arc<Shared>, startup: bool) -> Self {
        let tag = settings.tag_for(&path);
        Watcher {
            path,
            tag,
            settings,
            shared,
            startup,
        }
    }

    fn pos_key(&self, inode: u64) -> String {
        if self.settings.follow_inodes {
            format!("{inode:x}")
        } else {
            self.path.clone()
        }
    }

    fn save_pos(&self, f: &OpenFile) {
        if let Some(p) = &self.shared.pos {
            if let Ok(mut p) = p.lock() {
                if let Err(e) = p.update(&self.pos_key(f.inode), f.pos, f.inode) {
                    tracing::warn!("cannot update pos_file for {}: {}", self.path, e);
                }
            }
        }
    }

    /// Opens the path; `fresh` files (rotated in, or found after start-up) start at the head.
    fn open(&self, fresh: bool) -> Option<OpenFile> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cannot open {}: {}", self.path, e);
                return None;
            }
        };
        let meta = file.metadata().ok()?;
        let inode = meta.ino();
        let key = self.pos_key(inode);
        let saved = if self.settings.follow_inodes {
            self.shared.loaded.get(&key).copied()
        } else {
            self.shared.loaded.get(&self.path).copied()
        };
        let pos = match saved {
            Some((pos, ino)) if ino == inode && pos <= meta.len() => pos,
            Some((_, ino)) if ino == inode => 0,
            _ if fresh || !self.startup || self.settings.read_from_head => 0,
            _ => meta.len(),
        };
        let mut f = OpenFile {
            file,
            inode,
            pos,
            partial: Vec::new(),
        };
        if f.file.seek(SeekFrom::Start(pos)).is_err() {
            f.pos = 0;
        }
        self.save_pos(&f);
        Some(f)
    }

    fn run(self, ctx: InputContext) {
        let mut parser_state = LineState::new(&self);
        let mut current = self.open(false);
        let mut draining: Vec<(OpenFile, Instant)> = Vec::new();
        let mut gone_since: Option<Instant> = None;
        let mut buf = vec![0u8; 1 << 20];
        let mut budget = ByteBudget::new(self.settings.bytes_per_second);
        loop {
            let mut progressed = false;
            for (old, _) in draining.iter_mut() {
                progressed |= self.read_some(old, &mut buf, &mut parser_state, &ctx, &mut budget);
            }
            let expired: Vec<usize> = draining
                .iter()
                .enumerate()
                .filter(|(_, (_, since))| since.elapsed() >= self.settings.rotate_wait)
                .map(|(i, _)| i)
                .collect();
            for i in expired.into_iter().rev() {
                draining.remove(i);
            }
            if let Some(f) = current.as_mut() {
                progressed |= self.read_some(f, &mut buf, &mut parser_state, &ctx, &mut budget);
            }
            if ctx.shutdown.is_set() {
                if let Some(f) = current.as_mut() {
                    // Fluentd reads what is there before stopping.
                    while self.read_some(f, &mut buf, &mut parser_state, &ctx, &mut budget) {}
                }
                parser_state.flush_pending(&ctx);
                return;
            }
            parser_state.flush_if_stale(&ctx);
            if progressed {
                continue;
            }
            // At EOF: look for rotation, truncation or deletion.
            match std::fs::metadata(&self.path) {
                Ok(meta) => {
                    gone_since = None;
                    match current.as_mut() {
                        None => current = self.open(true),
                        Some(f) if meta.ino() != f.inode => {
                            tracing::info!("detected rotation of {}; waiting {} seconds", self.path, self.settings.rotate_wait.as_secs_f64());
                            if let Some(old) = current.take() {
                                draining.push((old, Instant::now()));
                            }
                            current = self.open(true);
                        }
                        Some(f) if meta.len() < f.pos => {
                            tracing::info!("detected file truncation of {}; reading from the head", self.path);
                            f.pos = 0;
                            f.partial.clear();
                            let _ = f.file.seek(SeekFrom::Start(0));
                            self.save_pos(f);
                        }
                        Some(_) => {}
                    }
                }
                Err(_) => {
                    // Deleted or moved away: the open handle is read to its end, then released.
                    let since = *gone_since.get_or_insert_with(Instant::now);
                    if current.is_some() && since.elapsed() >= self.settings.rotate_wait {
                        if let Some(f) = current.take() {
                            if let Some(p) = &self.shared.pos {
                                if let Ok(mut p) = p.lock() {
                                    let _ = p.update(&self.pos_key(f.inode), UNWATCHED, f.inode);
                                }
                            }
                        }
                    }
                }
            }
            if ctx.shutdown.wait_timeout(Duration::from_millis(100)) {
                continue;
            }
        }
    }

    /// Reads one chunk and emits its complete lines; false at EOF (or when throttled).
    fn read_some(
        &self,
        f: &mut OpenFile,
        buf: &mut [u8],
        state: &mut LineState,
        ctx: &InputContext,
        budget: &mut ByteBudget,
    ) -> bool {
        let want = budget.allow(buf.len());
        if want == 0 {
            return false;
        }
        let n = match f.file.read(&mut buf[..want]) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("read error on {}: {}", self.path, e);
                return false;
            }
        };
        budget.spend(n);
        let data = &buf[..n];
        let mut es = EventStream::with_capacity(self.settings.read_lines_limit.min(1024));
        let mut start = 0usize;
        // Bytes of an unfinished line carried from earlier reads: they count towards the
        // position only once their line is complete.
        let mut carried = 0u64;
        if !f.partial.is_empty() {
            if let Some(nl) = memchr::memchr(b'\n', data) {
                let mut l = std::mem::take(&mut f.partial);
                carried = l.len() as u64;
                l.extend_from_slice(&data[..nl]);
                state.line(&l, &mut es, ctx);
                start = nl + 1;
            }
        }
        let mut consumed_upto = start;
        for nl in memchr::memchr_iter(b'\n', &data[start..]) {
            let end = start + nl;
            state.line(&data[consumed_upto..end], &mut es, ctx);
            consumed_upto = end + 1;
            if es.len() >= self.settings.read_lines_limit {
                ctx.router.emit(&self.tag, std::mem::take(&mut es));
            }
        }
        let start = consumed_upto;
        if !es.is_empty() {
            ctx.router.emit(&self.tag, es);
        }
        f.partial.extend_from_slice(&data[start..]);
        if let Some(max) = self.settings.max_line_size {
            if f.partial.len() > max.saturating_mul(2).max(1 << 20) {
                // An endless line: skip what we have so memory stays bounded.
                tracing::warn!("received line length is longer than {} in {}; skipped", max, self.path);
                f.pos += f.partial.len() as u64;
                f.partial.clear();
            }
        }
        f.pos += carried + consumed_upto as u64;
        self.save_pos(f);
        true
    }
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
    tag: String,
    pending: Vec<u8>,
    pending_since: Option<Instant>,
}

impl LineState {
    fn new(w: &Watcher) -> Self {
        LineState {
            settings: w.settings.clone(),
            path: w.path.clone(),
            tag: w.tag.clone(),
            pending: Vec::new(),
            pending_since: None,
        }
    }

    fn line(&mut self, raw: &[u8], es: &mut EventStream, ctx: &InputContext) {
        let mut line = raw;
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if let Some(max) = self.settings.max_line_size {
            if raw.len() > max {
                tracing::warn!(
                    "received line length is longer than {} path=\"{}\" length={}",
                    max,
                    self.path,
                    raw.len()
                );
                return;
            }
        }
        let transcoded;
        if let Transcode::From(enc) = self.settings.transcode {
            let (text, _, _) = enc.decode(line);
            transcoded = text.into_owned().into_bytes();
            line = &transcoded;
        }
        if self.settings.parser.is_multiline() {
            if self.settings.parser.is_firstline(line) {
                if !self.pending.is_empty() {
                    let done = std::mem::take(&mut self.pending);
                    self.parse_into(&done, es, ctx);
                }
                self.pending.extend_from_slice(line);
                self.pending_since = Some(Instant::now());
            } else if !self.pending.is_empty() {
                self.pending.push(b'\n');
                self.pending.extend_from_slice(line);
            }
            // Lines before the first first-line are dropped, as Fluentd does.
            return;
        }
        self.parse_into(line, es, ctx);
    }

    fn parse_into(&mut self, line: &[u8], es: &mut EventStream, _ctx: &InputContext) {
        let path_key = self.settings.path_key.clone();
        let path = self.path.clone();
        let mut matched = false;
        let result = self.settings.parser.parse(line, &mut |time, mut record: Record| {
            if let Some(time) = time {
                if let Some(k) = &path_key {
                    if !record.contains_key(k) {
                        record.insert(k.clone(), Value::from(path.as_str()));
                    }
                }
                es.push(time, record);
                matched = true;
            }
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
        }
        if !matched {
            if self.settings.emit_unmatched {
                let mut r = Record::new();
                r.insert("unmatched_line", Value::Str(line.to_vec()));
                if let Some(k) = &self.settings.path_key {
                    r.insert(k.clone(), Value::from(self.path.as_str()));
                }
                es.push(EventTime::now(), r);
            }
            tracing::warn!("pattern not matched: {:?}", String::from_utf8_lossy(line));
        }
    }

    fn flush_pending(&mut self, ctx: &InputContext) {
        if self.pending.is_empty() {
            return;
        }
        let done = std::mem::take(&mut self.pending);
        self.pending_since = None;
        let mut es = EventStream::new();
        self.parse_into(&done, &mut es, ctx);
        ctx.router.emit(&self.tag, es);
    }

    fn flush_if_stale(&mut self, ctx: &InputContext) {
        if let (Some(interval), Some(since)) = (self.settings.multiline_flush, self.pending_since) {
            if since.elapsed() >= interval {
                self.flush_pending(ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pos_file_format_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pos");
        std::fs::write(
            &p,
            "/a.log\t000000000000000d\t0000000000000042\n/b.log\tffffffffffffffff\t0000000000000001\n/a.log\t0000000000000020\t0000000000000042\ngarbage\n",
        )
        .unwrap();
        let (mut pf, loaded) = PosFile::open(&p).unwrap();
        assert_eq!(loaded.get("/a.log"), Some(&(0x20, 0x42)));
        assert!(!loaded.contains_key("/b.log"));
        pf.update("/a.log", 0x30, 0x42).unwrap();
        pf.update("/c.log", 5, 7).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "/a.log\t0000000000000030\t0000000000000042\n/c.log\t0000000000000005\t0000000000000007\n"
        );
    }

    #[test]
    fn tag_expansion_from_path() {
        let s = Settings {
            paths: vec![],
            excludes: vec![],
            tag_prefix: "app.".into(),
            tag_suffix: Some(String::new()),
            glob_policy: GlobPolicy::BackwardCompatible,
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
            max_line_size: None,
            transcode: Transcode::None,
            parser: Arc::new(NoneParser),
        };
        assert_eq!(s.tag_for("./logs/web.log"), "app.logs.web.log");
        assert_eq!(s.tag_for("/var/log/a.log"), "app.var.log.a.log");
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
