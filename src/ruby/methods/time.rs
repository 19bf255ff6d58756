//! Time: an instant with the zone it shows itself in. Formatting and parsing reuse the
//! crate's Ruby-compatible strftime (`timefmt`) and strptime (`timeparse`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::event::{EventTime, Value};
use crate::timefmt::{strftime, TimeZoneSpec};
use crate::timeparse::{TimeParser, TimeType};

use super::super::compile::Block;
use super::super::interp::{raise, Ctl, Interp, R};
use super::super::value::{Time, V};
use super::{arg, check_args, int_arg, string_arg};

/// `Time#strftime` with the compiled format cached per thread (formats are config literals).
fn strftime_cached(t: &Time, f: &str) -> String {
    let fmt = FORMATS.with(|m| {
        if let Some(x) = m.borrow().get(f) {
            return x.clone();
        }
        let x = Rc::new(crate::timefmt::Strftime::new(f));
        let mut m = m.borrow_mut();
        if m.len() > 64 {
            m.clear();
        }
        m.insert(f.to_string(), x.clone());
        x
    });
    let mut out = Vec::with_capacity(f.len() + 16);
    fmt.format_into(t.t, &t.zone, &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

pub fn to_s(t: &Time) -> String {
    crate::timefmt::ruby_time_to_s(t.t, &t.zone)
}

pub fn inspect(t: &Time) -> String {
    let base = strftime(t.t, "%Y-%m-%d %H:%M:%S", &t.zone);
    let frac = if t.t.nsec == 0 {
        String::new()
    } else {
        let s = format!("{:09}", t.t.nsec);
        format!(".{}", s.trim_end_matches('0'))
    };
    let zone = if t.zone == TimeZoneSpec::Utc {
        " UTC".to_string()
    } else {
        strftime(t.t, " %z", &t.zone)
    };
    format!("{base}{frac}{zone}")
}

/// Exact float seconds to a time (Ruby keeps the float's exact value, truncated to ns).
pub fn from_f64(f: f64) -> EventTime {
    let sec = f.floor();
    let frac = f - sec;
    let nsec = (frac * 1e9).floor().clamp(0.0, 999_999_999.0) as u32;
    EventTime::new(sec as i64, nsec)
}

thread_local! {
    static FORMATS: RefCell<HashMap<String, Rc<crate::timefmt::Strftime>>> = RefCell::new(HashMap::new());
    static PARSERS: RefCell<HashMap<String, Rc<TimeParser>>> = RefCell::new(HashMap::new());
}

fn parser<'a>(format: Option<&str>) -> Result<Rc<TimeParser>, Ctl<'a>> {
    let key = format.unwrap_or("\0free").to_string();
    if let Some(p) = PARSERS.with(|m| m.borrow().get(&key).cloned()) {
        return Ok(p);
    }
    match TimeParser::new(TimeType::String, format, true, false, None, &[]) {
        Ok(p) => {
            let p = Rc::new(p);
            PARSERS.with(|m| {
                let mut m = m.borrow_mut();
                if m.len() > 64 {
                    m.clear();
                }
                m.insert(key, p.clone());
            });
            Ok(p)
        }
        Err(e) => raise("ArgumentError", e),
    }
}

/// The zone a parsed string names: `Z` is UTC, `+09:00` a fixed offset, else local time.
fn zone_of(s: &str) -> TimeZoneSpec {
    let t = s.trim_end();
    if t.ends_with('Z') || t.ends_with(" UTC") || t.ends_with(" GMT") {
        return TimeZoneSpec::Utc;
    }
    let b = t.as_bytes();
    let n = b.len();
    let digits = |x: &[u8]| x.iter().all(u8::is_ascii_digit);
    let parse = |sign: u8, h: &[u8], m: &[u8]| -> Option<TimeZoneSpec> {
        let h: i32 = std::str::from_utf8(h).ok()?.parse().ok()?;
        let m: i32 = std::str::from_utf8(m).ok()?.parse().ok()?;
        let o = h * 3600 + m * 60;
        Some(TimeZoneSpec::Fixed(if sign == b'-' { -o } else { o }))
    };
    if n >= 6
        && (b[n - 6] == b'+' || b[n - 6] == b'-')
        && b[n - 3] == b':'
        && digits(&b[n - 5..n - 3])
        && digits(&b[n - 2..])
    {
        if let Some(z) = parse(b[n - 6], &b[n - 5..n - 3], &b[n - 2..]) {
            return z;
        }
    }
    if n >= 5 && (b[n - 5] == b'+' || b[n - 5] == b'-') && digits(&b[n - 4..]) {
        if let Some(z) = parse(b[n - 5], &b[n - 4..n - 2], &b[n - 2..]) {
            return z;
        }
    }
    TimeZoneSpec::Local
}

fn parse_with<'a>(s: &str, format: Option<&str>, what: &str) -> R<'a> {
    let p = parser(format)?;
    match p.parse(&Value::Str(s.as_bytes().to_vec())) {
        Ok(t) => Ok(V::Time(Time {
            t,
            zone: zone_of(s),
        })),
        Err(_) => raise(
            "ArgumentError",
            match what {
                "strptime" => format!(
                    "invalid date or strptime format - `{s}' `{}'",
                    format.unwrap_or("")
                ),
                "iso8601" => format!(
                    "invalid xmlschema format: {}",
                    String::from_utf8_lossy(&super::super::value::inspect(&V::str(s.to_string())))
                ),
                _ => format!(
                    "no time information in {}",
                    String::from_utf8_lossy(&super::super::value::inspect(&V::str(s.to_string())))
                ),
            },
        ),
    }
}

fn civil<'a>(args: &[V<'a>], zone: TimeZoneSpec) -> R<'a> {
    check_args(args, 1, 7)?;
    let get = |i: usize, d: i64| -> Result<i64, Ctl<'a>> {
        match args.get(i) {
            None | Some(V::Nil) => Ok(d),
            Some(V::Str(s)) => Ok(super::super::value::str_to_i(&s.borrow())),
            Some(v) => int_arg(v),
        }
    };
    let (y, mo, d, h, mi) = (
        get(0, 1970)?,
        get(1, 1)?,
        get(2, 1)?,
        get(3, 0)?,
        get(4, 0)?,
    );
    let (sec, nsec) = match args.get(5) {
        Some(V::Float(f)) => (f.trunc() as i64, ((f - f.trunc()) * 1e9) as u32),
        _ => (get(5, 0)?, 0),
    };
    if !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || !(0..=24).contains(&h)
        || !(0..=59).contains(&mi)
        || !(0..=60).contains(&sec)
    {
        return raise("ArgumentError", "argument out of range");
    }
    let days = crate::timefmt::days_from_civil(y, mo as u32, d as u32);
    let local = days * 86400 + h * 3600 + mi * 60 + sec;
    let utc = zone.utc_from_local(local);
    Ok(V::Time(Time {
        t: EventTime::new(utc, nsec),
        zone,
    }))
}

pub fn class_call<'a>(name: &str, args: &[V<'a>]) -> Option<R<'a>> {
    let r = match name {
        "now" => Ok(V::Time(Time {
            t: EventTime::now(),
            zone: TimeZoneSpec::Local,
        })),
        "at" => (|| {
            check_args(args, 1, 3)?;
            let t = match &args[0] {
                V::Int(i) => EventTime::new(*i, 0),
                V::Float(f) if f.is_finite() => from_f64(*f),
                V::Time(t) => t.t,
                other => {
                    return raise(
                        "TypeError",
                        format!("can't convert {} into an exact number", other.class_name()),
                    )
                }
            };
            let t = match (args.get(1), args.get(2)) {
                (Some(sub), unit) => {
                    let mult = match unit
                        .map(|u| {
                            String::from_utf8_lossy(&super::super::value::to_s(u)).into_owned()
                        })
                        .as_deref()
                    {
                        None | Some("microsecond") | Some("usec") => 1_000.0,
                        Some("millisecond") => 1_000_000.0,
                        Some("nanosecond") | Some("nsec") => 1.0,
                        Some(other) => {
                            return raise("ArgumentError", format!("unexpected unit: {other}"))
                        }
                    };
                    let extra = match sub {
                        V::Int(i) => *i as f64 * mult,
                        V::Float(f) => f * mult,
                        _ => 0.0,
                    };
                    let total = t.nsec as f64 + extra;
                    let carry = (total / 1e9).floor();
                    EventTime::new(t.sec + carry as i64, (total - carry * 1e9) as u32)
                }
                _ => t,
            };
            Ok(V::Time(Time {
                t,
                zone: TimeZoneSpec::Local,
            }))
        })(),
        "strptime" => (|| {
            check_args(args, 2, 2)?;
            let s = string_arg(&args[0])?;
            let f = string_arg(&args[1])?;
            parse_with(&s, Some(&f), "strptime")
        })(),
        "parse" => (|| {
            check_args(args, 1, 2)?;
            let s = string_arg(&args[0])?;
            parse_with(&s, None, "parse")
        })(),
        "iso8601" | "xmlschema" => (|| {
            check_args(args, 1, 1)?;
            let s = string_arg(&args[0])?;
            parse_with(&s, Some("%iso8601"), "iso8601")
        })(),
        "utc" | "gm" => civil(args, TimeZoneSpec::Utc),
        "local" | "mktime" | "new" => {
            if args.is_empty() {
                Ok(V::Time(Time {
                    t: EventTime::now(),
                    zone: TimeZoneSpec::Local,
                }))
            } else {
                civil(args, TimeZoneSpec::Local)
            }
        }
        _ => return None,
    };
    Some(r)
}

fn zone_arg<'a>(v: &V<'a>) -> Result<TimeZoneSpec, Ctl<'a>> {
    match v {
        V::Int(o) => Ok(TimeZoneSpec::Fixed(*o as i32)),
        V::Str(_) => {
            let s = string_arg(v)?;
            if s == "UTC" || s == "Z" {
                return Ok(TimeZoneSpec::Utc);
            }
            match crate::timefmt::parse_timezone(&s) {
                Some(TimeZoneSpec::Named(_)) | None => raise(
                    "ArgumentError",
                    format!("\"+HH:MM\", \"-HH:MM\", \"UTC\" or \"A\"..\"I\",\"K\"..\"Z\" expected for utc_offset: {s}"),
                ),
                Some(z) => Ok(z),
            }
        }
        other => raise(
            "TypeError",
            format!("can't convert {} into an exact number", other.class_name()),
        ),
    }
}

fn part(t: &Time, f: &str) -> i64 {
    strftime(t.t, f, &t.zone).trim().parse().unwrap_or(0)
}

pub fn iso8601(t: &Time, digits: usize) -> String {
    let mut s = strftime(t.t, "%Y-%m-%dT%H:%M:%S", &t.zone);
    if digits > 0 {
        let ns = format!("{:09}", t.t.nsec);
        s.push('.');
        for i in 0..digits {
            s.push(ns.as_bytes().get(i).map_or('0', |b| *b as char));
        }
    }
    if t.zone == TimeZoneSpec::Utc {
        s.push('Z');
    } else {
        s.push_str(&strftime(t.t, "%:z", &t.zone));
    }
    s
}

pub fn call<'a>(
    _it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    _blk: Option<&Block>,
) -> Option<R<'a>> {
    let V::Time(t) = recv else { return None };
    let t = *t;
    let ok = |v: V<'a>| Some(Ok(v));
    match name {
        "utc" | "gmtime" | "getutc" | "getgm" => ok(V::Time(Time {
            t: t.t,
            zone: TimeZoneSpec::Utc,
        })),
        "localtime" | "getlocal" => match args.first() {
            Some(z) => Some(zone_arg(z).map(|zone| V::Time(Time { t: t.t, zone }))),
            None => ok(V::Time(Time {
                t: t.t,
                zone: TimeZoneSpec::Local,
            })),
        },
        "strftime" => Some((|| {
            check_args(args, 1, 1)?;
            let f = string_arg(&args[0])?;
            Ok(V::str(strftime_cached(&t, &f)))
        })()),
        "iso8601" | "xmlschema" | "rfc3339" => Some((|| {
            let d = match args.first() {
                Some(d) => int_arg(d)?.clamp(0, 9) as usize,
                None => 0,
            };
            Ok(V::str(iso8601(&t, d)))
        })()),
        "httpdate" => ok(V::str(strftime(
            t.t,
            "%a, %d %b %Y %H:%M:%S GMT",
            &TimeZoneSpec::Utc,
        ))),
        "rfc2822" => ok(V::str(strftime(t.t, "%a, %d %b %Y %H:%M:%S %z", &t.zone))),
        "to_i" | "tv_sec" => ok(V::Int(t.t.sec)),
        "to_f" => ok(V::Float(t.t.sec as f64 + t.t.nsec as f64 / 1e9)),
        "usec" | "tv_usec" => ok(V::Int((t.t.nsec / 1000) as i64)),
        "nsec" | "tv_nsec" => ok(V::Int(t.t.nsec as i64)),
        "subsec" => ok(V::Float(t.t.nsec as f64 / 1e9)),
        "year" => ok(V::Int(part(&t, "%Y"))),
        "month" | "mon" => ok(V::Int(part(&t, "%m"))),
        "day" | "mday" => ok(V::Int(part(&t, "%d"))),
        "hour" => ok(V::Int(part(&t, "%H"))),
        "min" => ok(V::Int(part(&t, "%M"))),
        "sec" => ok(V::Int(part(&t, "%S"))),
        "wday" => ok(V::Int(part(&t, "%w"))),
        "yday" => ok(V::Int(part(&t, "%j"))),
        "sunday?" => ok(V::Bool(part(&t, "%w") == 0)),
        "monday?" => ok(V::Bool(part(&t, "%w") == 1)),
        "saturday?" => ok(V::Bool(part(&t, "%w") == 6)),
        "utc?" => ok(V::Bool(t.zone == TimeZoneSpec::Utc)),
        "utc_offset" | "gmt_offset" | "gmtoff" => ok(V::Int(t.zone.offset_at(t.t.sec) as i64)),
        "zone" => ok(match t.zone {
            TimeZoneSpec::Utc => V::str("UTC"),
            TimeZoneSpec::Local => V::str(strftime(t.t, "%Z", &t.zone)),
            _ => V::Nil,
        }),
        "to_s" => ok(V::str(to_s(&t))),
        "inspect" => ok(V::str(inspect(&t))),
        "round" => ok(V::Time(Time {
            t: EventTime::new(t.t.sec + if t.t.nsec >= 500_000_000 { 1 } else { 0 }, 0),
            zone: t.zone,
        })),
        "+" | "-" => Some((|| {
            check_args(args, 1, 1)?;
            let ns_total = |sec: i64, nsec: u32| sec as i128 * 1_000_000_000 + nsec as i128;
            let me = ns_total(t.t.sec, t.t.nsec);
            let delta: i128 = match &args[0] {
                V::Int(i) => *i as i128 * 1_000_000_000,
                V::Float(f) => (f * 1e9).round() as i128,
                V::Time(o) if name == "-" => {
                    let d = me - ns_total(o.t.sec, o.t.nsec);
                    return Ok(V::Float(d as f64 / 1e9));
                }
                other => {
                    return raise(
                        "TypeError",
                        format!("can't convert {} into an exact number", other.class_name()),
                    )
                }
            };
            let r = if name == "+" { me + delta } else { me - delta };
            let sec = r.div_euclid(1_000_000_000) as i64;
            let nsec = r.rem_euclid(1_000_000_000) as u32;
            Ok(V::Time(Time {
                t: EventTime::new(sec, nsec),
                zone: t.zone,
            }))
        })()),
        "<=>" => ok(match &arg(args, 0) {
            V::Time(o) => V::Int(t.t.cmp(&o.t) as i64),
            _ => V::Nil,
        }),
        "==" | "eql?" => ok(V::Bool(matches!(&arg(args, 0), V::Time(o) if o.t == t.t))),
        "<" | ">" | "<=" | ">=" => Some((|| {
            let o = super::compare_or_raise(recv, &arg(args, 0))?;
            Ok(V::Bool(match name {
                "<" => o.is_lt(),
                ">" => o.is_gt(),
                "<=" => o.is_le(),
                _ => o.is_ge(),
            }))
        })()),
        "hash" => ok(V::Int(t.t.sec)),
        _ => None,
    }
}
