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

/// One `sd_journal_add_match` term, or the disjunction between two hashes.
#[derive(Debug, Clone, PartialEq)]
enum MatchTerm {
    Match(Vec<u8>),
    Or,
}

/// `matches`: hashes OR-ed, keys within one hash AND-ed, array values OR-ed (libsystemd ORs
/// matches on the same field). Field names are upper-cased as the plugin does.
fn parse_matches(items: &[String]) -> Result<Vec<MatchTerm>, String> {
    let mut terms = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(item)
            .map_err(|_| format!("matches: each element must be a hash, got {item}"))?;
        let serde_json::Value::Object(map) = v else {
            return Err(format!("matches: each element must be a hash, got {item}"));
        };
        if i > 0 {
            terms.push(MatchTerm::Or);
        }
        for (field, value) in map {
            let field = field.to_uppercase();
            let values = match value {
                serde_json::Value::Array(a) => a,
                serde_json::Value::Null => Vec::new(),
                other => vec![other],
            };
            for v in values {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                terms.push(MatchTerm::Match(format!("{field}={text}").into_bytes()));
            }
        }
    }
    Ok(terms)
}

/// A `field_map` value: one destination name, or an array of them.
#[derive(Debug, Clone, PartialEq)]
enum Dest {
    Name(String),
    Names(Vec<String>),
}

impl Dest {
    fn names(&self) -> &[String] {
        match self {
            Dest::Name(n) => std::slice::from_ref(n),
            Dest::Names(v) => v,
        }
    }
}

/// `field_map`: a JSON object whose values are a name or an array of names, or `SRC:dst,...`.
fn parse_field_map(text: &str) -> Result<Vec<(String, Dest)>, String> {
    let t = text.trim();
    if !t.starts_with('{') {
        let pairs = crate::config_parser::types::hash(t)?;
        return Ok(pairs.into_iter().map(|(k, v)| (k, Dest::Name(v))).collect());
    }
    let v: serde_json::Value = serde_json::from_str(t)
        .map_err(|e| format!("got incomplete JSON hash configuration: {e}"))?;
    let serde_json::Value::Object(map) = v else {
        return Err("hash required".into());
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let dsts = match v {
            serde_json::Value::String(s) => Dest::Name(s),
            serde_json::Value::Array(a) => {
                let mut names = Vec::new();
                for x in a {
                    match x {
                        serde_json::Value::String(s) => names.push(s),
                        _ => {
                            return Err(
                                "`field_map` values must be strings or array of strings".into()
                            )
                        }
                    }
                }
                Dest::Names(names)
            }
            _ => return Err("`field_map` values must be strings or array of strings".into()),
        };
        out.push((k, dsts));
    }
    Ok(out)
}

/// The plugin's `SystemdEntryMutator`: field mapping, then renaming of the other fields.
#[derive(Debug, Clone)]
struct EntryMutator {
    /// Destination → sources, in the order destinations first appear in `field_map`.
    map: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    sources: Vec<Vec<u8>>,
    strict: bool,
    strip_underscores: bool,
    lowercase: bool,
}

impl EntryMutator {
    fn new(
        field_map: Vec<(String, Dest)>,
        strict: bool,
        strip_underscores: bool,
        lowercase: bool,
    ) -> Self {
        let mut dsts: Vec<&String> = Vec::new();
        for (_, v) in &field_map {
            for d in v.names() {
                if !dsts.contains(&d) {
                    dsts.push(d);
                }
            }
        }
        // As the plugin inverts the map: a one-name value matches by equality or by substring.
        let map = dsts
            .iter()
            .map(|d| {
                let srcs = field_map
                    .iter()
                    .filter(|(_, v)| match v {
                        Dest::Name(one) => one.contains(d.as_str()),
                        Dest::Names(many) => many.contains(d),
                    })
                    .map(|(s, _)| s.clone().into_bytes())
                    .collect();
                (d.as_bytes().to_vec(), srcs)
            })
            .collect();
        EntryMutator {
            map,
            sources: field_map
                .iter()
                .map(|(s, _)| s.clone().into_bytes())
                .collect(),
            strict,
            strip_underscores,
            lowercase,
        }
    }

    fn no_transform(&self) -> bool {
        self.map.is_empty() && !self.strict && !self.strip_underscores && !self.lowercase
    }

    fn run(&self, entry: Record) -> Record {
        if self.no_transform() {
            return entry;
        }
        let mut mapped = self.map_fields(&entry);
        if self.strict {
            return mapped;
        }
        for (k, v) in entry {
            if self.sources.contains(&k) {
                continue;
            }
            let mut k: &[u8] = &k;
            if self.strip_underscores {
                while let Some(rest) = k.strip_prefix(b"_") {
                    k = rest;
                }
            }
            let k = if self.lowercase {
                k.to_ascii_lowercase()
            } else {
                k.to_vec()
            };
            let v = match mapped.get(&k) {
                Some(existing) => {
                    let mut joined = v.to_ruby_s();
                    joined.push(b' ');
                    joined.extend_from_slice(&existing.to_ruby_s());
                    Value::Str(joined)
                }
                None => v,
            };
            mapped.insert(k, v);
        }
        mapped
    }

    fn map_fields(&self, entry: &Record) -> Record {
        let mut out = Record::new();
        for (dst, srcs) in &self.map {
            let vals: Vec<&Value> = srcs.iter().filter_map(|s| lookup(entry, s)).collect();
            match vals.as_slice() {
                [] => {}
                [one] => out.insert(dst.clone(), (*one).clone()),
                many => {
                    let mut joined = Vec::new();
                    for (i, v) in many.iter().enumerate() {
                        if i > 0 {
                            joined.push(b' ');
                        }
                        joined.extend_from_slice(&v.to_ruby_s());
                    }
                    out.insert(dst.clone(), Value::Str(joined));
                }
            }
        }
        out
    }
}

/// The entry's value for `key`, else for its upper-cased form; missing values count as absent.
fn lookup<'a>(entry: &'a Record, key: &[u8]) -> Option<&'a Value> {
    match entry.get(key) {
        Some(v) if !v.is_nil() => Some(v),
        _ => entry.get(key.to_ascii_uppercase()).filter(|v| !v.is_nil()),
    }
}

/// Splits one `FIELD=value` data item as the plugin does; an item without `=` is a field with no
/// value.
fn split_item(data: &[u8]) -> (Vec<u8>, Value) {
    match memchr::memchr(b'=', data) {
        Some(i) => (data[..i].to_vec(), Value::Str(data[i + 1..].to_vec())),
        None => (data.to_vec(), Value::Nil),
    }
}

fn record_from_items(items: Vec<Vec<u8>>) -> Record {
    let mut r = Record::with_capacity(items.len());
    for item in items {
        let (k, v) = split_item(&item);
        r.insert(k, v);
    }
    r
}

fn event_time(usec: u64) -> EventTime {
    EventTime::new(
        (usec / 1_000_000) as i64,
        ((usec % 1_000_000) * 1000) as u32,
    )
}

// ---------------------------------------------------------------------------------------------
// libsystemd, loaded at run time

type Sd = c_void;

type FnOpenDirectory = unsafe extern "C" fn(*mut *mut Sd, *const c_char, c_int) -> c_int;
type FnClose = unsafe extern "C" fn(*mut Sd);
type FnMatch = unsafe extern "C" fn(*mut Sd, *const c_void, usize) -> c_int;
type FnJournal = unsafe extern "C" fn(*mut Sd) -> c_int;
type FnSeekCursor = unsafe extern "C" fn(*mut Sd, *const c_char) -> c_int;
type FnSkip = unsafe extern "C" fn(*mut Sd, u64) -> c_int;
type FnEnumerate = unsafe extern "C" fn(*mut Sd, *mut *const c_void, *mut usize) -> c_int;
type FnRealtime = unsafe extern "C" fn(*mut Sd, *mut u64) -> c_int;
type FnCursor = unsafe extern "C" fn(*mut Sd, *mut *mut c_char) -> c_int;

/// The `sd_journal_*` functions used here (signatures from the sd-journal man pages).
struct Lib {
    open_directory: FnOpenDirectory,
    close: FnClose,
    add_match: FnMatch,
    add_disjunction: FnJournal,
    seek_head: FnJournal,
    seek_tail: FnJournal,
    seek_cursor: FnSeekCursor,
    next: FnJournal,
    next_skip: FnSkip,
    previous_skip: FnSkip,
    restart_data: FnClose,
    enumerate_data: FnEnumerate,
    get_realtime_usec: FnRealtime,
    get_cursor: FnCursor,
    wait: FnSkip,
}

static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();

fn dlerror_text() -> String {
    // SAFETY: dlerror returns a thread-local, NUL-terminated message or NULL.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-NULL dlerror results are valid C strings.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

fn load_library() -> Result<Lib, String> {
    let name = CString::new(LIBRARY).map_err(|e| e.to_string())?;
    // SAFETY: dlopen with a valid C string; the handle is kept for the life of the process.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!(
            "cannot load {LIBRARY}: {}. @type systemd needs systemd's shared library \
             (Debian/Ubuntu: package libsystemd0; Fedora/RHEL: systemd-libs)",
            dlerror_text()
        ));
    }
    let sym = |s: &str| -> Result<*mut c_void, String> {
        let c = CString::new(s).map_err(|e| e.to_string())?;
        // SAFETY: dlsym on a live handle with a valid C string.
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        if p.is_null() {
            Err(format!("{LIBRARY} has no symbol {s}: {}", dlerror_text()))
        } else {
            Ok(p)
        }
    };
    macro_rules! f {
        ($name:literal, $ty:ty) => {
            // SAFETY: the symbol is the libsystemd function of that name, whose C signature
            // is `$ty`.
            unsafe { std::mem::transmute::<*mut c_void, $ty>(sym($name)?) }
        };
    }
    Ok(Lib {
        open_directory: f!("sd_journal_open_directory", FnOpenDirectory),
        close: f!("sd_journal_close", FnClose),
        add_match: f!("sd_journal_add_match", FnMatch),
        add_disjunction: f!("sd_journal_add_disjunction", FnJournal),
        seek_head: f!("sd_journal_seek_head", FnJournal),
        seek_tail: f!("sd_journal_seek_tail", FnJournal),
        seek_cursor: f!("sd_journal_seek_cursor", FnSeekCursor),
        next: f!("sd_journal_next", FnJournal),
        next_skip: f!("sd_journal_next_skip", FnSkip),
        previous_skip: f!("sd_journal_previous_skip", FnSkip),
        restart_data: f!("sd_journal_restart_data", FnClose),
        enumerate_data: f!("sd_journal_enumerate_data", FnEnumerate),
        get_realtime_usec: f!("sd_journal_get_realtime_usec", FnRealtime),
        get_cursor: f!("sd_journal_get_cursor", FnCursor),
        wait: f!("sd_journal_wait", FnSkip),
    })
}

fn library() -> Result<&'static Lib, String> {
    LIB.get_or_init(load_library).as_ref().map_err(Clone::clone)
}

/// A negative errno from libsystemd, rendered as the plugin's `JournalError` message.
#[derive(Debug)]
struct JournalError(c_int);

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // strerror's text, as Ruby's Errno messages (without Rust's "(os error N)").
        let e = std::io::Error::from_raw_os_error(-self.0).to_string();
        let text = e.split(" (os error").next().unwrap_or(&e);
        write!(f, "Systemd::JournalError: {text}")
    }
}

fn check(rc: c_int) -> Result<c_int, JournalError> {
    if rc < 0 {
        Err(JournalError(rc))
    } else {
        Ok(rc)
    }
}

/// An open `sd_journal`. Used from one thread only, as libsystemd requires.
struct Journal {
    lib: &'static Lib,
    ptr: *mut Sd,
}

impl Journal {
    fn open_directory(lib: &'static Lib, path: &str) -> Result<Journal, String> {
        let c = CString::new(path).map_err(|_| format!("path contains a NUL byte: {path:?}"))?;
        let mut ptr: *mut Sd = std::ptr::null_mut();
        // SAFETY: valid out-pointer and C string.
        let rc = unsafe { (lib.open_directory)(&mut ptr, c.as_ptr(), 0) };
        check(rc).map_err(|e| e.to_string())?;
        if ptr.is_null() {
            return Err("sd_journal_open_directory returned no journal".into());
        }
        Ok(Journal { lib, ptr })
    }

    fn add_match(&mut self, m: &[u8]) -> Result<(), JournalError> {
        // SAFETY: pointer and length describe `m`; libsystemd copies the match.
        check(unsafe { (self.lib.add_match)(self.ptr, m.as_ptr().cast(), m.len()) }).map(|_| ())
    }

    fn add_disjunction(&mut self) -> Result<(), JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.add_disjunction)(self.ptr) }).map(|_| ())
    }

    fn seek_head(&mut self) -> Result<(), JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.seek_head)(self.ptr) }).map(|_| ())
    }

    fn seek_tail(&mut self) -> Result<(), JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.seek_tail)(self.ptr) }).map(|_| ())
    }

    fn seek_cursor(&mut self, cursor: &str) -> Result<(), JournalError> {
        let c = CString::new(cursor).map_err(|_| JournalError(-libc::EINVAL))?;
        // SAFETY: live journal and C string.
        check(unsafe { (self.lib.seek_cursor)(self.ptr, c.as_ptr()) }).map(|_| ())
    }

    fn next(&mut self) -> Result<bool, JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.next)(self.ptr) }).map(|n| n > 0)
    }

    fn next_skip(&mut self, n: u64) -> Result<c_int, JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.next_skip)(self.ptr, n) })
    }

    fn previous_skip(&mut self, n: u64) -> Result<c_int, JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.previous_skip)(self.ptr, n) })
    }

    /// Every `FIELD=value` item of the current entry, in the entry's order, copied out.
    fn items(&mut self) -> Result<Vec<Vec<u8>>, JournalError> {
        // SAFETY: live journal.
        unsafe { (self.lib.restart_data)(self.ptr) };
        let mut items = Vec::new();
        loop {
            let mut data: *const c_void = std::ptr::null();
            let mut len: usize = 0;
            // SAFETY: valid out-pointers; the data stays valid until the next call, and is
            // copied before that.
            let rc = unsafe { (self.lib.enumerate_data)(self.ptr, &mut data, &mut len) };
            if check(rc)? == 0 {
                return Ok(items);
            }
            if data.is_null() {
                items.push(Vec::new());
            } else {
                // SAFETY: libsystemd returned `len` readable bytes at `data`.
                items.push(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec());
            }
        }
    }

    fn realtime_usec(&mut self) -> Result<u64, JournalError> {
        let mut usec = 0u64;
        // SAFETY: valid out-pointer.
        check(unsafe { (self.lib.get_realtime_usec)(self.ptr, &mut usec) })?;
        Ok(usec)
    }

    fn cursor(&mut self) -> Result<String, JournalError> {
        let mut c: *mut c_char = std::ptr::null_mut();
        // SAFETY: valid out-pointer; the result is malloc'ed and freed below.
        check(unsafe { (self.lib.get_cursor)(self.ptr, &mut c) })?;
        if c.is_null() {
            return Err(JournalError(-libc::EINVAL));
        }
        // SAFETY: libsystemd returns a NUL-terminated string.
        let s = unsafe { CStr::from_ptr(c) }.to_string_lossy().into_owned();
        // SAFETY: allocated by libsystemd with malloc, ours to free.
        unsafe { libc::free(c.cast()) };
        Ok(s)
    }

    fn wait(&mut self, timeout: Duration) -> Result<c_int, JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.wait)(self.ptr, timeout.as_micros() as u64) })
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // SAFETY: the journal was opened by us and is closed once.
        unsafe { (self.lib.close)(self.ptr) };
    }
}

// ---------------------------------------------------------------------------------------------
// The input

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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), Value::from(*v)))
            .collect()
    }

    fn entry_175_first() -> Record {
        record_from_items(
            [
                "_BOOT_ID=0123456789abcdef0123456789abcdef",
                "_PID=100",
                "SYSLOG_IDENTIFIER=containerd",
                "MESSAGE=time=\"2024-01-01T00:00:00Z\" level=info",
            ]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        )
    }

    #[test]
    fn items_split_at_the_first_equals_sign() {
        assert_eq!(
            split_item(b"MESSAGE=a=b"),
            (b"MESSAGE".to_vec(), Value::from("a=b"))
        );
        assert_eq!(split_item(b"EMPTY="), (b"EMPTY".to_vec(), Value::from("")));
        assert_eq!(split_item(b"NOVALUE"), (b"NOVALUE".to_vec(), Value::Nil));
        assert_eq!(
            split_item(b"BIN=\xff\x00\xfe"),
            (b"BIN".to_vec(), Value::Str(vec![0xff, 0, 0xfe]))
        );
    }

    #[test]
    fn a_repeated_field_keeps_its_first_position_and_last_value() {
        let r = record_from_items(vec![b"A=1".to_vec(), b"B=2".to_vec(), b"A=3".to_vec()]);
        assert_eq!(r, rec(&[("A", "3"), ("B", "2")]));
    }

    #[test]
    fn realtime_microseconds_become_event_time() {
        assert_eq!(
            event_time(1_700_000_001_250_000),
            EventTime::new(1_700_000_001, 250_000_000)
        );
    }

    #[test]
    fn strip_and_lowercase_as_case_174() {
        let m = EntryMutator::new(Vec::new(), false, true, true);
        let out = m.run(entry_175_first());
        let keys: Vec<&[u8]> = out.keys().collect();
        assert_eq!(
            keys,
            vec![&b"boot_id"[..], b"pid", b"syslog_identifier", b"message"]
        );
    }

    #[test]
    fn field_map_strict_as_case_178() {
        let fm = parse_field_map(
            r#"{"MESSAGE": "log", "_PID": ["pid", "process_id"], "SYSLOG_IDENTIFIER": "ident"}"#,
        )
        .unwrap();
        let m = EntryMutator::new(fm, true, false, false);
        assert_eq!(
            m.run(entry_175_first()),
            rec(&[
                ("log", "time=\"2024-01-01T00:00:00Z\" level=info"),
                ("pid", "100"),
                ("process_id", "100"),
                ("ident", "containerd")
            ])
        );
    }

    #[test]
    fn field_map_not_strict_keeps_other_fields_after_the_mapped_ones() {
        let fm = parse_field_map(r#"{"_PID": "pid"}"#).unwrap();
        let m = EntryMutator::new(fm, false, true, true);
        let out = m.run(entry_175_first());
        assert_eq!(
            out,
            rec(&[
                ("pid", "100"),
                ("boot_id", "0123456789abcdef0123456789abcdef"),
                ("syslog_identifier", "containerd"),
                ("message", "time=\"2024-01-01T00:00:00Z\" level=info"),
            ])
        );
    }

    #[test]
    fn several_sources_into_one_field_are_joined_with_a_space() {
        let fm = parse_field_map(r#"{"_PID": "who", "SYSLOG_IDENTIFIER": "who"}"#).unwrap();
        let m = EntryMutator::new(fm, true, false, false);
        assert_eq!(m.run(entry_175_first()), rec(&[("who", "100 containerd")]));
    }

    #[test]
    fn a_renamed_field_landing_on_a_mapped_one_is_prepended() {
        // `_PID` is mapped to `PID`; the stripped `_PID`... is a source, so use another field.
        let fm = parse_field_map(r#"{"SYSLOG_IDENTIFIER": "PID"}"#).unwrap();
        let m = EntryMutator::new(fm, false, true, false);
        let out = m.run(entry_175_first());
        assert_eq!(out.get("PID"), Some(&Value::from("100 containerd")));
    }

    #[test]
    fn a_string_destination_matches_by_substring_as_the_plugin_does() {
        let fm = parse_field_map(r#"{"MESSAGE": "log", "_PID": "logger"}"#).unwrap();
        let m = EntryMutator::new(fm, true, false, false);
        let out = m.run(entry_175_first());
        assert_eq!(
            out,
            rec(&[
                ("log", "time=\"2024-01-01T00:00:00Z\" level=info 100"),
                ("logger", "100")
            ])
        );
    }

    #[test]
    fn field_map_values_must_be_names() {
        assert_eq!(
            parse_field_map(r#"{"A": 1}"#).unwrap_err(),
            "`field_map` values must be strings or array of strings"
        );
        assert_eq!(
            parse_field_map("A:b,C:d").unwrap(),
            vec![
                ("A".into(), Dest::Name("b".into())),
                ("C".into(), Dest::Name("d".into()))
            ]
        );
    }

    #[test]
    fn matches_or_hashes_and_fields_as_case_177() {
        let items = crate::config_parser::types::array(
            r#"[{"_SYSTEMD_UNIT": "ssh.service"}, {"_SYSTEMD_UNIT": "containerd.service", "PRIORITY": "4"}]"#,
        )
        .unwrap();
        assert_eq!(
            parse_matches(&items).unwrap(),
            vec![
                MatchTerm::Match(b"_SYSTEMD_UNIT=ssh.service".to_vec()),
                MatchTerm::Or,
                MatchTerm::Match(b"_SYSTEMD_UNIT=containerd.service".to_vec()),
                MatchTerm::Match(b"PRIORITY=4".to_vec()),
            ]
        );
    }

    #[test]
    fn match_values_arrays_numbers_and_lowercase_names() {
        let items = vec![r#"{"priority": [4, "6"], "x": null}"#.to_string()];
        assert_eq!(
            parse_matches(&items).unwrap(),
            vec![
                MatchTerm::Match(b"PRIORITY=4".to_vec()),
                MatchTerm::Match(b"PRIORITY=6".to_vec()),
            ]
        );
        assert!(parse_matches(&["kata".to_string()]).is_err());
    }

    #[test]
    fn damaged_journal_files_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.journal");
        std::fs::write(&short, b"LPKSHHRH").unwrap();
        assert!(journal_file_problem(&short)
            .unwrap()
            .starts_with("truncated"));
        let bad = dir.path().join("bad.journal");
        std::fs::write(&bad, [0u8; 300]).unwrap();
        assert_eq!(
            journal_file_problem(&bad),
            Some("not a journal file (bad signature)")
        );
        let mut h = vec![0u8; 300];
        h[..8].copy_from_slice(b"LPKSHHRH");
        h[88..96].copy_from_slice(&256u64.to_le_bytes());
        h[96..104].copy_from_slice(&4096u64.to_le_bytes());
        let cut = dir.path().join("cut.journal");
        std::fs::write(&cut, &h).unwrap();
        assert!(journal_file_problem(&cut)
            .unwrap()
            .contains("announces more data"));
        h[96..104].copy_from_slice(&44u64.to_le_bytes());
        std::fs::write(&cut, &h).unwrap();
        assert_eq!(journal_file_problem(&cut), None);
    }
}
