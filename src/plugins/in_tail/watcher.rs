//! One followed path: opening, rotation, reading and turning lines into events.

use super::*;

/// One followed path.
pub(super) struct Watcher {
    pub(super) path: String,
    pub(super) tag: String,
    /// Matched by a glob: the watcher ends once its file is gone.
    pub(super) from_glob: bool,
    pub(super) settings: Arc<Settings>,
    pub(super) shared: Arc<Shared>,
    pub(super) startup: bool,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) metrics: Arc<crate::metrics::TailFileMetrics>,
}

/// Where a newly opened file is read from when the pos file has nothing to say.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum OpenMode {
    /// Present at start-up: the tail, or the head with read_from_head.
    Startup,
    /// Found later: the head.
    Discovered,
    /// Rotated in under the watched name: the head, whatever the pos file says.
    Rotated,
}

pub(super) struct OpenFile {
    /// None between updates with `open_on_every_update`.
    pub(super) file: Option<File>,
    pub(super) inode: u64,
    /// Offset after the last line consumed (emitted or skipped): what the pos file records.
    pub(super) pos: u64,
    /// Bytes after the last complete line.
    pub(super) partial: Vec<u8>,
    /// Dropping the rest of a line longer than `max_line_size`.
    pub(super) skip_line: bool,
}

impl OpenFile {
    pub(super) fn read_offset(&self) -> u64 {
        self.pos + self.partial.len() as u64
    }
}

impl Watcher {
    pub(super) fn new(
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

    pub(super) fn key(&self, inode: u64) -> String {
        pos_key(self.settings.follow_inodes, &self.path, inode)
    }

    pub(super) fn save_pos(&self, f: &OpenFile) {
        self.write_pos(f.inode, f.pos);
    }

    pub(super) fn write_pos(&self, inode: u64, pos: u64) {
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

    pub(super) fn claim(&self, inode: u64) -> bool {
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

    pub(super) fn unclaim(&self, inode: u64) {
        if self.settings.follow_inodes {
            if let Ok(mut c) = self.shared.claimed.lock() {
                c.retain(|i| *i != inode);
            }
        }
    }

    /// Lets go of a file: its entry is marked unwatched unless (follow_inodes) the file still
    /// exists under another name, where a watcher of that name will pick it up.
    pub(super) fn release(&self, f: OpenFile) {
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
    pub(super) fn open(&self, mode: OpenMode, warned: &mut bool) -> Option<OpenFile> {
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
    pub(super) fn reopen(&self, f: &mut OpenFile) -> bool {
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

    pub(super) fn run(self, ctx: InputContext) {
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

    pub(super) fn follow(&self, ctx: &InputContext, group: &mut Option<GroupMember>) {
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
    pub(super) fn group_limited(&self, member: &mut Option<GroupMember>) -> bool {
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
    pub(super) fn read_some(
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
pub(super) struct ReadBuf {
    pub(super) buf: Vec<u8>,
    pub(super) budget: ByteBudget,
}

/// `read_bytes_limit_per_second`: a byte budget refilled every second.
pub(super) struct ByteBudget {
    pub(super) limit: Option<u64>,
    pub(super) used: u64,
    pub(super) window: Instant,
}

impl ByteBudget {
    pub(super) fn new(limit: Option<u64>) -> Self {
        ByteBudget {
            limit,
            used: 0,
            window: Instant::now(),
        }
    }
    pub(super) fn allow(&mut self, want: usize) -> usize {
        let Some(limit) = self.limit else { return want };
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.used = 0;
        }
        (limit.saturating_sub(self.used) as usize).min(want)
    }
    pub(super) fn spend(&mut self, n: usize) {
        self.used += n as u64;
    }
}

/// Turns lines into events: chomping, size limit, transcoding, multi-line grouping, parsing.
pub(super) struct LineState {
    pub(super) settings: Arc<Settings>,
    pub(super) path: String,
    pub(super) path_value: Value,
    pub(super) tag: String,
    /// Multi-line: the raw lines of the event being collected, joined with `\n`.
    pub(super) pending: Vec<u8>,
    pub(super) pending_since: Option<Instant>,
    pub(super) transcoded: String,
}

impl LineState {
    pub(super) fn new(w: &Watcher) -> Self {
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
    pub(super) fn lines(
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
    pub(super) fn line(&mut self, raw: &[u8], es: &mut EventStream) {
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

    pub(super) fn line_text(&mut self, line: &[u8], es: &mut EventStream) {
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
    pub(super) fn parse_pending(&mut self, done: &[u8], es: &mut EventStream) {
        let text = done.strip_suffix(b"\r").unwrap_or(done);
        self.parse_into(text, es);
    }

    pub(super) fn push_unmatched(&self, line: &[u8], es: &mut EventStream) {
        let mut r = Record::new();
        r.insert("unmatched_line", Value::Str(line.to_vec()));
        if let Some(k) = &self.settings.path_key {
            set_path_key(&mut r, k, &self.path_value);
        }
        es.push(EventTime::now(), r);
    }

    pub(super) fn parse_into(&mut self, line: &[u8], es: &mut EventStream) {
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

    pub(super) fn flush_pending(&mut self, ctx: &InputContext) {
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

    pub(super) fn flush_if_stale(&mut self, ctx: &InputContext) {
        if let (Some(interval), Some(since)) = (self.settings.multiline_flush, self.pending_since) {
            if since.elapsed() >= interval {
                self.flush_pending(ctx);
            }
        }
    }
}

/// `record[path_key] ||= path`: set unless present with a truthy value.
pub(super) fn set_path_key(record: &mut Record, key: &[u8], path: &Value) {
    match record.get(key) {
        None | Some(Value::Nil) | Some(Value::Bool(false)) => {
            record.insert(key.to_vec(), path.clone())
        }
        Some(_) => {}
    }
}
