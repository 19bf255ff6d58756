//! libsystemd, loaded at run time with `dlopen` (no link-time dependency on it).

use super::*;

pub(super) type Sd = c_void;

pub(super) type FnOpenDirectory = unsafe extern "C" fn(*mut *mut Sd, *const c_char, c_int) -> c_int;
pub(super) type FnClose = unsafe extern "C" fn(*mut Sd);
pub(super) type FnMatch = unsafe extern "C" fn(*mut Sd, *const c_void, usize) -> c_int;
pub(super) type FnJournal = unsafe extern "C" fn(*mut Sd) -> c_int;
pub(super) type FnSeekCursor = unsafe extern "C" fn(*mut Sd, *const c_char) -> c_int;
pub(super) type FnSkip = unsafe extern "C" fn(*mut Sd, u64) -> c_int;
pub(super) type FnEnumerate =
    unsafe extern "C" fn(*mut Sd, *mut *const c_void, *mut usize) -> c_int;
pub(super) type FnRealtime = unsafe extern "C" fn(*mut Sd, *mut u64) -> c_int;
pub(super) type FnCursor = unsafe extern "C" fn(*mut Sd, *mut *mut c_char) -> c_int;

/// The `sd_journal_*` functions used here (signatures from the sd-journal man pages).
pub(super) struct Lib {
    pub(super) open_directory: FnOpenDirectory,
    pub(super) close: FnClose,
    pub(super) add_match: FnMatch,
    pub(super) add_disjunction: FnJournal,
    pub(super) seek_head: FnJournal,
    pub(super) seek_tail: FnJournal,
    pub(super) seek_cursor: FnSeekCursor,
    pub(super) next: FnJournal,
    pub(super) next_skip: FnSkip,
    pub(super) previous_skip: FnSkip,
    pub(super) restart_data: FnClose,
    pub(super) enumerate_data: FnEnumerate,
    pub(super) get_realtime_usec: FnRealtime,
    pub(super) get_cursor: FnCursor,
    pub(super) wait: FnSkip,
}

pub(super) static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();

pub(super) fn dlerror_text() -> String {
    // SAFETY: dlerror returns a thread-local, NUL-terminated message or NULL.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-NULL dlerror results are valid C strings.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

pub(super) fn load_library() -> Result<Lib, String> {
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

pub(super) fn library() -> Result<&'static Lib, String> {
    LIB.get_or_init(load_library).as_ref().map_err(Clone::clone)
}

/// A negative errno from libsystemd, rendered as the plugin's `JournalError` message.
#[derive(Debug)]
pub(super) struct JournalError(c_int);

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // strerror's text, as Ruby's Errno messages (without Rust's "(os error N)").
        let e = std::io::Error::from_raw_os_error(-self.0).to_string();
        let text = e.split(" (os error").next().unwrap_or(&e);
        write!(f, "Systemd::JournalError: {text}")
    }
}

pub(super) fn check(rc: c_int) -> Result<c_int, JournalError> {
    if rc < 0 {
        Err(JournalError(rc))
    } else {
        Ok(rc)
    }
}

/// An open `sd_journal`. Used from one thread only, as libsystemd requires.
pub(super) struct Journal {
    pub(super) lib: &'static Lib,
    pub(super) ptr: *mut Sd,
}

impl Journal {
    pub(super) fn open_directory(lib: &'static Lib, path: &str) -> Result<Journal, String> {
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

    pub(super) fn add_match(&mut self, m: &[u8]) -> Result<(), JournalError> {
        // SAFETY: pointer and length describe `m`; libsystemd copies the match.
        check(unsafe { (self.lib.add_match)(self.ptr, m.as_ptr().cast(), m.len()) }).map(|_| ())
    }

    pub(super) fn add_disjunction(&mut self) -> Result<(), JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.add_disjunction)(self.ptr) }).map(|_| ())
    }

    pub(super) fn seek_head(&mut self) -> Result<(), JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.seek_head)(self.ptr) }).map(|_| ())
    }

    pub(super) fn seek_tail(&mut self) -> Result<(), JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.seek_tail)(self.ptr) }).map(|_| ())
    }

    pub(super) fn seek_cursor(&mut self, cursor: &str) -> Result<(), JournalError> {
        let c = CString::new(cursor).map_err(|_| JournalError(-libc::EINVAL))?;
        // SAFETY: live journal and C string.
        check(unsafe { (self.lib.seek_cursor)(self.ptr, c.as_ptr()) }).map(|_| ())
    }

    pub(super) fn next(&mut self) -> Result<bool, JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.next)(self.ptr) }).map(|n| n > 0)
    }

    pub(super) fn next_skip(&mut self, n: u64) -> Result<c_int, JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.next_skip)(self.ptr, n) })
    }

    pub(super) fn previous_skip(&mut self, n: u64) -> Result<c_int, JournalError> {
        // SAFETY: live journal.
        check(unsafe { (self.lib.previous_skip)(self.ptr, n) })
    }

    /// Every `FIELD=value` item of the current entry, in the entry's order, copied out.
    pub(super) fn items(&mut self) -> Result<Vec<Vec<u8>>, JournalError> {
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

    pub(super) fn realtime_usec(&mut self) -> Result<u64, JournalError> {
        let mut usec = 0u64;
        // SAFETY: valid out-pointer.
        check(unsafe { (self.lib.get_realtime_usec)(self.ptr, &mut usec) })?;
        Ok(usec)
    }

    pub(super) fn cursor(&mut self) -> Result<String, JournalError> {
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

    pub(super) fn wait(&mut self, timeout: Duration) -> Result<c_int, JournalError> {
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
