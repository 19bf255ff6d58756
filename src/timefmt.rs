//! strftime-style time formatting as Ruby's `Time#strftime` does it (with `%N`, `%L`, `%z`,
//! `%:z`, flags and widths), in the zones Fluentd's time parameters select: local time (libc's,
//! so `TZ` is honoured exactly as Ruby honours it), UTC, or a `timezone` parameter (`+09:00`,
//! `-0700`, `Asia/Tokyo`).
//!
//! [`TimeFormatter`] is Fluentd's `TimeFormatter`: it renders everything that depends only on
//! the second once per distinct second and fills the sub-second directives per call.

use std::ffi::CStr;

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;
use parking_lot::Mutex;

use crate::event::EventTime;

/// The zone a time is shown in, from Fluentd's `localtime` / `utc` / `timezone` parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimeZoneSpec {
    /// The process's local zone (the `TZ` environment variable, else the system's).
    #[default]
    Local,
    /// UTC: `%Z` is `UTC`, ISO-8601 output ends in `Z`.
    Utc,
    /// A numeric `timezone` (`+09:00`): seconds east of UTC.
    Fixed(i32),
    /// A named `timezone` (`Asia/Tokyo`). Fluentd shows it as the fixed offset in effect at
    /// that instant, so `%Z` is empty, as for `Fixed`.
    Named(Tz),
}

/// Parses a `timezone` value as Fluentd's `Fluent::Timezone` accepts it: `[+-]HH`, `[+-]HHMM`,
/// `[+-]HH:MM`, or a `Region/Zone` name made of letters only (so `UTC` or `America/New_York`
/// are rejected, as Fluentd rejects them).
pub fn parse_timezone(s: &str) -> Option<TimeZoneSpec> {
    let b = s.as_bytes();
    if let Some((&sign @ (b'+' | b'-'), rest)) = b.split_first() {
        let digits = |x: &[u8]| x.iter().all(u8::is_ascii_digit);
        let (h, m) = match rest.len() {
            2 if digits(rest) => (&rest[..2], &b"00"[..]),
            4 if digits(rest) => (&rest[..2], &rest[2..]),
            5 if rest[2] == b':' && digits(&rest[..2]) && digits(&rest[3..]) => {
                (&rest[..2], &rest[3..])
            }
            _ => return None,
        };
        let n = |x: &[u8]| ((x[0] - b'0') as i32) * 10 + (x[1] - b'0') as i32;
        let off = n(h) * 3600 + n(m) * 60;
        return Some(TimeZoneSpec::Fixed(if sign == b'-' { -off } else { off }));
    }
    let segments: Vec<&str> = s.split('/').collect();
    if segments.len() < 2
        || segments
            .iter()
            .any(|seg| seg.is_empty() || !seg.chars().all(char::is_alphabetic))
    {
        return None;
    }
    s.parse::<Tz>().ok().map(TimeZoneSpec::Named)
}

impl TimeZoneSpec {
    /// Fluentd's precedence: `timezone` wins; else `utc true` or `localtime false` mean UTC;
    /// else local time. Errors carry Fluentd's message.
    pub fn from_params(
        localtime: Option<bool>,
        utc: Option<bool>,
        timezone: Option<&str>,
    ) -> Result<TimeZoneSpec, String> {
        if let Some(tz) = timezone {
            return parse_timezone(tz).ok_or_else(|| format!("Unsupported timezone '{tz}'"));
        }
        if utc == Some(true) || localtime == Some(false) {
            Ok(TimeZoneSpec::Utc)
        } else {
            Ok(TimeZoneSpec::Local)
        }
    }

    /// Seconds east of UTC at the instant `sec`.
    pub fn offset_at(&self, sec: i64) -> i32 {
        match self {
            TimeZoneSpec::Utc => 0,
            TimeZoneSpec::Fixed(o) => *o,
            TimeZoneSpec::Named(tz) => named_offset(tz, sec),
            TimeZoneSpec::Local => local_info(sec).offset,
        }
    }

    /// Converts a wall-clock time in this zone (as seconds since the epoch of that wall clock,
    /// i.e. `days_from_civil * 86400 + seconds of day`) to a UTC epoch second. Ambiguous or
    /// skipped local times resolve as libc's `mktime` / chrono's earliest mapping do.
    pub fn utc_from_local(&self, local: i64) -> i64 {
        match self {
            TimeZoneSpec::Utc => local,
            TimeZoneSpec::Fixed(o) => local - *o as i64,
            TimeZoneSpec::Named(tz) => {
                let naive = chrono::DateTime::from_timestamp(local, 0).map(|d| d.naive_utc());
                match naive.and_then(|n| tz.from_local_datetime(&n).earliest()) {
                    Some(dt) => dt.timestamp(),
                    None => local - named_offset(tz, local) as i64,
                }
            }
            TimeZoneSpec::Local => local_mktime(local),
        }
    }

    fn info(&self, sec: i64) -> ZoneInfo {
        match self {
            TimeZoneSpec::Utc => ZoneInfo::new(0, b"UTC"),
            TimeZoneSpec::Fixed(o) => ZoneInfo::new(*o, b""),
            TimeZoneSpec::Named(tz) => ZoneInfo::new(named_offset(tz, sec), b""),
            TimeZoneSpec::Local => local_info(sec),
        }
    }
}

fn named_offset(tz: &Tz, sec: i64) -> i32 {
    match chrono::DateTime::from_timestamp(sec, 0) {
        Some(dt) => tz
            .offset_from_utc_datetime(&dt.naive_utc())
            .fix()
            .local_minus_utc(),
        None => 0,
    }
}

/// Offset and abbreviation of a zone at one instant.
#[derive(Clone, Copy, Debug)]
struct ZoneInfo {
    offset: i32,
    abbr: [u8; 16],
    abbr_len: u8,
}

impl ZoneInfo {
    fn new(offset: i32, abbr: &[u8]) -> Self {
        let mut a = [0u8; 16];
        let n = abbr.len().min(16);
        a[..n].copy_from_slice(&abbr[..n]);
        ZoneInfo {
            offset,
            abbr: a,
            abbr_len: n as u8,
        }
    }

    fn abbr(&self) -> &[u8] {
        &self.abbr[..self.abbr_len as usize]
    }
}

/// The local zone at `sec` via libc's `localtime_r`, which reads `TZ` as Ruby does.
fn local_info(sec: i64) -> ZoneInfo {
    let t = sec as libc::time_t;
    // SAFETY: `tm` is plain data (a null `tm_zone` pointer is valid); localtime_r only writes
    // into it, and `tm_zone` (when set) points at a NUL-terminated string owned by libc that
    // stays valid while the zone is loaded.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return ZoneInfo::new(0, b"UTC");
        }
        let abbr = if tm.tm_zone.is_null() {
            &b""[..]
        } else {
            CStr::from_ptr(tm.tm_zone).to_bytes()
        };
        ZoneInfo::new(tm.tm_gmtoff as i32, abbr)
    }
}

/// Local wall-clock seconds → UTC epoch via libc's `mktime`.
fn local_mktime(local: i64) -> i64 {
    let days = local.div_euclid(86400);
    let sod = local.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    // SAFETY: `tm` is plain data filled below; mktime reads and normalizes it.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = (y - 1900) as libc::c_int;
        tm.tm_mon = m as libc::c_int - 1;
        tm.tm_mday = d as libc::c_int;
        tm.tm_hour = (sod / 3600) as libc::c_int;
        tm.tm_min = (sod % 3600 / 60) as libc::c_int;
        tm.tm_sec = (sod % 60) as libc::c_int;
        tm.tm_isdst = -1;
        let t = libc::mktime(&mut tm);
        if t == -1 && !(y == 1969 && m == 12 && d == 31) {
            local - local_info(local).offset as i64
        } else {
            t as i64
        }
    }
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31) (proleptic Gregorian).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month 1-12, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A broken-down time in some zone.
#[derive(Clone, Copy, Debug)]
struct Tm {
    epoch: i64,
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    /// 0 = Sunday
    wday: u32,
    /// 1-based
    yday: u32,
    days: i64,
    zone: ZoneInfo,
}

impl Tm {
    fn new(epoch: i64, zone: ZoneInfo) -> Tm {
        let local = epoch + zone.offset as i64;
        let days = local.div_euclid(86400);
        let sod = local.rem_euclid(86400) as u32;
        let (year, month, day) = civil_from_days(days);
        let yday = (days - days_from_civil(year, 1, 1) + 1) as u32;
        Tm {
            epoch,
            year,
            month,
            day,
            hour: sod / 3600,
            min: sod % 3600 / 60,
            sec: sod % 60,
            wday: (days + 4).rem_euclid(7) as u32,
            yday,
            days,
            zone,
        }
    }

    /// ISO-8601 week-based (year, week).
    fn iso_week(&self) -> (i64, u32) {
        let wday_mon = (self.wday + 6) % 7; // Monday = 0
        let thursday = self.days - wday_mon as i64 + 3;
        let (ty, _, _) = civil_from_days(thursday);
        let week = ((thursday - days_from_civil(ty, 1, 1)) / 7 + 1) as u32;
        (ty, week)
    }
}

const F_MINUS: u8 = 1;
const F_SPACE: u8 = 2;
const F_ZERO: u8 = 4;
const F_UPPER: u8 = 8;
const F_CHCASE: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Directive {
    conv: u8,
    flags: u8,
    width: Option<usize>,
    colons: u8,
}

impl Directive {
    fn is_subsec(&self) -> bool {
        matches!(self.conv, b'N' | b'L')
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Lit(Box<[u8]>),
    Dir(Directive),
}

/// A compiled strftime pattern.
#[derive(Clone, Debug)]
pub struct Strftime {
    pieces: Vec<Piece>,
}

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Strftime {
    pub fn new(format: &str) -> Strftime {
        let b = format.as_bytes();
        let mut pieces = Vec::new();
        let mut lit: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            let start = i;
            i += 1;
            let mut flags = 0u8;
            while i < b.len() {
                match b[i] {
                    b'-' => flags |= F_MINUS,
                    b'_' => flags |= F_SPACE,
                    b'0' => flags |= F_ZERO,
                    b'^' => flags |= F_UPPER,
                    b'#' => flags |= F_CHCASE,
                    _ => break,
                }
                i += 1;
            }
            let mut width: Option<usize> = None;
            while i < b.len() && b[i].is_ascii_digit() {
                width = Some(
                    width
                        .unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add((b[i] - b'0') as usize)
                        .min(1024),
                );
                i += 1;
            }
            let mut colons = 0u8;
            while i < b.len() && b[i] == b':' {
                colons = colons.saturating_add(1);
                i += 1;
            }
            // E and O modifiers are accepted and ignored.
            if colons == 0 && i < b.len() && (b[i] == b'E' || b[i] == b'O') {
                i += 1;
            }
            let Some(&conv) = b.get(i) else {
                lit.extend_from_slice(&b[start..]);
                break;
            };
            i += 1;
            let known = b"aAbBcCdDeFgGhHIjklLmMnNpPrRsStTuUvVwWxXyYzZ+%".contains(&conv);
            if !known || (colons > 0 && conv != b'z') {
                lit.extend_from_slice(&b[start..i]);
                continue;
            }
            match conv {
                b'%' => lit.push(b'%'),
                b'n' => lit.push(b'\n'),
                b't' => lit.push(b'\t'),
                _ => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit).into_boxed_slice()));
                    }
                    pieces.push(Piece::Dir(Directive {
                        conv,
                        flags,
                        width,
                        colons,
                    }));
                }
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit.into_boxed_slice()));
        }
        Strftime { pieces }
    }

    /// Does the pattern show anything finer than a second?
    pub fn has_subsec(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Dir(d) if d.is_subsec()))
    }

    /// Appends `t` formatted in `zone`.
    pub fn format_into(&self, t: EventTime, zone: &TimeZoneSpec, out: &mut Vec<u8>) {
        let tm = Tm::new(t.sec, zone.info(t.sec));
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => out.extend_from_slice(l),
                Piece::Dir(d) if d.is_subsec() => write_subsec(out, t.nsec, d),
                Piece::Dir(d) => write_directive(out, &tm, d),
            }
        }
    }
}

fn pad(out: &mut Vec<u8>, n: usize, c: u8) {
    out.resize(out.len() + n, c);
}

fn write_num(out: &mut Vec<u8>, v: i64, default_width: usize, default_pad: u8, d: &Directive) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(v.unsigned_abs()).as_bytes();
    let mut width = d.width.unwrap_or(default_width);
    if v < 0 {
        out.push(b'-');
        width = width.saturating_sub(1);
    }
    if d.flags & F_MINUS == 0 && digits.len() < width {
        let c = if d.flags & F_SPACE != 0 {
            b' '
        } else if d.flags & F_ZERO != 0 {
            b'0'
        } else {
            default_pad
        };
        pad(out, width - digits.len(), c);
    }
    out.extend_from_slice(digits);
}

/// Text directives: `^` upcases; `#` swaps case (upcases names, downcases `%p` and `%Z`).
fn write_text(out: &mut Vec<u8>, s: &[u8], d: &Directive, chcase_down: bool) {
    if let Some(w) = d.width {
        if s.len() < w && d.flags & F_MINUS == 0 {
            pad(
                out,
                w - s.len(),
                if d.flags & F_ZERO != 0 { b'0' } else { b' ' },
            );
        }
    }
    let start = out.len();
    out.extend_from_slice(s);
    if d.flags & F_CHCASE != 0 {
        if chcase_down {
            out[start..].make_ascii_lowercase();
        } else {
            out[start..].make_ascii_uppercase();
        }
    } else if d.flags & F_UPPER != 0 {
        out[start..].make_ascii_uppercase();
    }
}

/// `%N` (default 9 digits) / `%L` (default 3): the first `width` digits of the fraction,
/// truncated, zero-filled on the right beyond nanoseconds.
fn write_subsec(out: &mut Vec<u8>, nsec: u32, d: &Directive) {
    let n = d.width.unwrap_or(if d.conv == b'N' { 9 } else { 3 });
    let mut digits = [b'0'; 9];
    let mut v = nsec.min(999_999_999);
    for i in (0..9).rev() {
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    if n <= 9 {
        out.extend_from_slice(&digits[..n]);
    } else {
        out.extend_from_slice(&digits);
        pad(out, n - 9, b'0');
    }
}

fn write_compound(out: &mut Vec<u8>, tm: &Tm, pattern: &[Directive], seps: &[u8], d: &Directive) {
    let start = out.len();
    for (i, sub) in pattern.iter().enumerate() {
        if i > 0 {
            out.push(seps[i - 1]);
        }
        write_directive(out, tm, sub);
    }
    if d.flags & F_UPPER != 0 || d.flags & F_CHCASE != 0 {
        out[start..].make_ascii_uppercase();
    }
    if let Some(w) = d.width {
        let len = out.len() - start;
        if len < w {
            let c = if d.flags & F_ZERO != 0 { b'0' } else { b' ' };
            out.splice(start..start, std::iter::repeat_n(c, w - len));
        }
    }
}

const fn dir(conv: u8) -> Directive {
    Directive {
        conv,
        flags: 0,
        width: None,
        colons: 0,
    }
}

fn write_directive(out: &mut Vec<u8>, tm: &Tm, d: &Directive) {
    match d.conv {
        b'Y' => write_num(out, tm.year, 4, b'0', d),
        b'C' => write_num(out, tm.year.div_euclid(100), 2, b'0', d),
        b'y' => write_num(out, tm.year.rem_euclid(100), 2, b'0', d),
        b'm' => write_num(out, tm.month as i64, 2, b'0', d),
        b'd' => write_num(out, tm.day as i64, 2, b'0', d),
        b'e' => write_num(out, tm.day as i64, 2, b' ', d),
        b'j' => write_num(out, tm.yday as i64, 3, b'0', d),
        b'H' => write_num(out, tm.hour as i64, 2, b'0', d),
        b'k' => write_num(out, tm.hour as i64, 2, b' ', d),
        b'I' | b'l' => {
            let h12 = match tm.hour % 12 {
                0 => 12,
                h => h,
            };
            let p = if d.conv == b'I' { b'0' } else { b' ' };
            write_num(out, h12 as i64, 2, p, d)
        }
        b'M' => write_num(out, tm.min as i64, 2, b'0', d),
        b'S' => write_num(out, tm.sec as i64, 2, b'0', d),
        b's' => write_num(out, tm.epoch, 1, b'0', d),
        b'u' => write_num(
            out,
            if tm.wday == 0 { 7 } else { tm.wday as i64 },
            1,
            b'0',
            d,
        ),
        b'w' => write_num(out, tm.wday as i64, 1, b'0', d),
        b'U' => write_num(out, ((tm.yday - 1 + 7 - tm.wday) / 7) as i64, 2, b'0', d),
        b'W' => write_num(
            out,
            ((tm.yday - 1 + 7 - (tm.wday + 6) % 7) / 7) as i64,
            2,
            b'0',
            d,
        ),
        b'G' => write_num(out, tm.iso_week().0, 4, b'0', d),
        b'g' => write_num(out, tm.iso_week().0.rem_euclid(100), 2, b'0', d),
        b'V' => write_num(out, tm.iso_week().1 as i64, 2, b'0', d),
        b'A' => write_text(out, DAY_NAMES[tm.wday as usize % 7].as_bytes(), d, false),
        b'a' => write_text(
            out,
            &DAY_NAMES[tm.wday as usize % 7].as_bytes()[..3],
            d,
            false,
        ),
        b'B' => write_text(
            out,
            MONTH_NAMES[(tm.month as usize + 11) % 12].as_bytes(),
            d,
            false,
        ),
        b'b' | b'h' => write_text(
            out,
            &MONTH_NAMES[(tm.month as usize + 11) % 12].as_bytes()[..3],
            d,
            false,
        ),
        b'p' => write_text(out, if tm.hour < 12 { b"AM" } else { b"PM" }, d, true),
        b'P' => write_text(out, if tm.hour < 12 { b"am" } else { b"pm" }, d, false),
        b'Z' => write_text(out, tm.zone.abbr(), d, true),
        b'z' => write_offset(out, tm.zone.offset, d),
        b'T' | b'X' => write_compound(out, tm, &[dir(b'H'), dir(b'M'), dir(b'S')], b"::", d),
        b'R' => write_compound(out, tm, &[dir(b'H'), dir(b'M')], b":", d),
        b'r' => write_compound(
            out,
            tm,
            &[dir(b'I'), dir(b'M'), dir(b'S'), dir(b'p')],
            b":: ",
            d,
        ),
        b'D' | b'x' => write_compound(out, tm, &[dir(b'm'), dir(b'd'), dir(b'y')], b"//", d),
        b'F' => write_compound(out, tm, &[dir(b'Y'), dir(b'm'), dir(b'd')], b"--", d),
        b'c' => write_compound(
            out,
            tm,
            &[dir(b'a'), dir(b'b'), dir(b'e'), dir(b'T'), dir(b'Y')],
            b"    ",
            d,
        ),
        b'+' => write_compound(
            out,
            tm,
            &[
                dir(b'a'),
                dir(b'b'),
                dir(b'e'),
                dir(b'T'),
                dir(b'Z'),
                dir(b'Y'),
            ],
            b"     ",
            d,
        ),
        b'v' => {
            let upper_b = Directive {
                flags: F_UPPER,
                ..dir(b'b')
            };
            let y4 = Directive {
                width: Some(4),
                ..dir(b'Y')
            };
            write_compound(out, tm, &[dir(b'e'), upper_b, y4], b"--", d)
        }
        b'N' | b'L' => {}
        _ => {}
    }
}

/// `%z` `+hhmm`, `%:z` `+hh:mm`, `%::z` `+hh:mm:ss`, `%:::z` as short as exact.
fn write_offset(out: &mut Vec<u8>, off: i32, d: &Directive) {
    out.push(if off < 0 { b'-' } else { b'+' });
    let a = off.unsigned_abs();
    let (h, m, s) = (a / 3600, a % 3600 / 60, a % 60);
    let two = |out: &mut Vec<u8>, v: u32| {
        out.push(b'0' + (v / 10 % 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    two(out, h);
    match d.colons {
        0 => two(out, m),
        1 => {
            out.push(b':');
            two(out, m);
        }
        2 => {
            out.push(b':');
            two(out, m);
            out.push(b':');
            two(out, s);
        }
        _ => {
            if m != 0 || s != 0 {
                out.push(b':');
                two(out, m);
            }
            if s != 0 {
                out.push(b':');
                two(out, s);
            }
        }
    }
}

/// One-off `Time#strftime` of `t` in `zone`.
pub fn strftime(t: EventTime, format: &str, zone: &TimeZoneSpec) -> String {
    let mut out = Vec::with_capacity(format.len() + 16);
    Strftime::new(format).format_into(t, zone, &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Ruby's `Time#to_s`: `2023-11-14 22:13:20 +0000`, or `... UTC` for a UTC time.
pub fn ruby_time_to_s(t: EventTime, zone: &TimeZoneSpec) -> String {
    let fmt = if *zone == TimeZoneSpec::Utc {
        "%Y-%m-%d %H:%M:%S UTC"
    } else {
        "%Y-%m-%d %H:%M:%S %z"
    };
    strftime(t, fmt, zone)
}

/// The pattern of Ruby's `Time#iso8601` (no fraction) for a zone: `Z` only for UTC times.
pub fn iso8601_pattern(zone: &TimeZoneSpec) -> &'static str {
    if *zone == TimeZoneSpec::Utc {
        "%Y-%m-%dT%H:%M:%SZ"
    } else {
        "%Y-%m-%dT%H:%M:%S%:z"
    }
}

/// What one distinct second renders to: the bytes, and where sub-second directives go.
#[derive(Default)]
struct SecondCache {
    sec: Option<i64>,
    buf: Vec<u8>,
    holes: Vec<(usize, Directive)>,
}

/// Fluentd's `TimeFormatter`: a strftime pattern (or ISO-8601 when none) in a zone, cached per
/// second.
pub struct TimeFormatter {
    pattern: Strftime,
    zone: TimeZoneSpec,
    cache: Mutex<SecondCache>,
}

impl std::fmt::Debug for TimeFormatter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeFormatter")
            .field("pattern", &self.pattern)
            .field("zone", &self.zone)
            .finish()
    }
}

impl TimeFormatter {
    /// `format` None = `Time#iso8601` in the zone.
    pub fn new(format: Option<&str>, zone: TimeZoneSpec) -> TimeFormatter {
        let pattern = Strftime::new(format.unwrap_or_else(|| iso8601_pattern(&zone)));
        TimeFormatter {
            pattern,
            zone,
            cache: Mutex::new(SecondCache::default()),
        }
    }

    pub fn zone(&self) -> &TimeZoneSpec {
        &self.zone
    }

    /// Appends `t` formatted.
    pub fn format_into(&self, t: EventTime, out: &mut Vec<u8>) {
        let Some(mut c) = self.cache.try_lock() else {
            // Another thread is formatting: do it without the cache rather than wait.
            self.pattern.format_into(t, &self.zone, out);
            return;
        };
        if c.sec != Some(t.sec) {
            let c = &mut *c;
            c.buf.clear();
            c.holes.clear();
            let tm = Tm::new(t.sec, self.zone.info(t.sec));
            for p in &self.pattern.pieces {
                match p {
                    Piece::Lit(l) => c.buf.extend_from_slice(l),
                    Piece::Dir(d) if d.is_subsec() => c.holes.push((c.buf.len(), *d)),
                    Piece::Dir(d) => write_directive(&mut c.buf, &tm, d),
                }
            }
            c.sec = Some(t.sec);
        }
        let mut last = 0;
        for (pos, d) in &c.holes {
            out.extend_from_slice(&c.buf[last..*pos]);
            write_subsec(out, t.nsec, d);
            last = *pos;
        }
        out.extend_from_slice(&c.buf[last..]);
    }

    pub fn format(&self, t: EventTime) -> String {
        let mut out = Vec::with_capacity(40);
        self.format_into(t, &mut out);
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: EventTime = EventTime::new(1_700_000_000, 250_000_000);

    fn utc(fmt: &str) -> String {
        strftime(T, fmt, &TimeZoneSpec::Utc)
    }

    #[test]
    fn stdout_line_time_in_utc() {
        assert_eq!(
            strftime(
                EventTime::new(1_700_000_000, 0),
                "%Y-%m-%d %H:%M:%S.%N %z",
                &TimeZoneSpec::Fixed(0)
            ),
            "2023-11-14 22:13:20.000000000 +0000"
        );
        assert_eq!(
            strftime(
                EventTime::new(1_700_000_000, 123_456_789),
                "%Y-%m-%d %H:%M:%S.%N %z",
                &TimeZoneSpec::Utc
            ),
            "2023-11-14 22:13:20.123456789 +0000"
        );
    }

    #[test]
    fn case_091_custom_format() {
        assert_eq!(utc("%d/%m/%Y %H:%M"), "14/11/2023 22:13");
    }

    #[test]
    fn case_093_timezone_and_millis() {
        let z = parse_timezone("+09:00").unwrap();
        assert_eq!(
            strftime(
                EventTime::new(1_700_000_000, 0),
                "%Y-%m-%dT%H:%M:%S.%3N%z",
                &z
            ),
            "2023-11-15T07:13:20.000+0900"
        );
    }

    #[test]
    fn case_090_iso8601_default() {
        let f = TimeFormatter::new(None, TimeZoneSpec::Fixed(0));
        assert_eq!(f.format(T), "2023-11-14T22:13:20+00:00");
        let f = TimeFormatter::new(None, TimeZoneSpec::Utc);
        assert_eq!(f.format(T), "2023-11-14T22:13:20Z");
        let f = TimeFormatter::new(None, parse_timezone("Asia/Tokyo").unwrap());
        assert_eq!(f.format(T), "2023-11-15T07:13:20+09:00");
    }

    #[test]
    fn many_directives() {
        assert_eq!(utc("%a %A %b %B %h"), "Tue Tuesday Nov November Nov");
        assert_eq!(utc("%j %e %y %C %s %u %w"), "318 14 23 20 1700000000 2 2");
        assert_eq!(
            utc("%T|%F|%D|%R|%r"),
            "22:13:20|2023-11-14|11/14/23|22:13|10:13:20 PM"
        );
        assert_eq!(utc("%p %P %I %l %k"), "PM pm 10 10 22");
        assert_eq!(
            utc("%L %3N %6N %9N %N %12N"),
            "250 250 250000 250000000 250000000 250000000000"
        );
        assert_eq!(utc("%z %:z %::z %Z %%"), "+0000 +00:00 +00:00:00 UTC %");
        assert_eq!(utc("%c"), "Tue Nov 14 22:13:20 2023");
        assert_eq!(utc("%+"), "Tue Nov 14 22:13:20 UTC 2023");
        assert_eq!(utc("%v"), "14-NOV-2023");
        assert_eq!(utc("%G-W%V-%u %U %W"), "2023-W46-2 46 46");
        assert_eq!(utc("%^a %#B %#p %^B"), "TUE NOVEMBER pm NOVEMBER");
        assert_eq!(utc("%-m/%-d %_m %010Y %3S"), "11/14 11 0000002023 020");
        assert_eq!(utc("%Q %5 %"), "%Q %5 %");
        assert_eq!(utc("%n%t"), "\n\t");
        assert_eq!(utc("%Ey %Od"), "23 14");
        assert_eq!(utc("%x %X %10F"), "11/14/23 22:13:20 2023-11-14");
        assert_eq!(utc("%12F|"), "  2023-11-14|");
        let e = EventTime::new(1_704_153_600 + 3 * 3600 + 4 * 60 + 5, 0);
        assert_eq!(
            strftime(e, "%e|%l|%-H|%j|%U", &TimeZoneSpec::Utc),
            " 2| 3|3|002|00"
        );
    }

    #[test]
    fn offsets_and_zone_names() {
        let z = parse_timezone("-0700").unwrap();
        assert_eq!(z, TimeZoneSpec::Fixed(-7 * 3600));
        assert_eq!(strftime(T, "%H %z %:z [%Z]", &z), "15 -0700 -07:00 []");
        assert_eq!(parse_timezone("+0900"), Some(TimeZoneSpec::Fixed(9 * 3600)));
        assert_eq!(parse_timezone("+09"), Some(TimeZoneSpec::Fixed(9 * 3600)));
        assert_eq!(
            parse_timezone("-05:30"),
            Some(TimeZoneSpec::Fixed(-(5 * 3600 + 1800)))
        );
        assert_eq!(parse_timezone("+9"), None);
        assert_eq!(parse_timezone("UTC"), None);
        assert_eq!(parse_timezone("America/New_York"), None);
        assert_eq!(parse_timezone("Nowhere/Land"), None);
        let tokyo = parse_timezone("Asia/Tokyo").unwrap();
        assert_eq!(strftime(T, "%H:%M %z [%Z]", &tokyo), "07:13 +0900 []");
        let ny = TimeZoneSpec::Named(chrono_tz::America::New_York);
        assert_eq!(ny.offset_at(1_700_000_000), -5 * 3600);
        assert_eq!(ny.offset_at(1_690_000_000), -4 * 3600);
        let s =
            |x: Option<bool>, y: Option<bool>, z: Option<&str>| TimeZoneSpec::from_params(x, y, z);
        assert_eq!(s(None, None, None), Ok(TimeZoneSpec::Local));
        assert_eq!(s(Some(false), None, None), Ok(TimeZoneSpec::Utc));
        assert_eq!(s(None, Some(true), None), Ok(TimeZoneSpec::Utc));
        assert_eq!(
            s(None, Some(true), Some("+01:00")),
            Ok(TimeZoneSpec::Fixed(3600))
        );
        assert_eq!(
            s(None, None, Some("bogus")),
            Err("Unsupported timezone 'bogus'".to_string())
        );
    }

    #[test]
    fn local_to_utc_round_trip() {
        let tokyo = parse_timezone("Asia/Tokyo").unwrap();
        assert_eq!(
            tokyo.utc_from_local(1_700_000_000 + 9 * 3600),
            1_700_000_000
        );
        assert_eq!(TimeZoneSpec::Fixed(-3600).utc_from_local(0), 3600);
        assert_eq!(TimeZoneSpec::Utc.utc_from_local(42), 42);
    }

    #[test]
    fn local_zone_agrees_with_chrono() {
        use chrono::TimeZone as _;
        for sec in [0i64, 1_700_000_000, 1_690_000_000] {
            let expected = chrono::Local
                .timestamp_opt(sec, 0)
                .single()
                .map(|d| d.offset().local_minus_utc());
            assert_eq!(Some(TimeZoneSpec::Local.offset_at(sec)), expected);
            let local = sec + TimeZoneSpec::Local.offset_at(sec) as i64;
            assert_eq!(TimeZoneSpec::Local.utc_from_local(local), sec);
        }
    }

    #[test]
    fn ruby_to_s() {
        let t = EventTime::new(1_700_000_000, 0);
        assert_eq!(
            ruby_time_to_s(t, &TimeZoneSpec::Fixed(0)),
            "2023-11-14 22:13:20 +0000"
        );
        assert_eq!(
            ruby_time_to_s(t, &TimeZoneSpec::Utc),
            "2023-11-14 22:13:20 UTC"
        );
    }

    #[test]
    fn cached_formatter_fills_subseconds_per_call() {
        let f = TimeFormatter::new(Some("%H:%M:%S.%N|%L|%s"), TimeZoneSpec::Utc);
        assert_eq!(
            f.format(EventTime::new(1_700_000_000, 1)),
            "22:13:20.000000001|000|1700000000"
        );
        assert_eq!(
            f.format(EventTime::new(1_700_000_000, 999_999_999)),
            "22:13:20.999999999|999|1700000000"
        );
        assert_eq!(
            f.format(EventTime::new(1_700_000_001, 5_000_000)),
            "22:13:21.005000000|005|1700000001"
        );
    }

    #[test]
    fn civil_conversions() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(2024, 2, 29), 19782);
        assert_eq!(civil_from_days(19782), (2024, 2, 29));
        let before = EventTime::new(-1, 0);
        assert_eq!(
            strftime(before, "%Y-%m-%d %H:%M:%S %s", &TimeZoneSpec::Utc),
            "1969-12-31 23:59:59 -1"
        );
    }
}
