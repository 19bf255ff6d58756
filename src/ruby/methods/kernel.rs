//! Kernel functions (Integer(), format, raise, require, loop, ...), the classes' own methods
//! (ENV, File, Dir, Socket, IPAddr, JSON, Regexp, Math, exception classes) and the methods of
//! the smaller value kinds (nil, booleans, Symbol, Regexp, MatchData, IPAddr, exceptions).

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::super::compile::Block;
use super::super::interp::{no_method, raise, Ctl, Interp, NO_AT, R};
use super::super::regexp::{Re, EXTENDED, IGNORECASE, MULTILINE};
use super::super::value::{
    class_const_name, equal, inspect, list, pairs, str_to_f, to_s, write_float, Class, Exc, Hash, V,
};
use super::{arg, check_args, int_arg, string_arg};

fn s<'a>(t: impl Into<Vec<u8>>) -> V<'a> {
    V::str(t.into())
}

/// `Integer(x)`: strict parsing (underscores between digits, 0x/0b/0o prefixes).
fn integer<'a>(it: &mut Interp<'a, '_>, v: &V<'a>, base: Option<i64>) -> R<'a> {
    match v {
        V::Int(_) | V::Big(_) => Ok(v.clone()),
        V::Float(f) => {
            if !f.is_finite() {
                return raise(
                    "FloatDomainError",
                    String::from_utf8_lossy(&to_s(v)).into_owned(),
                );
            }
            super::numeric::float_to_int(f.trunc())
        }
        V::Str(_) => {
            let raw = string_arg(v)?;
            let bad = || {
                raise(
                    "ArgumentError",
                    format!(
                        "invalid value for Integer(): {}",
                        String::from_utf8_lossy(&inspect(v))
                    ),
                )
            };
            let t = raw.trim_matches(|c: char| c.is_ascii_whitespace());
            let (neg, body) = match t.as_bytes().first() {
                Some(b'-') => (true, &t[1..]),
                Some(b'+') => (false, &t[1..]),
                _ => (false, t),
            };
            let lower = body.to_ascii_lowercase();
            let (radix, digits) = match base {
                Some(b) => {
                    let stripped = match b {
                        16 => lower.strip_prefix("0x"),
                        2 => lower.strip_prefix("0b"),
                        8 => lower.strip_prefix("0o").or_else(|| lower.strip_prefix('0')),
                        _ => None,
                    };
                    (b as u32, stripped.unwrap_or(&lower).to_string())
                }
                None => {
                    if let Some(x) = lower.strip_prefix("0x") {
                        (16, x.to_string())
                    } else if let Some(x) = lower.strip_prefix("0b") {
                        (2, x.to_string())
                    } else if let Some(x) = lower.strip_prefix("0o") {
                        (8, x.to_string())
                    } else if lower.len() > 1 && lower.starts_with('0') {
                        (8, lower[1..].to_string())
                    } else {
                        (10, lower.clone())
                    }
                }
            };
            if digits.is_empty()
                || digits.starts_with('_')
                || digits.ends_with('_')
                || digits.contains("__")
            {
                return bad();
            }
            let clean: String = digits.chars().filter(|c| *c != '_').collect();
            match i64::from_str_radix(&clean, radix) {
                Ok(n) => Ok(V::Int(if neg { -n } else { n })),
                Err(_) if clean.chars().all(|c| c.is_digit(radix)) => {
                    super::bignum::charge_bits(
                        it,
                        (clean.len() as f64 * (radix as f64).log2()) as u64,
                    )?;
                    match num_bigint::BigInt::parse_bytes(clean.as_bytes(), radix) {
                        Some(b) => Ok(super::super::value::int_v(if neg { -b } else { b })),
                        None => bad(),
                    }
                }
                Err(_) => bad(),
            }
        }
        V::Nil => raise("TypeError", "can't convert nil into Integer"),
        other => raise(
            "TypeError",
            format!("can't convert {} into Integer", other.class_name()),
        ),
    }
}

fn float<'a>(v: &V<'a>) -> R<'a> {
    match v {
        V::Int(_) | V::Big(_) => Ok(V::Float(super::super::value::int_to_f(v))),
        V::Float(f) => Ok(V::Float(*f)),
        V::Str(_) => {
            let raw = string_arg(v)?;
            let t = raw.trim();
            let clean: String = t.chars().filter(|c| *c != '_').collect();
            let ok = !t.is_empty()
                && !t.ends_with('.')
                && !t.starts_with('.')
                && !t.contains("__")
                && clean.parse::<f64>().is_ok()
                && !clean.eq_ignore_ascii_case("inf")
                && !clean.eq_ignore_ascii_case("nan")
                && !clean.to_ascii_lowercase().contains("infinity");
            if ok {
                Ok(V::Float(str_to_f(clean.as_bytes())))
            } else if let Some(h) = t.strip_prefix("0x") {
                match i64::from_str_radix(h, 16) {
                    Ok(n) => Ok(V::Float(n as f64)),
                    Err(_) => raise(
                        "ArgumentError",
                        format!(
                            "invalid value for Float(): {}",
                            String::from_utf8_lossy(&inspect(v))
                        ),
                    ),
                }
            } else {
                raise(
                    "ArgumentError",
                    format!(
                        "invalid value for Float(): {}",
                        String::from_utf8_lossy(&inspect(v))
                    ),
                )
            }
        }
        V::Nil => raise("TypeError", "can't convert nil into Float"),
        other => raise(
            "TypeError",
            format!("can't convert {} into Float", other.class_name()),
        ),
    }
}

/// `format` / `String#%`.
pub fn format<'a>(it: &mut Interp<'a, '_>, fmt: &str, args: &[V<'a>]) -> Result<String, Ctl<'a>> {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "-+ 0#".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut named: Option<V<'a>> = None;
        if chars.peek() == Some(&'<') || chars.peek() == Some(&'{') {
            let open = chars.next().unwrap_or('<');
            let close = if open == '<' { '>' } else { '}' };
            let name: String = chars.by_ref().take_while(|c| *c != close).collect();
            let h = arg(args, 0);
            let key = V::sym(&name);
            let v = super::hash::lookup(&h, &key);
            if matches!(v, V::Nil) && !matches!(h, V::Hash(ref m) if m.borrow().get(&key).is_some())
            {
                return raise("KeyError", format!("key<{name}> not found"));
            }
            if open == '{' {
                out.push_str(&String::from_utf8_lossy(&to_s(&v)));
                continue;
            }
            named = Some(v);
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() {
                width.push(d);
                chars.next();
            } else if d == '*' {
                chars.next();
                width = int_arg(&arg(args, next))?.to_string();
                next += 1;
            } else {
                break;
            }
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() {
                    p.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(conv) = chars.next() else {
            return raise(
                "ArgumentError",
                "incomplete format specifier; use %% (double %) instead",
            );
        };
        if conv == '%' {
            out.push('%');
            continue;
        }
        let mut take = || -> Result<V<'a>, Ctl<'a>> {
            if let Some(v) = named.take() {
                return Ok(v);
            }
            let v = args.get(next).cloned();
            next += 1;
            match v {
                Some(v) => Ok(v),
                None => raise("ArgumentError", "too few arguments"),
            }
        };
        let left = flags.contains('-');
        let zero = flags.contains('0') && !left;
        let plus = flags.contains('+');
        let space = flags.contains(' ');
        let w: usize = width.parse().unwrap_or(0);
        it.charge(w)?;
        let body = match conv {
            's' | 'p' => {
                let v = take()?;
                let mut t =
                    String::from_utf8_lossy(&if conv == 's' { to_s(&v) } else { inspect(&v) })
                        .into_owned();
                if let Some(p) = prec {
                    t = t.chars().take(p).collect();
                }
                t
            }
            'd' | 'i' | 'u' => {
                let v = take()?;
                let n = integer(it, &v, None)?;
                let (neg, mut t) = super::bignum::digits(&n, 10).unwrap_or_default();
                if let Some(p) = prec {
                    while t.len() < p {
                        t.insert(0, '0');
                    }
                }
                sign(neg, plus, space) + &t
            }
            'f' | 'e' | 'E' | 'g' | 'G' => {
                let v = take()?;
                let f = match float(&v)? {
                    V::Float(f) => f,
                    _ => 0.0,
                };
                let p = prec.unwrap_or(6);
                let t = if !f.is_finite() {
                    if f.is_nan() {
                        "NaN".to_string()
                    } else {
                        "Inf".to_string()
                    }
                } else {
                    match conv {
                        'f' => format!("{:.*}", p, f.abs()),
                        'e' | 'E' => {
                            let t = exp_format(f.abs(), p);
                            if conv == 'E' {
                                t.to_uppercase()
                            } else {
                                t
                            }
                        }
                        _ => {
                            let p = if p == 0 { 1 } else { p };
                            let a = f.abs();
                            let e = if a == 0.0 {
                                0
                            } else {
                                a.log10().floor() as i32
                            };
                            let t = if e < -4 || e >= p as i32 {
                                let t = exp_format(a, p - 1);
                                strip_g(&t, flags.contains('#'))
                            } else {
                                let t = format!("{:.*}", (p as i32 - 1 - e).max(0) as usize, a);
                                strip_g(&t, flags.contains('#'))
                            };
                            if conv == 'G' {
                                t.to_uppercase()
                            } else {
                                t
                            }
                        }
                    }
                };
                sign(
                    f.is_sign_negative() && f != 0.0 || (f == 0.0 && f.is_sign_negative()),
                    plus,
                    space,
                ) + &t
            }
            'x' | 'X' | 'o' | 'b' | 'B' => {
                let v = take()?;
                let n = integer(it, &v, None)?;
                let radix = match conv {
                    'x' | 'X' => 16,
                    'o' => 8,
                    _ => 2,
                };
                let (neg, mut t) = super::bignum::digits(&n, radix).unwrap_or_default();
                if conv == 'X' {
                    t = t.to_uppercase();
                }
                if let Some(p) = prec {
                    while t.len() < p {
                        t.insert(0, '0');
                    }
                }
                if flags.contains('#') {
                    t = match conv {
                        'x' => format!("0x{t}"),
                        'X' => format!("0X{t}"),
                        'o' => format!("0{t}"),
                        'b' => format!("0b{t}"),
                        _ => format!("0B{t}"),
                    };
                }
                if neg {
                    format!("-{t}")
                } else {
                    sign(false, plus, space) + &t
                }
            }
            'c' => {
                let v = take()?;
                match v {
                    V::Int(i) => char::from_u32(i as u32)
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                    other => String::from_utf8_lossy(&to_s(&other))
                        .chars()
                        .take(1)
                        .collect(),
                }
            }
            other => {
                return raise(
                    "ArgumentError",
                    format!("malformed format string - %{other}"),
                )
            }
        };
        let n = body.chars().count();
        if n >= w {
            out.push_str(&body);
        } else if left {
            out.push_str(&body);
            out.push_str(&" ".repeat(w - n));
        } else if zero && !matches!(conv, 's' | 'p' | 'c') {
            let (sgn, digits) = match body.chars().next() {
                Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
                _ => (String::new(), body.clone()),
            };
            out.push_str(&sgn);
            out.push_str(&"0".repeat(w - n));
            out.push_str(&digits);
        } else {
            out.push_str(&" ".repeat(w - n));
            out.push_str(&body);
        }
    }
    Ok(out)
}

fn sign(neg: bool, plus: bool, space: bool) -> String {
    if neg {
        "-".into()
    } else if plus {
        "+".into()
    } else if space {
        " ".into()
    } else {
        String::new()
    }
}

fn exp_format(f: f64, p: usize) -> String {
    let t = format!("{:.*e}", p, f);
    // Rust writes 1.5e3; C writes 1.5e+03.
    match t.split_once('e') {
        Some((m, e)) => {
            let (sg, d) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sg}{:0>2}", d)
        }
        None => t,
    }
}

fn strip_g(t: &str, keep: bool) -> String {
    if keep {
        return t.to_string();
    }
    match t.split_once('e') {
        Some((m, e)) => {
            let m = if m.contains('.') {
                m.trim_end_matches('0').trim_end_matches('.')
            } else {
                m
            };
            format!("{m}e{e}")
        }
        None => {
            if t.contains('.') {
                t.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                t.to_string()
            }
        }
    }
}

fn exception<'a>(class: &str, msg: Option<String>) -> V<'a> {
    V::Exception(Rc::new(Exc {
        class: class.to_string(),
        msg: msg.unwrap_or_else(|| class.to_string()),
    }))
}

/// Functions called without a receiver.
pub fn call_fn<'a>(
    it: &mut Interp<'a, '_>,
    name: &str,
    args: Vec<V<'a>>,
    blk: Option<&Block>,
) -> R<'a> {
    match name {
        "Integer" => {
            check_args(&args, 1, 3)?;
            let base = match args.get(1) {
                Some(V::Int(b)) => Some(*b),
                _ => None,
            };
            let exc = match args.last() {
                Some(V::Hash(h)) => {
                    !matches!(h.borrow().get(&V::sym("exception")), Some(V::Bool(false)))
                }
                _ => true,
            };
            match integer(it, &args[0], base) {
                Err(Ctl::Raise(..)) if !exc => Ok(V::Nil),
                r => r,
            }
        }
        "Float" => {
            check_args(&args, 1, 2)?;
            let exc = match args.get(1) {
                Some(V::Hash(h)) => {
                    !matches!(h.borrow().get(&V::sym("exception")), Some(V::Bool(false)))
                }
                _ => true,
            };
            match float(&args[0]) {
                Err(Ctl::Raise(..)) if !exc => Ok(V::Nil),
                r => r,
            }
        }
        "String" => {
            check_args(&args, 1, 1)?;
            Ok(s(to_s(&args[0])))
        }
        "Array" => {
            check_args(&args, 1, 1)?;
            Ok(match &args[0] {
                V::Nil => V::array(Vec::new()),
                a @ (V::Array(_) | V::RArr(_)) => a.clone(),
                h @ (V::Hash(_) | V::Rec(_)) => V::array(
                    pairs(h)
                        .into_iter()
                        .map(|(k, v)| V::array(vec![k, v]))
                        .collect(),
                ),
                other => V::array(vec![other.clone()]),
            })
        }
        "format" | "sprintf" => {
            check_args(&args, 1, usize::MAX)?;
            let f = string_arg(&args[0])?;
            Ok(s(format(it, &f, &args[1..])?))
        }
        "raise" | "fail" => {
            let (class, msg) = match (args.first(), args.get(1)) {
                (None, _) => (
                    "RuntimeError".to_string(),
                    "unhandled exception".to_string(),
                ),
                (Some(V::Str(m)), None) => (
                    "RuntimeError".to_string(),
                    String::from_utf8_lossy(&m.borrow()).into_owned(),
                ),
                (Some(V::Class(Class::Exception(c))), m) => (
                    c.to_string(),
                    m.map_or(c.to_string(), |m| {
                        String::from_utf8_lossy(&to_s(m)).into_owned()
                    }),
                ),
                (Some(V::Exception(e)), _) => (e.class.clone(), e.msg.clone()),
                (Some(other), _) => {
                    return raise(
                        "TypeError",
                        format!(
                            "exception class/object expected, got {}",
                            other.class_name()
                        ),
                    )
                }
            };
            Err(Ctl::Raise(Rc::new(Exc { class, msg }), NO_AT))
        }
        "require" | "require_relative" => Ok(V::Bool(true)),
        "loop" => {
            let Some(b) = blk else {
                return Ok(super::enumerator::new(V::Nil, "loop", Vec::new()));
            };
            loop {
                match it.yield_blk(b, Vec::new()) {
                    Ok(_) => {}
                    Err(Ctl::Raise(e, _)) if e.class == "StopIteration" => return Ok(V::Nil),
                    Err(e) => return Err(e),
                }
            }
        }
        "puts" | "print" | "p" | "pp" | "warn" | "display" => {
            Ok(if name == "p" { arg(&args, 0) } else { V::Nil })
        }
        "use_nil" if it.host.config => Ok(V::UseNil),
        "use_default" if it.host.config => Ok(V::UseDefault),
        "rand" => match args.first() {
            Some(V::Int(n)) if *n > 0 => Ok(V::Int(rand::random::<u64>() as i64 % n)),
            _ => Ok(V::Float(rand::random::<f64>())),
        },
        "block_given?" => Ok(V::Bool(false)),
        _ => raise(
            "NameError",
            format!("undefined local variable or method `{name}' for main:Object"),
        ),
    }
}

fn env_get(k: &str) -> Option<String> {
    std::env::var_os(k).map(|v| v.to_string_lossy().into_owned())
}

fn io_error<'a, T>(e: std::io::Error, path: &str) -> Result<T, Ctl<'a>> {
    let (class, what) = match e.kind() {
        std::io::ErrorKind::NotFound => ("Errno::ENOENT", "No such file or directory"),
        std::io::ErrorKind::PermissionDenied => ("Errno::EACCES", "Permission denied"),
        _ if e.raw_os_error() == Some(21) => ("Errno::EISDIR", "Is a directory"),
        _ => ("SystemCallError", "I/O error"),
    };
    raise(class, format!("{what} @ rb_sysopen - {path}"))
}

const MAX_FILE: u64 = 16 * 1024 * 1024;

fn read_file<'a>(it: &mut Interp<'a, '_>, path: &str) -> Result<Vec<u8>, Ctl<'a>> {
    if let Ok(m) = std::fs::metadata(path) {
        if m.is_dir() {
            return raise(
                "Errno::EISDIR",
                format!("Is a directory @ io_fread - {path}"),
            );
        }
        if m.len() > MAX_FILE {
            return raise("IOError", format!("{path} is larger than {MAX_FILE} bytes"));
        }
        it.charge(m.len() as usize)?;
    }
    std::fs::read(path).or_else(|e| io_error(e, path))
}

fn file_join<'a>(args: &[V<'a>], out: &mut String) -> Result<(), Ctl<'a>> {
    for a in args {
        let part = match a {
            V::Array(_) | V::RArr(_) => {
                let mut inner = String::new();
                file_join(&list(a), &mut inner)?;
                inner
            }
            other => string_arg(other)?,
        };
        if out.is_empty() {
            out.push_str(&part);
            continue;
        }
        match (out.ends_with('/'), part.starts_with('/')) {
            (true, true) => out.push_str(&part[1..]),
            (false, false) => {
                out.push('/');
                out.push_str(&part);
            }
            _ => out.push_str(&part),
        }
    }
    Ok(())
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

fn cwd() -> String {
    std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into())
}

fn expand_path(p: &str, base: Option<&str>) -> String {
    let home = env_get("HOME").unwrap_or_else(|| "/".into());
    let p = if p == "~" {
        home.clone()
    } else if let Some(r) = p.strip_prefix("~/") {
        format!("{home}/{r}")
    } else {
        p.to_string()
    };
    if p.starts_with('/') {
        return normalize(&p);
    }
    let base = match base {
        Some(b) => expand_path(b, None),
        None => cwd(),
    };
    normalize(&format!("{base}/{p}"))
}

fn basename(p: &str, suffix: Option<&str>) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.is_empty() {
            String::new()
        } else {
            "/".into()
        };
    }
    let b = t.rsplit('/').next().unwrap_or(t).to_string();
    match suffix {
        Some(".*") => match b.rfind('.') {
            Some(i) if i > 0 => b[..i].to_string(),
            _ => b,
        },
        Some(sfx) if b.ends_with(sfx) && b != sfx => b[..b.len() - sfx.len()].to_string(),
        _ => b,
    }
}

fn dirname(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.starts_with('/') {
            "/".into()
        } else {
            ".".into()
        };
    }
    match t.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => {
            let d = t[..i].trim_end_matches('/');
            if d.is_empty() {
                "/".into()
            } else {
                d.to_string()
            }
        }
        None => ".".into(),
    }
}

fn extname(p: &str) -> String {
    let b = basename(p, None);
    match b.rfind('.') {
        Some(i) if i > 0 && i + 1 < b.len() => b[i..].to_string(),
        _ => String::new(),
    }
}

pub fn mask_string(ip: &IpAddr, bits: u8) -> String {
    match ip {
        IpAddr::V4(_) => {
            let m: u32 = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits as u32)
            };
            std::net::Ipv4Addr::from(m).to_string()
        }
        IpAddr::V6(_) => {
            let m: u128 = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits as u32)
            };
            let seg: Vec<String> = (0..8)
                .map(|i| format!("{:04x}", (m >> (112 - 16 * i)) as u16))
                .collect();
            seg.join(":")
        }
    }
}

fn apply_mask(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m: u32 = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits as u32)
            };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m: u128 = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits as u32)
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn ipaddr<'a>(t: &str) -> R<'a> {
    let bad = || {
        raise(
            "IPAddr::InvalidAddressError",
            format!("invalid address: {t}"),
        )
    };
    let (addr, mask) = match t.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (t, None),
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let addr = addr.split('%').next().unwrap_or(addr);
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return bad();
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match mask {
        None => max,
        Some(m) => match m.parse::<u8>() {
            Ok(b) if b <= max => b,
            _ => match m.parse::<IpAddr>() {
                Ok(IpAddr::V4(mm)) if ip.is_ipv4() => u32::from(mm).count_ones() as u8,
                _ => return raise("IPAddr::InvalidPrefixError", format!("invalid length: {t}")),
            },
        },
    };
    Ok(V::IpAddr(Rc::new(apply_mask(ip, bits)), bits))
}

fn json_parse<'a>(it: &mut Interp<'a, '_>, text: &str) -> R<'a> {
    it.charge(text.len() * 2)?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => Ok(from_json(v)),
        Err(e) => raise("JSON::ParserError", format!("{e}")),
    }
}

fn from_json<'a>(v: serde_json::Value) -> V<'a> {
    match v {
        serde_json::Value::Null => V::Nil,
        serde_json::Value::Bool(b) => V::Bool(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => V::Int(i),
            (None, Some(u)) => super::super::value::int_v(u.into()),
            _ => V::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(t) => V::str(t),
        serde_json::Value::Array(a) => V::array(a.into_iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            let mut h = Hash::default();
            for (k, v) in o {
                h.pairs.push((V::str(k), from_json(v)));
            }
            V::hash(h)
        }
    }
}

fn json_str(out: &mut Vec<u8>, t: &[u8]) {
    out.push(b'"');
    for c in String::from_utf8_lossy(t).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn json_write<'a>(
    out: &mut Vec<u8>,
    v: &V<'a>,
    pretty: bool,
    indent: usize,
) -> Result<(), Ctl<'a>> {
    let nl = |out: &mut Vec<u8>, n: usize| {
        if pretty {
            out.push(b'\n');
            out.extend(std::iter::repeat_n(b' ', n * 2));
        }
    };
    match v {
        V::Nil | V::UseNil | V::UseDefault => out.extend_from_slice(b"null"),
        V::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        V::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        V::Big(b) => out.extend_from_slice(b.to_string().as_bytes()),
        V::Float(f) => {
            if !f.is_finite() {
                return raise(
                    "JSON::GeneratorError",
                    format!("{} not allowed in JSON", String::from_utf8_lossy(&to_s(v))),
                );
            }
            write_float(out, *f)
        }
        V::Array(_) | V::RArr(_) => {
            let items = list(v);
            out.push(b'[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                nl(out, indent + 1);
                json_write(out, x, pretty, indent + 1)?;
            }
            if !items.is_empty() {
                nl(out, indent);
            }
            out.push(b']');
        }
        V::Hash(_) | V::Rec(_) => {
            let ps = pairs(v);
            out.push(b'{');
            for (i, (k, x)) in ps.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                nl(out, indent + 1);
                json_str(out, &to_s(k));
                out.extend_from_slice(if pretty { b": " } else { b":" });
                json_write(out, x, pretty, indent + 1)?;
            }
            if !ps.is_empty() {
                nl(out, indent);
            }
            out.push(b'}');
        }
        other => json_str(out, &to_s(other)),
    }
    Ok(())
}

pub fn to_json<'a>(v: &V<'a>, pretty: bool) -> Result<Vec<u8>, Ctl<'a>> {
    let mut out = Vec::new();
    json_write(&mut out, v, pretty, 0)?;
    Ok(out)
}

/// Methods of the class constants.
pub fn class_call<'a>(
    it: &mut Interp<'a, '_>,
    c: Class,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    match (c, name) {
        (Class::Time, _) => {
            if let Some(r) = super::time::class_call(name, args) {
                return Some(r);
            }
        }
        (_, "name" | "to_s" | "inspect") if c != Class::Env => {
            return Some(Ok(s(class_const_name(c))))
        }
        (_, "===") if c != Class::Env => {
            return Some(Ok(V::Bool(super::is_a(&arg(args, 0), &V::Class(c)))))
        }
        (_, "==") => return Some(Ok(V::Bool(matches!(arg(args, 0), V::Class(o) if o == c)))),
        _ => {}
    }
    let r: R<'a> = (|| -> R<'a> {
        Ok(match (c, name) {
            (Class::Env, "[]") => {
                check_args(args, 1, 1)?;
                let k = string_arg(&args[0])?;
                env_get(&k).map_or(V::Nil, s)
            }
            (Class::Env, "fetch") => {
                check_args(args, 1, 2)?;
                let k = string_arg(&args[0])?;
                match env_get(&k) {
                    Some(v) => s(v),
                    None => match (blk, args.get(1)) {
                        (Some(b), _) => it.yield_blk(b, vec![args[0].clone()])?,
                        (None, Some(d)) => d.clone(),
                        (None, None) => {
                            return raise(
                                "KeyError",
                                format!(
                                    "key not found: {}",
                                    String::from_utf8_lossy(&inspect(&args[0]))
                                ),
                            )
                        }
                    },
                }
            }
            (Class::Env, "key?" | "has_key?" | "include?" | "member?") => {
                let k = string_arg(&arg(args, 0))?;
                V::Bool(env_get(&k).is_some())
            }
            (Class::Env, "to_h") => {
                let mut h = Hash::default();
                for (k, v) in std::env::vars_os() {
                    h.pairs.push((
                        s(k.to_string_lossy().into_owned()),
                        s(v.to_string_lossy().into_owned()),
                    ));
                }
                V::hash(h)
            }
            (Class::Env, "values_at") => {
                let mut out = Vec::new();
                for a in args {
                    out.push(env_get(&string_arg(a)?).map_or(V::Nil, s));
                }
                V::array(out)
            }
            (Class::Env, "inspect" | "to_s") => s("ENV"),
            (Class::File, "join") => {
                let mut out = String::new();
                file_join(args, &mut out)?;
                s(out)
            }
            (Class::File, "read") => {
                check_args(args, 1, 2)?;
                let p = string_arg(&args[0])?;
                V::str(read_file(it, &p)?)
            }
            (Class::File, "readlines") => {
                let p = string_arg(&arg(args, 0))?;
                let body = read_file(it, &p)?;
                let t = String::from_utf8_lossy(&body).into_owned();
                let chomp = matches!(args.get(1), Some(V::Hash(h)) if h.borrow().get(&V::sym("chomp")).is_some_and(|v| v.truthy()));
                V::array(
                    t.split_inclusive('\n')
                        .map(|l| {
                            s(if chomp {
                                l.trim_end_matches('\n').to_string()
                            } else {
                                l.to_string()
                            })
                        })
                        .collect(),
                )
            }
            (Class::File, "open") => {
                check_args(args, 1, 3)?;
                let p = string_arg(&args[0])?;
                let mode = args
                    .get(1)
                    .map(|m| String::from_utf8_lossy(&to_s(m)).into_owned())
                    .unwrap_or_default();
                if mode.contains('w') || mode.contains('a') || mode.contains('+') {
                    return raise(
                        "NotImplementedError",
                        "File.open for writing is not supported in embedded Ruby",
                    );
                }
                let body = read_file(it, &p)?;
                let f = V::File(Rc::new((p, body)));
                match blk {
                    Some(b) => it.yield_blk(b, vec![f])?,
                    None => f,
                }
            }
            (Class::File, "exist?" | "exists?") => {
                V::Bool(std::path::Path::new(&string_arg(&arg(args, 0))?).exists())
            }
            (Class::File, "file?") => {
                V::Bool(std::path::Path::new(&string_arg(&arg(args, 0))?).is_file())
            }
            (Class::File | Class::Dir, "directory?") => {
                V::Bool(std::path::Path::new(&string_arg(&arg(args, 0))?).is_dir())
            }
            (Class::File, "readable?") => {
                V::Bool(std::fs::File::open(string_arg(&arg(args, 0))?).is_ok())
            }
            (Class::File, "size") => match std::fs::metadata(string_arg(&arg(args, 0))?) {
                Ok(m) => V::Int(m.len() as i64),
                Err(e) => return io_error(e, &string_arg(&arg(args, 0))?),
            },
            (Class::File, "basename") => {
                let p = string_arg(&arg(args, 0))?;
                let sfx = match args.get(1) {
                    Some(x) => Some(string_arg(x)?),
                    None => None,
                };
                s(basename(&p, sfx.as_deref()))
            }
            (Class::File, "dirname") => s(dirname(&string_arg(&arg(args, 0))?)),
            (Class::File, "extname") => s(extname(&string_arg(&arg(args, 0))?)),
            (Class::File, "expand_path" | "absolute_path") => {
                let p = string_arg(&arg(args, 0))?;
                let base = match args.get(1) {
                    Some(V::Nil) | None => None,
                    Some(b) => Some(string_arg(b)?),
                };
                s(expand_path(&p, base.as_deref()))
            }
            (Class::File, "realpath") => {
                let p = string_arg(&arg(args, 0))?;
                match std::fs::canonicalize(&p) {
                    Ok(r) => s(r.to_string_lossy().into_owned()),
                    Err(e) => return io_error(e, &p),
                }
            }
            (Class::Dir, "pwd" | "getwd") => s(cwd()),
            (Class::Dir, "exist?" | "exists?") => {
                V::Bool(std::path::Path::new(&string_arg(&arg(args, 0))?).is_dir())
            }
            (Class::Dir, "home") => s(env_get("HOME").unwrap_or_else(|| "/".into())),
            (Class::Dir, "glob") => {
                let pat = string_arg(&arg(args, 0))?;
                let mut out = Vec::new();
                if let Ok(paths) = glob::glob(&pat) {
                    for p in paths.flatten().take(100_000) {
                        out.push(s(p.to_string_lossy().into_owned()));
                    }
                }
                V::array(out)
            }
            (Class::Socket, "gethostname") => s(it.host.hostname.clone()),
            (Class::IpAddr, "new") => {
                check_args(args, 1, 2)?;
                let t = string_arg(&args[0])?;
                ipaddr(&t)?
            }
            (Class::Json, "parse") => {
                check_args(args, 1, 2)?;
                let t = string_arg(&args[0])?;
                let v = json_parse(it, &t)?;
                let sym = matches!(args.get(1), Some(V::Hash(h)) if h.borrow().get(&V::sym("symbolize_names")).is_some_and(|v| v.truthy()));
                if sym {
                    symbolize(v)
                } else {
                    v
                }
            }
            (Class::Json, "generate" | "dump") => V::str(to_json(&arg(args, 0), false)?),
            (Class::Json, "pretty_generate") => V::str(to_json(&arg(args, 0), true)?),
            (Class::Regexp, "new" | "compile") => {
                let src = match &arg(args, 0) {
                    V::Regexp(r) => return Ok(V::Regexp(r.clone())),
                    other => string_arg(other)?,
                };
                let flags = match args.get(1) {
                    Some(V::Int(i)) => *i as u8 & (IGNORECASE | EXTENDED | MULTILINE),
                    Some(V::Str(f)) => {
                        let f = String::from_utf8_lossy(&f.borrow()).into_owned();
                        (if f.contains('i') { IGNORECASE } else { 0 })
                            | (if f.contains('x') { EXTENDED } else { 0 })
                            | (if f.contains('m') { MULTILINE } else { 0 })
                    }
                    Some(v) if v.truthy() => IGNORECASE,
                    _ => 0,
                };
                match Re::new(&src, flags) {
                    Ok(r) => V::Regexp(Arc::new(r)),
                    Err(e) => return raise("RegexpError", e),
                }
            }
            (Class::Regexp, "escape" | "quote") => {
                s(super::string::escape(&string_arg(&arg(args, 0))?))
            }
            (Class::Regexp, "union") => {
                let items: Vec<V<'a>> = if args.len() == 1 {
                    super::splat(args[0].clone())
                } else {
                    args.to_vec()
                };
                let mut parts = Vec::new();
                for x in items {
                    parts.push(match &x {
                        V::Regexp(r) => r.to_s(),
                        other => super::string::escape(&string_arg(other)?),
                    });
                }
                match Re::new(&parts.join("|"), 0) {
                    Ok(r) => V::Regexp(Arc::new(r)),
                    Err(e) => return raise("RegexpError", e),
                }
            }
            (Class::Math, m @ ("sqrt" | "log" | "log10" | "log2" | "exp" | "cbrt" | "hypot")) => {
                let x = match float(&arg(args, 0))? {
                    V::Float(f) => f,
                    _ => 0.0,
                };
                V::Float(match m {
                    "sqrt" => {
                        if x < 0.0 {
                            return raise(
                                "Math::DomainError",
                                "Numerical argument is out of domain - \"sqrt\"",
                            );
                        }
                        x.sqrt()
                    }
                    "log" => match args.get(1) {
                        Some(b) => {
                            x.ln()
                                / match float(b)? {
                                    V::Float(f) => f.ln(),
                                    _ => 1.0,
                                }
                        }
                        None => x.ln(),
                    },
                    "log10" => x.log10(),
                    "log2" => x.log2(),
                    "exp" => x.exp(),
                    "cbrt" => x.cbrt(),
                    _ => x.hypot(match float(&arg(args, 1))? {
                        V::Float(f) => f,
                        _ => 0.0,
                    }),
                })
            }
            (Class::Process, "pid") => V::Int(std::process::id() as i64),
            (Class::Exception(e), "new") => exception(
                e,
                args.first()
                    .map(|m| String::from_utf8_lossy(&to_s(m)).into_owned()),
            ),
            (Class::Hash, "new") => {
                let mut h = Hash::default();
                if let Some(d) = args.first() {
                    h.default = Some(d.clone());
                }
                V::hash(h)
            }
            (Class::Array, "new") => {
                let n = int_arg(&arg(args, 0))?;
                if n < 0 {
                    return raise("ArgumentError", "negative array size");
                }
                it.charge((n as usize).saturating_mul(16))?;
                let mut out = Vec::with_capacity(n as usize);
                for i in 0..n {
                    out.push(match blk {
                        Some(b) => it.yield_blk(b, vec![V::Int(i)])?,
                        None => arg(args, 1),
                    });
                }
                V::array(out)
            }
            (Class::String, "new") => s(args.first().map(to_s).unwrap_or_default()),
            _ => return no_method(name, &V::Class(c)),
        })
    })();
    Some(r)
}

fn symbolize<'a>(v: V<'a>) -> V<'a> {
    match v {
        V::Hash(h) => {
            let ps = h.borrow().pairs.clone();
            let mut out = Hash::default();
            for (k, x) in ps {
                out.pairs
                    .push((V::sym(&String::from_utf8_lossy(&to_s(&k))), symbolize(x)));
            }
            V::hash(out)
        }
        V::Array(a) => {
            let items = a.borrow().clone();
            V::array(items.into_iter().map(symbolize).collect())
        }
        other => other,
    }
}

/// nil, booleans, Symbol, Regexp, MatchData, IPAddr, File, exceptions.
pub fn misc_call<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    let ok = |v: V<'a>| Some(Ok(v));
    match (recv, name) {
        (V::Nil, "to_s") => ok(s("")),
        (V::Nil, "to_a") => ok(V::array(Vec::new())),
        (V::Nil, "to_h") => ok(V::hash(Hash::default())),
        (V::Nil, "to_i") => ok(V::Int(0)),
        (V::Nil, "to_f") => ok(V::Float(0.0)),
        (V::Nil, "inspect") => ok(s("nil")),
        (V::Nil, "&") => ok(V::Bool(false)),
        (V::Nil | V::Bool(_), "|" | "^") => ok(V::Bool(if name == "|" {
            recv.truthy() || arg(args, 0).truthy()
        } else {
            recv.truthy() != arg(args, 0).truthy()
        })),
        (V::Bool(b), "&") => ok(V::Bool(*b && arg(args, 0).truthy())),
        (V::Sym(x), "to_s" | "id2name" | "name") => ok(s(x.to_string())),
        (V::Sym(_), "to_sym") => ok(recv.clone()),
        (V::Sym(x), "length" | "size") => ok(V::Int(x.chars().count() as i64)),
        (
            V::Sym(x),
            "upcase" | "downcase" | "capitalize" | "[]" | "start_with?" | "end_with?" | "empty?",
        ) => {
            let r = super::string::call(it, &s(x.to_string()), name, args, blk)?;
            Some(r.map(|v| match (&v, name) {
                (V::Str(t), "upcase" | "downcase" | "capitalize") => {
                    V::sym(&String::from_utf8_lossy(&t.borrow()))
                }
                _ => v,
            }))
        }
        (V::Sym(_), "<=>") => {
            ok(super::compare(recv, &arg(args, 0)).map_or(V::Nil, |o| V::Int(o as i64)))
        }
        (V::Regexp(r), "match") => {
            let t = match arg(args, 0) {
                V::Nil => {
                    it.last_match = None;
                    return ok(V::Nil);
                }
                v => String::from_utf8_lossy(&to_s(&v)).into_owned(),
            };
            Some(match r.match_at(&t, 0) {
                Ok(Some(m)) => {
                    let m = Rc::new(m);
                    it.last_match = Some(m.clone());
                    Ok(V::Match(m))
                }
                Ok(None) => {
                    it.last_match = None;
                    Ok(V::Nil)
                }
                Err(e) => raise("RegexpError", e),
            })
        }
        (V::Regexp(r), "match?") => {
            let t = match arg(args, 0) {
                V::Nil => return ok(V::Bool(false)),
                v => String::from_utf8_lossy(&to_s(&v)).into_owned(),
            };
            Some(
                r.match_at(&t, 0)
                    .map(|m| V::Bool(m.is_some()))
                    .or_else(|e| raise("RegexpError", e)),
            )
        }
        (V::Regexp(r), "=~" | "===") => {
            let t = match arg(args, 0) {
                V::Str(x) => String::from_utf8_lossy(&x.borrow()).into_owned(),
                V::Sym(x) => x.to_string(),
                _ => {
                    it.last_match = None;
                    return ok(if name == "===" {
                        V::Bool(false)
                    } else {
                        V::Nil
                    });
                }
            };
            let r = super::string::match_pos(it, r, &t);
            if name == "===" {
                Some(r.map(|v| V::Bool(v.truthy())))
            } else {
                Some(r)
            }
        }
        (V::Regexp(r), "source") => ok(s(r.source.clone())),
        (V::Regexp(r), "to_s") => ok(s(r.to_s())),
        (V::Regexp(r), "inspect") => ok(s(r.inspect())),
        (V::Regexp(r), "options") => ok(V::Int(r.flags as i64)),
        (V::Regexp(r), "names") => ok(V::array(
            r.names.iter().flatten().map(|n| s(n.clone())).collect(),
        )),
        (V::Match(m), "[]") => {
            let k = arg(args, 0);
            ok(match k {
                V::Int(i) => {
                    let i = if i < 0 { m.groups.len() as i64 + i } else { i };
                    if i < 0 {
                        V::Nil
                    } else {
                        m.group(i as usize).map_or(V::Nil, |g| s(g.to_string()))
                    }
                }
                V::Str(_) | V::Sym(_) => {
                    let name = String::from_utf8_lossy(&to_s(&k)).into_owned();
                    match m.named(&name) {
                        Some(g) => g.map_or(V::Nil, |g| s(g.to_string())),
                        None => {
                            return Some(raise(
                                "IndexError",
                                format!("undefined group name reference: {name}"),
                            ))
                        }
                    }
                }
                _ => V::Nil,
            })
        }
        (V::Match(m), "captures") => ok(V::array(
            (1..m.groups.len())
                .map(|i| m.group(i).map_or(V::Nil, |g| s(g.to_string())))
                .collect(),
        )),
        (V::Match(m), "to_a") => ok(V::array(
            (0..m.groups.len())
                .map(|i| m.group(i).map_or(V::Nil, |g| s(g.to_string())))
                .collect(),
        )),
        (V::Match(m), "named_captures") => {
            let mut h = Hash::default();
            for (i, n) in m.names.iter().enumerate() {
                if let Some(n) = n {
                    h.insert(
                        s(n.clone()),
                        m.group(i).map_or(V::Nil, |g| s(g.to_string())),
                    );
                }
            }
            ok(V::hash(h))
        }
        (V::Match(m), "names") => ok(V::array(
            m.names.iter().flatten().map(|n| s(n.clone())).collect(),
        )),
        (V::Match(m), "pre_match") => ok(s(m.pre().to_string())),
        (V::Match(m), "post_match") => ok(s(m.post().to_string())),
        (V::Match(m), "to_s") => ok(s(m.group(0).unwrap_or("").to_string())),
        (V::Match(m), "string") => ok(s(m.text.to_string())),
        (V::Match(m), "size" | "length") => ok(V::Int(m.groups.len() as i64)),
        (V::Match(m), "begin" | "end") => {
            let i = match arg(args, 0) {
                V::Int(i) => i as usize,
                _ => 0,
            };
            ok(match m.groups.get(i).copied().flatten() {
                Some((a, b)) => V::Int(
                    m.text[..if name == "begin" { a } else { b }]
                        .chars()
                        .count() as i64,
                ),
                None => V::Nil,
            })
        }
        (V::Match(m), "values_at") => ok(V::array(
            args.iter()
                .map(|a| match a {
                    V::Int(i) => m.group(*i as usize).map_or(V::Nil, |g| s(g.to_string())),
                    _ => V::Nil,
                })
                .collect(),
        )),
        (V::IpAddr(ip, _), "ipv4?") => ok(V::Bool(ip.is_ipv4())),
        (V::IpAddr(ip, _), "ipv6?") => ok(V::Bool(ip.is_ipv6())),
        (V::IpAddr(ip, _), "loopback?") => ok(V::Bool(ip.is_loopback())),
        (V::IpAddr(ip, _), "private?") => ok(V::Bool(match &**ip {
            IpAddr::V4(a) => a.is_private(),
            IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00,
        })),
        (V::IpAddr(ip, _), "to_s") => ok(s(ip.to_string())),
        (V::IpAddr(ip, _), "to_string") => ok(s(match &**ip {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => a
                .segments()
                .iter()
                .map(|x| format!("{x:04x}"))
                .collect::<Vec<_>>()
                .join(":"),
        })),
        (V::IpAddr(_, m), "prefix") => ok(V::Int(*m as i64)),
        (V::IpAddr(ip, m), "include?" | "===") => {
            let other = match arg(args, 0) {
                V::IpAddr(o, _) => Some(*o),
                V::Str(t) => String::from_utf8_lossy(&t.borrow()).parse::<IpAddr>().ok(),
                _ => None,
            };
            ok(V::Bool(other.is_some_and(|o| {
                o.is_ipv4() == ip.is_ipv4() && apply_mask(o, *m) == **ip
            })))
        }
        (V::IpAddr(ip, _), "to_i") => ok(match &**ip {
            IpAddr::V4(a) => V::Int(u32::from(*a) as i64),
            IpAddr::V6(a) => V::Float(u128::from(*a) as f64),
        }),
        (V::IpAddr(ip, m), "mask") => {
            let bits = match arg(args, 0) {
                V::Int(b) => b.clamp(0, 128) as u8,
                _ => *m,
            };
            ok(V::IpAddr(Rc::new(apply_mask(**ip, bits)), bits))
        }
        (V::IpAddr(ip, m), "to_range") => ok(V::Range(Rc::new((
            V::IpAddr(ip.clone(), *m),
            V::IpAddr(ip.clone(), *m),
            false,
        )))),
        (V::File(f), "read") => ok(V::str(f.1.clone())),
        (V::File(f), "readlines") => ok(V::array(
            String::from_utf8_lossy(&f.1)
                .split_inclusive('\n')
                .map(|l| s(l.to_string()))
                .collect(),
        )),
        (V::File(f), "gets") => ok(String::from_utf8_lossy(&f.1)
            .split_inclusive('\n')
            .next()
            .map_or(V::Nil, |l| s(l.to_string()))),
        (V::File(f), "each_line") => {
            let b = blk?;
            let text = String::from_utf8_lossy(&f.1).into_owned();
            for l in text.split_inclusive('\n') {
                if let Err(e) = it.yield_blk(b, vec![s(l.to_string())]) {
                    return Some(Err(e));
                }
            }
            ok(recv.clone())
        }
        (V::File(f), "path") => ok(s(f.0.clone())),
        (V::File(f), "size") => ok(V::Int(f.1.len() as i64)),
        (V::File(_), "close") => ok(V::Nil),
        (V::Exception(e), "message" | "to_s") => ok(s(e.msg.clone())),
        (V::Exception(e), "full_message") => ok(s(format!("{} ({})", e.msg, e.class))),
        (V::Exception(_), "backtrace") => ok(V::Nil),
        (V::UseNil | V::UseDefault, _) => match name {
            "to_s" => ok(s("")),
            "nil?" => ok(V::Bool(true)),
            _ => None,
        },
        (_, "==") => ok(V::Bool(equal(recv, &arg(args, 0)))),
        _ => None,
    }
}
