//! `@type systemd` (fluent-plugin-systemd 1.0.5): reads the entries of a journal directory and
//! emits each one as a flat record of its fields, at the entry's realtime timestamp.
//!
//! The journal is read through `libsystemd.so.0`, loaded at run time with `dlopen`, so the
//! binary neither links against libsystemd nor needs it unless a `<source @type systemd>` runs.
//! The read position is the journal cursor, kept in the `<storage>` (`@type local`) under the
//! key `journal`, in the plugin's JSON file format, so a node can switch from Fluentd and resume.

use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::storage_local::{LocalStorage as Storage, StorageConfig};
use super::{Input, InputContext, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime, Record, Value};

mod entry;
mod journal;
#[cfg(test)]
mod tests;

use entry::*;
use journal::*;

const LIBRARY: &str = "libsystemd.so.0";
/// `sd_journal_wait` results.
const SD_JOURNAL_INVALIDATE: c_int = 2;
/// How long one `sd_journal_wait` may block, so that shutdown is noticed promptly.
const WAIT_SLICE: Duration = Duration::from_millis(200);
/// Entries read between two looks at the clock (cursor saves, autosave).
const BATCH: usize = 1000;

#[derive(Debug, Deserialize)]
struct SystemdConfig {
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    filters: Vec<String>,
    matches: Option<Vec<String>>,
    #[serde(default)]
    read_from_head: bool,
    tag: String,
    storage: Option<StorageConfig>,
    entry: Option<EntryConfig>,
}

fn default_path() -> String {
    "/var/log/journal".into()
}

#[derive(Debug, Deserialize, Default)]
struct EntryConfig {
    /// Declared for type checking; the map is read from the raw value because its values may be
    /// arrays, which the generic hash type flattens into strings.
    #[serde(default)]
    #[allow(dead_code)]
    field_map: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    field_map_strict: bool,
    #[serde(default)]
    fields_strip_underscores: bool,
    #[serde(default)]
    fields_lowercase: bool,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: SystemdConfig = ctx.configure(elem, "systemd")?;
    if elem.has("filters") {
        tracing::warn!("'filters' parameter is deprecated: filters has been renamed as matches");
    }
    let conditions = match &cfg.matches {
        Some(m) => m,
        None => &cfg.filters,
    };
    let key = if cfg.matches.is_some() {
        "matches"
    } else {
        "filters"
    };
    let matches = parse_matches(conditions).map_err(|msg| match elem.param(key) {
        Some(p) => ConfigError::at(msg, &p.span),
        None => elem.error(msg),
    })?;

    let entry_elem = elem.child("entry");
    let entry_cfg = cfg.entry.unwrap_or_default();
    let field_map = match entry_elem.and_then(|e| e.param("field_map")) {
        Some(p) => {
            let text = p.value.as_str().unwrap_or("");
            parse_field_map(text).map_err(|msg| ConfigError::at(msg, &p.span))?
        }
        None => Vec::new(),
    };
    let mutator = EntryMutator::new(
        field_map,
        entry_cfg.field_map_strict,
        entry_cfg.fields_strip_underscores,
        entry_cfg.fields_lowercase,
    );

    let storage_elem = elem.child("storage");
    let storage = Storage::configure(
        cfg.storage.as_ref(),
        storage_elem,
        elem.get("@id"),
        ctx.root_dir.as_deref(),
        ctx.worker_id,
    )
    .map_err(|msg| match storage_elem {
        Some(s) => s.error(msg),
        None => elem.error(msg),
    })?;

    Ok(Box::new(SystemdInput {
        path: cfg.path,
        tag: cfg.tag,
        read_from_head: cfg.read_from_head,
        matches,
        mutator,
        storage,
    }))
}

pub struct SystemdInput {
    path: String,
    tag: String,
    read_from_head: bool,
    matches: Vec<MatchTerm>,
    mutator: EntryMutator,
    storage: Storage,
}

impl SystemdInput {
    /// Opens the journal, applies the matches and seeks: to the stored cursor (resuming after
    /// it), else to the head or to the last entry.
    fn init_journal(
        &self,
        lib: &'static Lib,
        warned: &mut HashSet<PathBuf>,
    ) -> Result<Journal, String> {
        warn_damaged_files(Path::new(&self.path), warned);
        let mut j = Journal::open_directory(lib, &self.path)?;
        for t in &self.matches {
            match t {
                MatchTerm::Match(m) => j.add_match(m),
                MatchTerm::Or => j.add_disjunction(),
            }
            .map_err(|e| e.to_string())?;
        }
        let cursor = self.storage.get_str("journal");
        let sought = match &cursor {
            Some(c) => j.seek_cursor(c).and_then(|_| j.next_skip(1).map(|_| ())),
            None => self.seek_default(&mut j),
        };
        if let Err(e) = sought {
            match &cursor {
                Some(c) => {
                    tracing::warn!(
                        "Could not seek to cursor {c} found in position file: {}, falling back to reading from {}",
                        self.storage
                            .path
                            .as_deref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                        if self.read_from_head { "head" } else { "tail" }
                    );
                    self.seek_default(&mut j).map_err(|e| e.to_string())?;
                }
                None => return Err(e.to_string()),
            }
        }
        Ok(j)
    }

    /// Head, or two entries back from the tail so that the next read returns the last entry.
    fn seek_default(&self, j: &mut Journal) -> Result<(), JournalError> {
        if self.read_from_head {
            j.seek_head()
        } else {
            j.seek_tail()?;
            j.previous_skip(2).map(|_| ())
        }
    }

    /// Emits the entries after the current position, one event per entry. Returns how many
    /// were read; stops at the end, at shutdown, or after `BATCH` entries.
    fn drain(&mut self, j: &mut Journal, ctx: &InputContext) -> usize {
        let mut n = 0;
        while n < BATCH && !ctx.shutdown.is_set() {
            match j.next() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!("Error moving to next Journal entry: {e}");
                    break;
                }
            }
            n += 1;
            let read = j.items().and_then(|items| Ok((items, j.realtime_usec()?)));
            let (items, usec) = match read {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("Error reading from Journal: {e}");
                    continue;
                }
            };
            let record = self.mutator.run(record_from_items(items));
            ctx.router
                .emit(&self.tag, EventStream::one(event_time(usec), record));
            match j.cursor() {
                Ok(c) => self.storage.set("journal", serde_json::Value::String(c)),
                Err(e) => tracing::warn!("Error reading from Journal: {e}"),
            }
        }
        n
    }
}

impl Input for SystemdInput {
    /// A missing libsystemd stops start-up with an error naming it.
    fn start(&mut self) -> anyhow::Result<()> {
        library().map(|_| ()).map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn run(mut self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let lib = library().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut warned = HashSet::new();
        let mut journal: Option<Journal> = None;
        let mut last_save = Instant::now();
        let mut dirty = false;
        while !ctx.shutdown.is_set() {
            let j = match journal.as_mut() {
                Some(j) => j,
                None => match self.init_journal(lib, &mut warned) {
                    Ok(mut j) => {
                        // As the plugin's poll: a change already pending reopens once first.
                        if matches!(j.wait(Duration::ZERO), Ok(SD_JOURNAL_INVALIDATE)) {
                            drop(j);
                            match self.init_journal(lib, &mut warned) {
                                Ok(j) => journal.insert(j),
                                Err(e) => {
                                    tracing::warn!("{e} retrying in 1s");
                                    if ctx.shutdown.wait_timeout(Duration::from_secs(1)) {
                                        break;
                                    }
                                    continue;
                                }
                            }
                        } else {
                            journal.insert(j)
                        }
                    }
                    Err(e) => {
                        tracing::warn!("{e} retrying in 1s");
                        if ctx.shutdown.wait_timeout(Duration::from_secs(1)) {
                            break;
                        }
                        continue;
                    }
                },
            };
            let n = self.drain(j, &ctx);
            if n > 0 {
                dirty = true;
                if self.storage.persistent {
                    self.storage.save();
                    dirty = false;
                }
            }
            if let Some(every) = self.storage.autosave {
                if dirty && last_save.elapsed() >= every {
                    self.storage.save();
                    dirty = false;
                    last_save = Instant::now();
                }
            }
            if n >= BATCH {
                continue;
            }
            match j.wait(WAIT_SLICE) {
                Ok(SD_JOURNAL_INVALIDATE) => journal = None,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("{e} retrying in 1s");
                    journal = None;
                    if ctx.shutdown.wait_timeout(Duration::from_secs(1)) {
                        break;
                    }
                }
            }
        }
        drop(journal);
        if self.storage.save_at_shutdown || self.storage.persistent {
            self.storage.save();
        }
        Ok(())
    }
}

/// libsystemd skips journal files it cannot use without a word; say so, once per file.
fn warn_damaged_files(dir: &Path, warned: &mut HashSet<PathBuf>) {
    let mut files = Vec::new();
    collect_journal_files(dir, 0, &mut files);
    for f in files {
        if warned.contains(&f) {
            continue;
        }
        if let Some(problem) = journal_file_problem(&f) {
            tracing::warn!(
                "journal file {} is {problem}; libsystemd skips what it cannot read",
                f.display()
            );
            warned.insert(f);
        }
    }
}

fn collect_journal_files(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if p.is_dir() && depth == 0 {
            collect_journal_files(&p, depth + 1, out);
        } else if name.ends_with(".journal") || name.ends_with(".journal~") {
            out.push(p);
        }
    }
}

/// Checks a journal file's header: signature, and that the arena it announces is all there.
fn journal_file_problem(path: &Path) -> Option<&'static str> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut h = [0u8; 104];
    if f.read_exact(&mut h).is_err() {
        return Some("truncated (shorter than a journal header)");
    }
    if &h[..8] != b"LPKSHHRH" {
        return Some("not a journal file (bad signature)");
    }
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let (header_size, arena_size) = (u64_at(88), u64_at(96));
    if header_size
        .checked_add(arena_size)
        .is_none_or(|end| end > len)
    {
        return Some("truncated (its header announces more data than the file holds)");
    }
    None
}
