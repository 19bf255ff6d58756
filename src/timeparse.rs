//! Time parsing for parsers, as Fluentd's `TimeParser`/`NumericTimeParser`/`MixedTimeParser`:
//!
//! * `time_type string`: a strptime format (compiled once into a plan), `%iso8601`, or no format
//!   (a free-form parse of the common shapes Ruby's `Time.parse` reads);
//! * `time_type unixtime` / `float`: numbers or numeric strings (`float` splits the text at the
//!   dot, as Fluentd does, so `"2024-02-21T10:31:27.5Z"` reads as 2024.5 s);
//! * `time_type mixed`: `time_format` then `time_format_fallbacks`, first success wins;
//! * a string without an offset is read in `timezone`, else UTC with `utc true`, else local
//!   time (the `TZ` variable).

use chrono::{Datelike, LocalResult, NaiveDate, Offset, TimeZone};
use parking_lot::Mutex;

use crate::event::{EventTime, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeType {
    String,
    Unixtime,
    Float,
    Mixed,
}

/// Where wall-clock times without an offset are placed.
#[derive(Clone, Debug)]
pub enum Zone {
    Local,
    Fixed(i32),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// Fluentd's `timezone` values: `+09:00`, `-0700`, `+09`, `UTC`, or an IANA name.
    pub fn parse(s: &str) -> Option<Zone> {
        let t = s.trim();
        if let Some(off) = parse_offset_exact(t.as_bytes()) {
            return Some(Zone::Fixed(off));
        }
        t.parse::<chrono_tz::Tz>().ok().map(Zone::Named)
    }

    /// The UTC offset (seconds east) of wall-clock time `local` (seconds since the epoch as if
    /// it were UTC) in this zone.
    fn offset_of_local(&self, local: i64) -> i32 {
        let naive = match chrono::DateTime::from_timestamp(local, 0) {
            Some(d) => d.naive_utc(),
            None => return 0,
        };
        match self {
            Zone::Fixed(o) => *o,
            Zone::Local => pick_offset(chrono::Local.offset_from_local_datetime(&naive), || {
                chrono::Local.offset_from_utc_datetime(&naive).fix()
            }),
            Zone::Named(tz) => pick_offset(tz.offset_from_local_datetime(&naive), || {
                tz.offset_from_utc_datetime(&naive).fix()
            }),
        }
    }

    /// The current date in this zone.
    fn today(&self) -> NaiveDate {
        let now = chrono::Utc::now();
        match self {
            Zone::Fixed(o) => (now + chrono::Duration::seconds(*o as i64)).date_naive(),
            Zone::Local => now.with_timezone(&chrono::Local).date_naive(),
            Zone::Named(tz) => now.with_timezone(tz).date_naive(),
        }
    }
}

fn pick_offset<O: Offset>(r: LocalResult<O>, gap: impl FnOnce() -> chrono::FixedOffset) -> i32 {
    match r {
        LocalResult::Single(o) => o.fix().local_minus_utc(),
        LocalResult::Ambiguous(a, _) => a.fix().local_minus_utc(),
        // A wall time inside a DST gap: use the offset in effect just before it.
        LocalResult::None => gap().local_minus_utc(),
    }
}

/// A time parser built once from the `<parse>` time parameters.
pub struct TimeParser {
    kind: Kind,
    /// Offset cache for Local/Named zones: (local minute, offset).
    offset_cache: Mutex<Option<(i64, i32)>>,
}

enum Kind {
    Strptime(Plan, Zone),
    Iso8601(Zone),
    Free(Zone),
    Unixtime,
    Float,
    Mixed(Vec<TimeParser>),
}

impl TimeParser {
    /// `time_parser_create` of Fluentd's TimeMixin.
    pub fn new(
        time_type: TimeType,
        format: Option<&str>,
        localtime: bool,
        utc: bool,
        timezone: Option<&str>,
        fallbacks: &[String],
    ) -> Result<TimeParser, String> {
        let zone = match timezone {
            Some(tz) => Zone::parse(tz).ok_or_else(|| format!("Unsupported timezone '{tz}'"))?,
            None if utc || !localtime => Zone::Fixed(0),
            None => Zone::Local,
        };
        let kind = match time_type {
            TimeType::Unixtime => Kind::Unixtime,
            TimeType::Float => Kind::Float,
            TimeType::String => Self::string_kind(format, zone)?,
            TimeType::Mixed => {
                let mut parsers = Vec::new();
                let mut formats: Vec<&str> = Vec::new();
                if let Some(f) = format {
                    formats.push(f);
                }
                formats.extend(fallbacks.iter().map(|s| s.as_str()));
                if formats.is_empty() {
                    return Err(
                        "time_type is :mixed but time_format and time_format_fallbacks is empty."
                            .to_string(),
                    );
                }
                for f in formats {
                    let k = match f {
                        "unixtime" => Kind::Unixtime,
                        "float" => Kind::Float,
                        _ => Self::string_kind(Some(f), zone.clone())?,
                    };
                    parsers.push(TimeParser::from_kind(k));
                }
                Kind::Mixed(parsers)
            }
        };
        Ok(TimeParser::from_kind(kind))
    }

    fn string_kind(format: Option<&str>, zone: Zone) -> Result<Kind, String> {
        Ok(match format {
            None => Kind::Free(zone),
            // Time.iso8601 reads a string without offset as local time, whatever `timezone` says.
            Some("%iso8601") => Kind::Iso8601(Zone::Local),
            Some(f) => Kind::Strptime(Plan::compile(f)?, zone),
        })
    }

    fn from_kind(kind: Kind) -> TimeParser {
        TimeParser {
            kind,
            offset_cache: Mutex::new(None),
        }
    }

    /// Parses a record value (a string for `time_type string`; numbers too for the numeric
    /// types).
    pub fn parse(&self, v: &Value) -> Result<EventTime, String> {
        match &self.kind {
            Kind::Unixtime => parse_unixtime(v),
            Kind::Float => parse_float(v),
            Kind::Mixed(ps) => {
                for p in ps {
                    if matches!(p.kind, Kind::Unixtime | Kind::Float) && !ruby_float_ok(v) {
                        continue;
                    }
                    if let Ok(t) = p.parse(v) {
                        return Ok(t);
                    }
                }
                Err(format!(
                    "invalid time format: value = {}",
                    String::from_utf8_lossy(&v.to_ruby_s())
                ))
            }
            _ => match v {
                Value::Str(s) => self.parse_bytes(s),
                other => Err(format!(
                    "value must be string: {}",
                    String::from_utf8_lossy(&other.to_ruby_s())
                )),
            },
        }
    }

    /// Parses a string.
    pub fn parse_bytes(&self, s: &[u8]) -> Result<EventTime, String> {
        let fields = match &self.kind {
            Kind::Unixtime | Kind::Float | Kind::Mixed(_) => {
                return self.parse(&Value::Str(s.to_vec()));
            }
            Kind::Strptime(plan, zone) => plan.exec(s).map(|f| (f, zone)),
            Kind::Iso8601(zone) => parse_iso8601(s).map(|f| (f, zone)),
            Kind::Free(zone) => parse_free(s).map(|f| (f, zone)),
        };
        let (f, zone) = fields.ok_or_else(|| {
            format!(
                "invalid time format: value = {}, error_class = ArgumentError, error = invalid date or strptime format",
                String::from_utf8_lossy(s)
            )
        })?;
        Ok(self.resolve(&f, zone))
    }

    fn resolve(&self, f: &Fields, zone: &Zone) -> EventTime {
        if let Some(epoch) = f.epoch {
            return EventTime::new(epoch, f.nsec);
        }
        let (y, m, d) = match (f.year, f.mon, f.mday, f.yday) {
            (None, None, None, None) => {
                let t = zone.today();
                (t.year() as i64, t.month() as i64, t.day() as i64)
            }
            (y, m, d, yday) => {
                let y = y.unwrap_or_else(|| zone.today().year() as i64);
                match (yday, m) {
                    (Some(j), None) => {
                        let days = days_from_civil(y, 1, 1) + j - 1;
                        let (yy, mm, dd) = civil_from_days(days);
                        (yy, mm, dd)
                    }
                    _ => (y, m.unwrap_or(1), d.unwrap_or(1)),
                }
            }
        };
        let mut hour = f.hour;
        if let Some(pm) = f.pm {
            hour %= 12;
            if pm {
                hour += 12;
            }
        }
        let local = days_from_civil(y, m, d) * 86400 + hour * 3600 + f.min * 60 + f.sec;
        let off = match f.offset {
            Some(o) => o as i64,
            None => match zone {
                Zone::Fixed(o) => *o as i64,
                _ => self.cached_offset(zone, local) as i64,
            },
        };
        EventTime::new(local - off, f.nsec)
    }

    fn cached_offset(&self, zone: &Zone, local: i64) -> i32 {
        let minute = local.div_euclid(60);
        let mut c = self.offset_cache.lock();
        if let Some((k, o)) = *c {
            if k == minute {
                return o;
            }
        }
        let o = zone.offset_of_local(minute * 60);
        *c = Some((minute, o));
        o
    }
}

/// Ruby's `Float(value)` succeeds (mixed time parsing tries numeric parsers only then).
fn ruby_float_ok(v: &Value) -> bool {
    match v {
        Value::Int(_) | Value::UInt(_) | Value::BigInt(_) | Value::Float(_) => true,
        Value::Str(s) => {
            let t = String::from_utf8_lossy(s);
            let t = t.trim().replace('_', "");
            !t.is_empty()
                && (t
                    .parse::<f64>()
                    .is_ok_and(|f| !t.contains(['i', 'I', 'n', 'N']) || f.is_finite())
                    || t.strip_prefix("0x")
                        .is_some_and(|h| i64::from_str_radix(h, 16).is_ok()))
        }
        _ => false,
    }
}

fn parse_unixtime(v: &Value) -> Result<EventTime, String> {
    match v {
        Value::Int(i) => Ok(EventTime::new(*i, 0)),
        Value::UInt(u) => Ok(EventTime::new(*u as i64, 0)),
        Value::Float(f) if f.is_finite() => Ok(EventTime::new(f.trunc() as i64, 0)),
        Value::Str(s) => Ok(EventTime::new(
            crate::config_parser::types::ruby_to_i(&String::from_utf8_lossy(s)),
            0,
        )),
        other => Err(format!(
            "value must be a string or a number: {}",
            String::from_utf8_lossy(&other.to_ruby_s())
        )),
    }
}

/// Fluentd's `parse_float`: split `to_s` at the first dot; the integer part with `to_i`, the
/// next ten characters right-padded to nine with zeros, with `to_i`.
fn parse_float(v: &Value) -> Result<EventTime, String> {
    let text = match v {
        Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::BigInt(b) => b.clone(),
        Value::Float(f) => ruby_float_to_s(*f),
        other => {
            return Err(format!(
                "value must be a string or a number: {}",
                String::from_utf8_lossy(&other.to_ruby_s())
            ))
        }
    };
    let mut parts = text.splitn(3, '.');
    let sec_s = parts.next().unwrap_or("");
    let nsec_s: String = match parts.next() {
        Some(n) => n.chars().take(10).collect(),
        None => "0".to_string(),
    };
    let mut nsec_s = nsec_s;
    while nsec_s.chars().count() < 9 {
        nsec_s.push('0');
    }
    let sec = crate::config_parser::types::ruby_to_i(sec_s);
    let nsec = crate::config_parser::types::ruby_to_i(&nsec_s);
    // Ten digits can exceed a second; carry as Ruby's rational time would.
    let sec = sec.saturating_add(nsec.div_euclid(1_000_000_000));
    let nsec = nsec.rem_euclid(1_000_000_000);
    Ok(EventTime::new(sec, nsec as u32))
}

/// Ruby's `Float#to_s` (enough for time values): plain decimals for 1e-4 <= |f| < 1e16,
/// otherwise `d.ddde+XX`.
pub fn ruby_float_to_s(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let a = f.abs();
    if a == 0.0 || (1e-4..1e16).contains(&a) {
        let s = format!("{f}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{f:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mant = if mant.contains('.') {
        mant.to_string()
    } else {
        format!("{mant}.0")
    };
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mant}e{sign}{digits:0>2}")
}

/// Broken-down fields of a parsed time.
#[derive(Default, Debug)]
struct Fields {
    year: Option<i64>,
    mon: Option<i64>,
    mday: Option<i64>,
    yday: Option<i64>,
    hour: i64,
    min: i64,
    sec: i64,
    nsec: u32,
    pm: Option<bool>,
    offset: Option<i32>,
    epoch: Option<i64>,
}

#[derive(Debug, Clone)]
enum Item {
    Lit(u8),
    Space,
    Year,
    Year2,
    Century,
    Mon,
    MonName,
    Day,
    DaySpace,
    Yday,
    Hour,
    Hour12,
    Min,
    Sec,
    Frac(Option<usize>),
    AmPm,
    Zone,
    WdayName,
    WdayNum,
    Epoch,
    EpochMs,
}

impl Item {
    fn numeric(&self) -> bool {
        matches!(
            self,
            Item::Year
                | Item::Year2
                | Item::Century
                | Item::Mon
                | Item::Day
                | Item::DaySpace
                | Item::Yday
                | Item::Hour
                | Item::Hour12
                | Item::Min
                | Item::Sec
                | Item::Frac(_)
                | Item::WdayNum
                | Item::Epoch
                | Item::EpochMs
        )
    }
}

/// A strptime format compiled once.
#[derive(Debug, Clone)]
pub struct Plan {
    items: Vec<Item>,
}

impl Plan {
    pub fn compile(format: &str) -> Result<Plan, String> {
        let mut items = Vec::new();
        Self::compile_into(format.as_bytes(), &mut items)?;
        Ok(Plan { items })
    }

    /// Does the format carry its own offset (`%z`, `%Z`, `%s`)?
    pub fn has_zone(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i, Item::Zone | Item::Epoch | Item::EpochMs))
    }

    fn compile_into(f: &[u8], items: &mut Vec<Item>) -> Result<(), String> {
        let mut i = 0;
        while i < f.len() {
            let c = f[i];
            if c.is_ascii_whitespace() {
                items.push(Item::Space);
                i += 1;
                continue;
            }
            if c != b'%' || i + 1 >= f.len() {
                items.push(Item::Lit(c));
                i += 1;
                continue;
            }
            i += 1;
            // Flags and widths (`%-d`, `%3N`, `%:z`).
            let mut width: Option<usize> = None;
            while i < f.len() && matches!(f[i], b'-' | b'_' | b'0' | b'^' | b'#' | b':') {
                i += 1;
            }
            while i < f.len() && f[i].is_ascii_digit() {
                width = Some(width.unwrap_or(0) * 10 + (f[i] - b'0') as usize);
                i += 1;
            }
            let d = match f.get(i) {
                Some(&d) => d,
                None => return Err("incomplete format directive".into()),
            };
            i += 1;
            match d {
                b'Y' | b'G' => items.push(Item::Year),
                b'y' | b'g' => items.push(Item::Year2),
                b'C' => items.push(Item::Century),
                b'm' => items.push(Item::Mon),
                b'b' | b'B' | b'h' => items.push(Item::MonName),
                b'd' => items.push(Item::Day),
                b'e' => items.push(Item::DaySpace),
                b'j' => items.push(Item::Yday),
                b'H' | b'k' => items.push(Item::Hour),
                b'I' | b'l' => items.push(Item::Hour12),
                b'M' => items.push(Item::Min),
                b'S' => items.push(Item::Sec),
                b'L' | b'N' => items.push(Item::Frac(width)),
                b'p' | b'P' => items.push(Item::AmPm),
                b'z' | b'Z' => items.push(Item::Zone),
                b'a' | b'A' => items.push(Item::WdayName),
                b'u' | b'w' => items.push(Item::WdayNum),
                b's' => items.push(Item::Epoch),
                b'Q' => items.push(Item::EpochMs),
                b'n' | b't' => items.push(Item::Space),
                b'%' => items.push(Item::Lit(b'%')),
                b'T' | b'X' => Self::compile_into(b"%H:%M:%S", items)?,
                b'R' => Self::compile_into(b"%H:%M", items)?,
                b'r' => Self::compile_into(b"%I:%M:%S %p", items)?,
                b'F' => Self::compile_into(b"%Y-%m-%d", items)?,
                b'D' | b'x' => Self::compile_into(b"%m/%d/%y", items)?,
                b'c' => Self::compile_into(b"%a %b %e %H:%M:%S %Y", items)?,
                b'v' => Self::compile_into(b"%e-%b-%Y", items)?,
                b'+' => Self::compile_into(b"%a %b %e %H:%M:%S %Z %Y", items)?,
                other => {
                    return Err(format!("unsupported strptime directive %{}", other as char));
                }
            }
        }
        Ok(())
    }

    fn exec(&self, s: &[u8]) -> Option<Fields> {
        let mut f = Fields::default();
        let mut p = 0usize;
        for (idx, item) in self.items.iter().enumerate() {
            let next_numeric = self.items.get(idx + 1).is_some_and(Item::numeric);
            match item {
                Item::Lit(c) => {
                    if s.get(p) != Some(c) {
                        return None;
                    }
                    p += 1;
                }
                Item::Space => {
                    while s.get(p).is_some_and(|b| b.is_ascii_whitespace()) {
                        p += 1;
                    }
                }
                Item::Year => {
                    let neg = sign(s, &mut p);
                    let v = digits(s, &mut p, if next_numeric { 4 } else { 10 })?;
                    f.year = Some(if neg { -v } else { v });
                }
                Item::Year2 => {
                    let v = digits(s, &mut p, 2)?;
                    f.year = Some(if v < 69 { v + 2000 } else { v + 1900 });
                }
                Item::Century => {
                    let v = digits(s, &mut p, 2)?;
                    f.year = Some(v * 100 + f.year.map(|y| y % 100).unwrap_or(0));
                }
                Item::Mon => f.mon = Some(range(digits(s, &mut p, 2)?, 1, 12)?),
                Item::MonName => f.mon = Some(name(s, &mut p, &MONTHS)? as i64 + 1),
                Item::Day => f.mday = Some(range(digits(s, &mut p, 2)?, 1, 31)?),
                Item::DaySpace => {
                    if s.get(p) == Some(&b' ') {
                        p += 1;
                    }
                    f.mday = Some(range(digits(s, &mut p, 2)?, 1, 31)?);
                }
                Item::Yday => f.yday = Some(range(digits(s, &mut p, 3)?, 1, 366)?),
                Item::Hour => f.hour = range(digits(s, &mut p, 2)?, 0, 24)?,
                Item::Hour12 => f.hour = range(digits(s, &mut p, 2)?, 1, 12)?,
                Item::Min => f.min = range(digits(s, &mut p, 2)?, 0, 59)?,
                Item::Sec => f.sec = range(digits(s, &mut p, 2)?, 0, 60)?,
                Item::Frac(w) => {
                    let max = w.unwrap_or(if next_numeric { 9 } else { usize::MAX });
                    f.nsec = fraction(s, &mut p, max)?;
                }
                Item::AmPm => {
                    let rest = &s[p..];
                    let (pm, len) = if starts_ci(rest, b"a.m.") {
                        (false, 4)
                    } else if starts_ci(rest, b"p.m.") {
                        (true, 4)
                    } else if starts_ci(rest, b"am") {
                        (false, 2)
                    } else if starts_ci(rest, b"pm") {
                        (true, 2)
                    } else {
                        return None;
                    };
                    f.pm = Some(pm);
                    p += len;
                }
                Item::Zone => f.offset = Some(zone_token(s, &mut p)?),
                Item::WdayName => {
                    name(s, &mut p, &WDAYS)?;
                }
                Item::WdayNum => {
                    digits(s, &mut p, 1)?;
                }
                Item::Epoch | Item::EpochMs => {
                    let neg = sign(s, &mut p);
                    let v = digits(s, &mut p, 20)?;
                    let v = if neg { -v } else { v };
                    if matches!(item, Item::Epoch) {
                        f.epoch = Some(v);
                    } else {
                        f.epoch = Some(v.div_euclid(1000));
                        f.nsec = (v.rem_euclid(1000) * 1_000_000) as u32;
                    }
                }
            }
        }
        Some(f)
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

fn starts_ci(s: &[u8], w: &[u8]) -> bool {
    s.len() >= w.len() && s[..w.len()].eq_ignore_ascii_case(w)
}

/// A full or three-letter name from `names`, case-insensitively; returns its index.
fn name(s: &[u8], p: &mut usize, names: &[&str]) -> Option<usize> {
    let rest = &s[*p..];
    for (i, n) in names.iter().enumerate() {
        if starts_ci(rest, n.as_bytes()) {
            *p += n.len();
            return Some(i);
        }
    }
    for (i, n) in names.iter().enumerate() {
        if starts_ci(rest, &n.as_bytes()[..3]) {
            *p += 3;
            return Some(i);
        }
    }
    None
}

fn sign(s: &[u8], p: &mut usize) -> bool {
    match s.get(*p) {
        Some(b'-') => {
            *p += 1;
            true
        }
        Some(b'+') => {
            *p += 1;
            false
        }
        _ => false,
    }
}

fn digits(s: &[u8], p: &mut usize, max: usize) -> Option<i64> {
    let start = *p;
    let mut v: i64 = 0;
    while *p < s.len() && *p - start < max && s[*p].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add((s[*p] - b'0') as i64)?;
        *p += 1;
    }
    if *p == start {
        None
    } else {
        Some(v)
    }
}

fn range(v: i64, lo: i64, hi: i64) -> Option<i64> {
    (lo..=hi).contains(&v).then_some(v)
}

/// Fraction digits as nanoseconds (digits beyond the ninth are read and dropped).
fn fraction(s: &[u8], p: &mut usize, max: usize) -> Option<u32> {
    let start = *p;
    let mut ns: u32 = 0;
    let mut n = 0;
    while *p < s.len() && *p - start < max && s[*p].is_ascii_digit() {
        if n < 9 {
            ns = ns * 10 + (s[*p] - b'0') as u32;
            n += 1;
        }
        *p += 1;
    }
    if *p == start {
        return None;
    }
    for _ in n..9 {
        ns *= 10;
    }
    Some(ns)
}

/// `+09:00`, `+0900`, `+09`, `-07:00:00` exactly (the `timezone` parameter forms).
fn parse_offset_exact(s: &[u8]) -> Option<i32> {
    let mut p = 0;
    let off = numeric_offset(s, &mut p)?;
    (p == s.len()).then_some(off)
}

fn numeric_offset(s: &[u8], p: &mut usize) -> Option<i32> {
    let neg = match s.get(*p) {
        Some(b'+') => false,
        Some(b'-') => true,
        _ => return None,
    };
    let mut q = *p + 1;
    let h = digits(s, &mut q, 2)?;
    let mut m = 0;
    let mut sec = 0;
    let colon = s.get(q) == Some(&b':');
    let mut r = q + colon as usize;
    if let Some(mm) = digits(s, &mut r, 2) {
        if r - q - colon as usize == 2 {
            m = mm;
            q = r;
            let colon2 = s.get(q) == Some(&b':');
            let mut r2 = q + colon2 as usize;
            if colon2 {
                if let Some(ss) = digits(s, &mut r2, 2) {
                    sec = ss;
                    q = r2;
                }
            }
        }
    }
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    *p = q;
    let v = (h * 3600 + m * 60 + sec) as i32;
    Some(if neg { -v } else { v })
}

/// Zone abbreviations Ruby's date library knows, in seconds east of UTC (the common ones).
const ZONE_ABBRS: &[(&str, i32)] = &[
    ("utc", 0),
    ("gmt", 0),
    ("ut", 0),
    ("z", 0),
    ("est", -5 * 3600),
    ("edt", -4 * 3600),
    ("cst", -6 * 3600),
    ("cdt", -5 * 3600),
    ("mst", -7 * 3600),
    ("mdt", -6 * 3600),
    ("pst", -8 * 3600),
    ("pdt", -7 * 3600),
    ("akst", -9 * 3600),
    ("akdt", -8 * 3600),
    ("hst", -10 * 3600),
    ("jst", 9 * 3600),
    ("kst", 9 * 3600),
    ("ist", 19800),
    ("cet", 3600),
    ("cest", 7200),
    ("eet", 7200),
    ("eest", 3 * 3600),
    ("wet", 0),
    ("west", 3600),
    ("bst", 3600),
    ("msk", 3 * 3600),
    ("aest", 10 * 3600),
    ("aedt", 11 * 3600),
    ("nzst", 12 * 3600),
    ("nzdt", 13 * 3600),
];

/// A zone as `%z` reads it: a numeric offset, `Z`, or a known abbreviation optionally
/// followed by an offset (`GMT+9`, `UTC+09:00`).
fn zone_token(s: &[u8], p: &mut usize) -> Option<i32> {
    if let Some(o) = numeric_offset(s, p) {
        return Some(o);
    }
    let start = *p;
    let mut q = *p;
    while q < s.len() && s[q].is_ascii_alphabetic() {
        q += 1;
    }
    if q == start {
        return None;
    }
    let word = s[start..q].to_ascii_lowercase();
    let base = ZONE_ABBRS
        .iter()
        .find(|(n, _)| n.as_bytes() == word.as_slice())
        .map(|(_, o)| *o)?;
    *p = q;
    if matches!(word.as_slice(), b"utc" | b"gmt" | b"ut") {
        let mut r = q;
        if let Some(o) = numeric_offset(s, &mut r) {
            *p = r;
            return Some(o);
        }
    }
    Some(base)
}

/// `Time.iso8601`: `YYYY-MM-DD[THH:MM:SS[.frac][Z|±HH[:]MM]]`, surrounding spaces allowed.
fn parse_iso8601(s: &[u8]) -> Option<Fields> {
    let mut f = Fields::default();
    let mut p = 0;
    while s.get(p).is_some_and(|b| b.is_ascii_whitespace()) {
        p += 1;
    }
    let neg = s.get(p) == Some(&b'-');
    if neg {
        p += 1;
    }
    let y = digits(s, &mut p, 10)?;
    f.year = Some(if neg { -y } else { y });
    lit(s, &mut p, b'-')?;
    f.mon = Some(fixed2(s, &mut p).and_then(|v| range(v, 1, 12))?);
    lit(s, &mut p, b'-')?;
    f.mday = Some(fixed2(s, &mut p).and_then(|v| range(v, 1, 31))?);
    if matches!(s.get(p), Some(b'T' | b't')) {
        p += 1;
        f.hour = fixed2(s, &mut p).and_then(|v| range(v, 0, 24))?;
        lit(s, &mut p, b':')?;
        f.min = fixed2(s, &mut p).and_then(|v| range(v, 0, 59))?;
        lit(s, &mut p, b':')?;
        f.sec = fixed2(s, &mut p).and_then(|v| range(v, 0, 60))?;
        if s.get(p) == Some(&b'.') {
            p += 1;
            f.nsec = fraction(s, &mut p, usize::MAX)?;
        }
        match s.get(p) {
            Some(b'Z' | b'z') => {
                p += 1;
                f.offset = Some(0);
            }
            Some(b'+' | b'-') => f.offset = Some(numeric_offset(s, &mut p)?),
            _ => {}
        }
    }
    while s.get(p).is_some_and(|b| b.is_ascii_whitespace()) {
        p += 1;
    }
    (p == s.len()).then_some(f)
}

fn lit(s: &[u8], p: &mut usize, c: u8) -> Option<()> {
    if s.get(*p) == Some(&c) {
        *p += 1;
        Some(())
    } else {
        None
    }
}

fn fixed2(s: &[u8], p: &mut usize) -> Option<i64> {
    let start = *p;
    let v = digits(s, p, 2)?;
    (*p - start == 2).then_some(v)
}

/// A free-form parse of the shapes `Time.parse` is commonly given: ISO dates
/// (`2024-01-02 03:04:05.5 +0900`, `2024/01/02`), `Oct 11 14:32:52 [2023]`,
/// `Wed Oct 11 14:32:52 2023`, `11 Oct 2023`, `10/Oct/2023:13:55:36 -0700`, `01/02/2024`,
/// times alone (today). Missing year: the current one.
fn parse_free(s: &[u8]) -> Option<Fields> {
    let mut f = Fields::default();
    let mut used = vec![false; s.len()];
    let mut found = false;

    // Time of day, with optional fraction, am/pm and zone.
    let mut i = 0;
    while i < s.len() {
        if s[i].is_ascii_digit() && (i == 0 || !s[i - 1].is_ascii_digit()) {
            let mut p = i;
            if let (Some(h), Some(b':')) = (digits(s, &mut p, 2), s.get(p).copied()) {
                let mut q = p + 1;
                if let Some(m) = digits(s, &mut q, 2).filter(|_| q - p - 1 == 2) {
                    f.hour = range(h, 0, 24)?;
                    f.min = range(m, 0, 59)?;
                    let mut end = q;
                    if s.get(end) == Some(&b':') {
                        let mut r = end + 1;
                        if let Some(sec) = digits(s, &mut r, 2) {
                            f.sec = range(sec, 0, 60)?;
                            end = r;
                            if matches!(s.get(end), Some(b'.' | b',')) {
                                let mut r2 = end + 1;
                                if let Some(ns) = fraction(s, &mut r2, usize::MAX) {
                                    f.nsec = ns;
                                    end = r2;
                                }
                            }
                        }
                    }
                    let mut r = end;
                    while s.get(r) == Some(&b' ') {
                        r += 1;
                    }
                    let rest = &s[r..];
                    if starts_ci(rest, b"am") || starts_ci(rest, b"pm") {
                        f.pm = Some(rest[0].eq_ignore_ascii_case(&b'p'));
                        end = r + 2;
                        r = end;
                        while s.get(r) == Some(&b' ') {
                            r += 1;
                        }
                    }
                    let mut z = r;
                    if let Some(o) = zone_token(s, &mut z) {
                        let ok_end = z == s.len() || !s[z].is_ascii_alphanumeric();
                        if ok_end {
                            f.offset = Some(o);
                            end = z;
                        }
                    }
                    for u in used.iter_mut().take(end).skip(i) {
                        *u = true;
                    }
                    found = true;
                    break;
                }
            }
        }
        i += 1;
    }

    // Tokens outside the time: numbers and words with their positions.
    #[derive(Debug)]
    enum Tok {
        Num(i64, usize),
        Mon(i64),
        Sep(u8),
    }
    let mut toks: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if used[i] {
            toks.push(Tok::Sep(b' '));
            while i < s.len() && used[i] {
                i += 1;
            }
            continue;
        }
        let c = s[i];
        if c.is_ascii_digit() {
            let st = i;
            while i < s.len() && s[i].is_ascii_digit() && !used[i] {
                i += 1;
            }
            let n = std::str::from_utf8(&s[st..i]).ok()?.parse::<i64>().ok()?;
            toks.push(Tok::Num(n, i - st));
        } else if c.is_ascii_alphabetic() {
            let st = i;
            while i < s.len() && s[i].is_ascii_alphabetic() && !used[i] {
                i += 1;
            }
            let w = &s[st..i];
            let mut p = 0;
            if let Some(m) = name(w, &mut p, &MONTHS).filter(|_| p == w.len()) {
                toks.push(Tok::Mon(m as i64 + 1));
            } else {
                let mut z = 0;
                if f.offset.is_none() {
                    if let Some(o) = zone_token(w, &mut z).filter(|_| z == w.len() && w.len() > 1) {
                        f.offset = Some(o);
                    }
                }
                toks.push(Tok::Sep(b' '));
            }
        } else if (c == b'+' || c == b'-') && f.offset.is_none() && found {
            let mut z = i;
            if let Some(o) =
                numeric_offset(s, &mut z).filter(|_| i > 0 && s[i - 1] == b' ' && (z - i) >= 3)
            {
                f.offset = Some(o);
                i = z;
                toks.push(Tok::Sep(b' '));
                continue;
            }
            toks.push(Tok::Sep(c));
            i += 1;
        } else {
            toks.push(Tok::Sep(c));
            i += 1;
        }
    }

    // Date shapes over the token list.
    let n = toks.len();
    let mut k = 0;
    let mut date = false;
    while k < n && !date {
        match (
            &toks[k],
            toks.get(k + 1),
            toks.get(k + 2),
            toks.get(k + 3),
            toks.get(k + 4),
        ) {
            (
                Tok::Num(a, la),
                Some(Tok::Sep(s1)),
                Some(Tok::Num(b, _)),
                Some(Tok::Sep(s2)),
                Some(Tok::Num(c, _)),
            ) if s1 == s2 && matches!(s1, b'-' | b'/' | b'.') => {
                if *la >= 3 {
                    (f.year, f.mon, f.mday) = (Some(*a), Some(*b), Some(*c));
                } else if *s1 == b'/' {
                    (f.mon, f.mday, f.year) = (Some(*a), Some(*b), Some(*c));
                } else {
                    (f.mday, f.mon, f.year) = (Some(*a), Some(*b), Some(*c));
                }
                date = true;
            }
            (
                Tok::Num(a, _),
                Some(Tok::Sep(s1)),
                Some(Tok::Mon(m)),
                Some(Tok::Sep(s2)),
                Some(Tok::Num(c, _)),
            ) if s1 == s2 && matches!(s1, b'-' | b'/') => {
                (f.mday, f.mon, f.year) = (Some(*a), Some(*m), Some(*c));
                date = true;
            }
            (Tok::Num(a, la), _, _, _, _) if *la == 8 => {
                (f.year, f.mon, f.mday) = (Some(a / 10000), Some(a / 100 % 100), Some(a % 100));
                date = true;
            }
            (Tok::Mon(m), _, _, _, _) => {
                f.mon = Some(*m);
                // "Oct 11", "Oct 11, 2023": the next number is the day.
                let mut j = k + 1;
                while j < n && matches!(toks[j], Tok::Sep(b' ' | b',' | b'.')) {
                    j += 1;
                }
                if let Some(Tok::Num(d, ld)) = toks.get(j) {
                    if *ld <= 2 {
                        f.mday = Some(*d);
                    }
                }
                // "11 Oct": a number just before.
                if f.mday.is_none() && k >= 2 {
                    if let Tok::Num(d, ld) = toks[k - 2] {
                        if ld <= 2 {
                            f.mday = Some(d);
                        }
                    }
                }
                date = true;
            }
            _ => {}
        }
        k += 1;
    }
    if date && f.year.is_none() {
        // A standalone 4-digit number anywhere is the year ("Wed Oct 11 14:32:52 2023").
        for t in &toks {
            if let Tok::Num(y, 4) = t {
                f.year = Some(*y);
                break;
            }
        }
    }
    if let Some(y) = f.year {
        if y < 100 && !date {
            f.year = None;
        } else if y < 100 {
            f.year = Some(if y < 69 { y + 2000 } else { y + 1900 });
        }
    }
    if !date && !found {
        return None;
    }
    if let Some(m) = f.mon {
        range(m, 1, 12)?;
    }
    if let Some(d) = f.mday {
        range(d, 1, 31)?;
    }
    Some(f)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month and day may overflow, as Ruby's
/// Time.utc rolls them).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(fmt: &str) -> TimeParser {
        TimeParser::new(TimeType::String, Some(fmt), true, false, None, &[]).unwrap()
    }

    fn t(parser: &TimeParser, s: &str) -> EventTime {
        parser.parse(&Value::str(s)).unwrap()
    }

    fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
    }

    #[test]
    fn strptime_with_offsets_case_124() {
        let tp = p("%Y-%m-%dT%H:%M:%S%z");
        assert_eq!(
            t(&tp, "2024-01-02T03:04:05+0000"),
            EventTime::new(utc(2024, 1, 2, 3, 4, 5), 0)
        );
        assert_eq!(
            t(&tp, "2024-01-02T03:04:05+0900"),
            EventTime::new(utc(2024, 1, 1, 18, 4, 5), 0)
        );
        assert_eq!(
            t(&tp, "2024-01-02T03:04:05Z"),
            EventTime::new(utc(2024, 1, 2, 3, 4, 5), 0)
        );
        assert_eq!(
            t(&tp, "2024-01-02T03:04:05-07:00"),
            EventTime::new(utc(2024, 1, 2, 10, 4, 5), 0)
        );
    }

    #[test]
    fn strptime_fractions_case_128() {
        let tp = p("%Y-%m-%dT%H:%M:%S.%NZ");
        assert_eq!(
            t(&tp, "2024-02-21T10:31:27.810781647Z"),
            EventTime::new(utc(2024, 2, 21, 10, 31, 27), 810_781_647)
        );
        assert_eq!(
            t(&tp, "2024-02-21T10:31:27.5Z"),
            EventTime::new(utc(2024, 2, 21, 10, 31, 27), 500_000_000)
        );
        let l = p("%Y-%m-%dT%H:%M:%S.%L%z");
        assert_eq!(
            t(&l, "2024-08-24T05:14:15.000003-07:00"),
            EventTime::new(utc(2024, 8, 24, 12, 14, 15), 3000)
        );
        assert!(l.parse(&Value::str("2024-08-24T05:14:15Z")).is_err());
    }

    #[test]
    fn timezone_parameter_case_129() {
        let tp = TimeParser::new(
            TimeType::String,
            Some("%Y-%m-%d %H:%M:%S"),
            true,
            false,
            Some("+09:00"),
            &[],
        )
        .unwrap();
        assert_eq!(
            t(&tp, "2024-01-02 09:00:00"),
            EventTime::new(utc(2024, 1, 2, 0, 0, 0), 0)
        );
        let tp = TimeParser::new(
            TimeType::String,
            Some("%Y-%m-%d %H:%M:%S"),
            true,
            false,
            Some("-0700"),
            &[],
        )
        .unwrap();
        assert_eq!(
            t(&tp, "2024-01-02 00:00:00"),
            EventTime::new(utc(2024, 1, 2, 7, 0, 0), 0)
        );
        let tp = TimeParser::new(
            TimeType::String,
            Some("%Y-%m-%d %H:%M:%S"),
            true,
            false,
            Some("Asia/Tokyo"),
            &[],
        )
        .unwrap();
        assert_eq!(
            t(&tp, "2024-01-02 09:00:00"),
            EventTime::new(utc(2024, 1, 2, 0, 0, 0), 0)
        );
        let ny = TimeParser::new(
            TimeType::String,
            Some("%Y-%m-%d %H:%M:%S"),
            true,
            false,
            Some("America/New_York"),
            &[],
        )
        .unwrap();
        assert_eq!(
            t(&ny, "2024-07-01 12:00:00"),
            EventTime::new(utc(2024, 7, 1, 16, 0, 0), 0)
        );
        assert_eq!(
            t(&ny, "2024-01-01 12:00:00"),
            EventTime::new(utc(2024, 1, 1, 17, 0, 0), 0)
        );
        assert!(TimeParser::new(
            TimeType::String,
            Some("%Y"),
            true,
            false,
            Some("Mars/Base"),
            &[]
        )
        .is_err());
    }

    #[test]
    fn bad_time_is_an_error_case_130() {
        let tp = p("%Y-%m-%d");
        assert_eq!(
            t(&tp, "2024-01-02"),
            EventTime::new(utc(2024, 1, 2, 0, 0, 0), 0)
        );
        assert!(tp.parse(&Value::str("garbage")).is_err());
        assert!(tp.parse(&Value::Int(5)).is_err());
    }

    #[test]
    fn iso8601_case_127() {
        let tp = p("%iso8601");
        assert_eq!(
            t(&tp, "2024-01-02T03:04:05Z"),
            EventTime::new(utc(2024, 1, 2, 3, 4, 5), 0)
        );
        assert_eq!(
            t(&tp, "2024-01-02T03:04:05.123456789+02:00"),
            EventTime::new(utc(2024, 1, 2, 1, 4, 5), 123_456_789)
        );
        assert_eq!(
            t(&tp, "2024-01-02T03:04:05.5-05:30"),
            EventTime::new(utc(2024, 1, 2, 8, 34, 5), 500_000_000)
        );
        assert!(tp.parse(&Value::str("2024-01-02 03:04:05")).is_err());
    }

    #[test]
    fn numeric_types_cases_126_171() {
        let f = TimeParser::new(TimeType::Float, None, true, false, None, &[]).unwrap();
        assert_eq!(
            f.parse(&Value::Float(1700000000.123456)).unwrap(),
            EventTime::new(1700000000, 123_456_000)
        );
        assert_eq!(
            f.parse(&Value::Int(1700000001)).unwrap(),
            EventTime::new(1700000001, 0)
        );
        assert_eq!(
            f.parse(&Value::str("2024-02-21T10:31:27.810781647Z"))
                .unwrap(),
            EventTime::new(2024, 810_781_647)
        );
        assert_eq!(
            f.parse(&Value::str("2024-02-21T10:31:29Z")).unwrap(),
            EventTime::new(2024, 0)
        );
        assert!(f.parse(&Value::Nil).is_err());
        let u = TimeParser::new(TimeType::Unixtime, None, true, false, None, &[]).unwrap();
        assert_eq!(
            u.parse(&Value::str("1700000000")).unwrap(),
            EventTime::new(1700000000, 0)
        );
        assert_eq!(u.parse(&Value::Float(12.9)).unwrap(), EventTime::new(12, 0));
    }

    #[test]
    fn mixed_case_155() {
        let fb = vec!["unixtime".to_string(), "%iso8601".to_string()];
        let m = TimeParser::new(TimeType::Mixed, None, true, false, None, &fb).unwrap();
        assert_eq!(
            m.parse(&Value::str("1700000000")).unwrap(),
            EventTime::new(1700000000, 0)
        );
        assert_eq!(
            m.parse(&Value::str("2024-01-02T03:04:05Z")).unwrap(),
            EventTime::new(utc(2024, 1, 2, 3, 4, 5), 0)
        );
        assert!(m.parse(&Value::str("nope")).is_err());
        assert!(TimeParser::new(TimeType::Mixed, None, true, false, None, &[]).is_err());
    }

    #[test]
    fn no_year_uses_current_year_case_156() {
        let tp = TimeParser::new(
            TimeType::String,
            Some("%b %d %H:%M:%S"),
            false,
            true,
            None,
            &[],
        )
        .unwrap();
        let y = chrono::Utc::now().year() as i64;
        assert_eq!(
            t(&tp, "Mar 14 15:09:26"),
            EventTime::new(utc(y, 3, 14, 15, 9, 26), 0)
        );
        // syslog squeezes "Feb  5" to "Feb 5"; both forms parse.
        assert_eq!(
            t(&tp, "Feb  5 17:32:18"),
            EventTime::new(utc(y, 2, 5, 17, 32, 18), 0)
        );
    }

    #[test]
    fn apache_format_cases_143_145() {
        let tp = p("%d/%b/%Y:%H:%M:%S %z");
        assert_eq!(
            t(&tp, "10/Oct/2023:13:55:36 -0700"),
            EventTime::new(utc(2023, 10, 10, 20, 55, 36), 0)
        );
        assert_eq!(
            t(&tp, "10/Oct/2023:13:55:37 +0200"),
            EventTime::new(utc(2023, 10, 10, 11, 55, 37), 0)
        );
    }

    #[test]
    fn more_directives() {
        let tp = p("%s");
        assert_eq!(t(&tp, "1700000000"), EventTime::new(1700000000, 0));
        let tp = p("%F %T.%3N");
        assert_eq!(
            t(&tp, "2024-01-02 03:04:05.123"),
            EventTime::new(utc(2024, 1, 2, 3, 4, 5), 123_000_000)
        );
        let tp = p("%y%m%d %I:%M %p");
        assert_eq!(
            t(&tp, "240102 03:04 PM"),
            EventTime::new(utc(2024, 1, 2, 15, 4, 0), 0)
        );
        let tp = p("%Y %j");
        assert_eq!(
            t(&tp, "2024 60"),
            EventTime::new(utc(2024, 2, 29, 0, 0, 0), 0)
        );
        let tp = p("%a %B %e %Y");
        assert_eq!(
            t(&tp, "Tue January  2 2024"),
            EventTime::new(utc(2024, 1, 2, 0, 0, 0), 0)
        );
        let tp = p("%Y-%m-%d %H:%M:%S %Z");
        assert_eq!(
            t(&tp, "2024-01-02 09:00:00 JST"),
            EventTime::new(utc(2024, 1, 2, 0, 0, 0), 0)
        );
        assert!(Plan::compile("%Y %Q").is_ok());
        assert!(Plan::compile("%Y %E").is_err());
    }

    #[test]
    fn free_form_like_time_parse() {
        let tp = TimeParser::new(TimeType::String, None, true, false, None, &[]).unwrap();
        assert_eq!(
            t(&tp, "Wed Oct 11 14:32:52 2023"),
            EventTime::new(utc(2023, 10, 11, 14, 32, 52), 0)
        );
        assert_eq!(
            t(&tp, "2024-02-21T10:31:27.810781647Z"),
            EventTime::new(utc(2024, 2, 21, 10, 31, 27), 810_781_647)
        );
        assert_eq!(
            t(&tp, "2013-09-18 12:00:00 +0900"),
            EventTime::new(utc(2013, 9, 18, 3, 0, 0), 0)
        );
        assert_eq!(
            t(&tp, "10/Oct/2023:13:55:36 -0700"),
            EventTime::new(utc(2023, 10, 10, 20, 55, 36), 0)
        );
        assert_eq!(
            t(&tp, "2024/01/02 03:04:05"),
            EventTime::new(utc(2024, 1, 2, 3, 4, 5), 0)
        );
        assert_eq!(
            t(&tp, "Tue, 02 Jan 2024 03:04:05 GMT"),
            EventTime::new(utc(2024, 1, 2, 3, 4, 5), 0)
        );
        assert_eq!(
            t(&tp, "2024-01-02"),
            EventTime::new(utc(2024, 1, 2, 0, 0, 0), 0)
        );
        assert_eq!(
            t(&tp, "01/02/2024 10:00 pm"),
            EventTime::new(utc(2024, 1, 2, 22, 0, 0), 0)
        );
        assert!(tp.parse(&Value::str("garbage")).is_err());
        assert!(tp.parse(&Value::str("")).is_err());
    }

    #[test]
    fn ruby_float_strings() {
        assert_eq!(ruby_float_to_s(1700000000.123456), "1700000000.123456");
        assert_eq!(ruby_float_to_s(5.0), "5.0");
        assert_eq!(ruby_float_to_s(1e20), "1.0e+20");
        assert_eq!(ruby_float_to_s(1.5e-7), "1.5e-07");
    }

    #[test]
    fn civil_roundtrip() {
        for d in [-800_000i64, -1, 0, 1, 19_000, 60_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
