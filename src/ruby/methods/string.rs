//! String methods. Indexes count characters (UTF-8), as Ruby's do for UTF-8 strings.

use std::rc::Rc;
use std::sync::Arc;

use super::super::compile::Block;
use super::super::interp::{raise, Ctl, Interp, R};
use super::super::regexp::{MatchData, Re};
use super::super::value::{str_to_f, str_to_int, to_s, V};
use super::{arg, check_args, compare, int_arg, str_arg, string_arg};

fn text(v: &V<'_>) -> String {
    match v {
        V::Str(s) => String::from_utf8_lossy(&s.borrow()).into_owned(),
        other => String::from_utf8_lossy(&to_s(other)).into_owned(),
    }
}

fn s<'a>(t: impl Into<Vec<u8>>) -> V<'a> {
    V::str(t.into())
}

/// A pattern argument: a Regexp, or a String matched literally.
pub fn pattern<'a>(v: &V<'a>) -> Result<Arc<Re>, Ctl<'a>> {
    match v {
        V::Regexp(r) => Ok(r.clone()),
        V::Str(_) => {
            let lit = string_arg(v)?;
            match Re::new(&escape(&lit), 0) {
                Ok(r) => Ok(Arc::new(r)),
                Err(e) => raise("RegexpError", e),
            }
        }
        other => raise(
            "TypeError",
            format!(
                "wrong argument type {} (expected Regexp)",
                other.class_name()
            ),
        ),
    }
}

/// `Regexp.escape`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '.' | '*' | '?' | '+' | '^' | '$' | '|' | '(' | ')' | '[' | ']' | '{' | '}' | '\\'
            | '/' | '-' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' ' => out.push_str("\\ "),
            c => out.push(c),
        }
    }
    out
}

fn char_index(t: &str, i: i64) -> Option<usize> {
    let n = t.chars().count() as i64;
    let i = if i < 0 { n + i } else { i };
    if i < 0 || i > n {
        None
    } else {
        Some(i as usize)
    }
}

fn substr(t: &str, start: usize, len: usize) -> String {
    t.chars().skip(start).take(len).collect()
}

/// `str[idx]`, `str[start, len]`, `str[range]`, `str[regexp]`, `str[regexp, n]`, `str[str]`.
pub fn index<'a>(it: &mut Interp<'a, '_>, t: &str, args: &[V<'a>]) -> R<'a> {
    check_args(args, 1, 2)?;
    let n = t.chars().count() as i64;
    match (&args[0], args.get(1)) {
        (V::Int(i), None) => {
            let i = if *i < 0 { n + i } else { *i };
            if i < 0 || i >= n {
                return Ok(V::Nil);
            }
            Ok(s(substr(t, i as usize, 1)))
        }
        (V::Int(i), Some(l)) => {
            let l = int_arg(l)?;
            let Some(start) = char_index(t, *i) else {
                return Ok(V::Nil);
            };
            if l < 0 {
                return Ok(V::Nil);
            }
            Ok(s(substr(t, start, l as usize)))
        }
        (V::Range(r), None) => match super::array::range_bounds(r, n)? {
            Some((st, len)) => Ok(s(substr(t, st, len))),
            None => Ok(V::Nil),
        },
        (V::Regexp(re), group) => {
            let m = re.match_at(t, 0).map_err(regex_err)?;
            let Some(m) = m else {
                it.last_match = None;
                return Ok(V::Nil);
            };
            let g = match group {
                None => m.group(0).map(str::to_string),
                Some(V::Int(i)) => m.group(*i as usize).map(str::to_string),
                Some(V::Str(_)) | Some(V::Sym(_)) => {
                    let name = text(&group.cloned().unwrap_or(V::Nil));
                    match m.named(&name) {
                        Some(g) => g.map(str::to_string),
                        None => {
                            return raise(
                                "IndexError",
                                format!("undefined group name reference: {name}"),
                            )
                        }
                    }
                }
                Some(_) => None,
            };
            it.last_match = Some(Rc::new(m));
            Ok(g.map_or(V::Nil, s))
        }
        (V::Str(x), None) => {
            let x = String::from_utf8_lossy(&x.borrow()).into_owned();
            Ok(if t.contains(&x) { s(x) } else { V::Nil })
        }
        (V::Float(f), None) => index(it, t, &[V::Int(f.trunc() as i64)]),
        (other, _) => raise(
            "TypeError",
            format!(
                "no implicit conversion of {} into Integer",
                super::conv_name(other)
            ),
        ),
    }
}

fn regex_err<'a>(e: String) -> Ctl<'a> {
    Ctl::Raise(
        Rc::new(super::super::value::Exc {
            class: "RegexpError".into(),
            msg: e,
        }),
        super::super::interp::NO_AT,
    )
}

/// Ruby's `String#split`.
pub fn split<'a>(t: &str, pat: &V<'a>, limit: i64) -> Result<Vec<String>, Ctl<'a>> {
    let mut out: Vec<String> = Vec::new();
    let awk = match pat {
        V::Nil => true,
        V::Str(p) => p.borrow().as_slice() == b" ",
        _ => false,
    };
    if t.is_empty() {
        return Ok(out);
    }
    if awk {
        let mut rest = t.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
        loop {
            if limit > 0 && out.len() as i64 == limit - 1 {
                if !rest.is_empty() {
                    out.push(rest.to_string());
                }
                break;
            }
            match rest.find(|c: char| c.is_ascii_whitespace() || c == '\0') {
                Some(i) => {
                    out.push(rest[..i].to_string());
                    let after = rest[i..]
                        .trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
                    if after.is_empty() {
                        if limit < 0 {
                            out.push(String::new());
                        }
                        break;
                    }
                    rest = after;
                }
                None => {
                    if !rest.is_empty() {
                        out.push(rest.to_string());
                    }
                    break;
                }
            }
        }
        return Ok(out);
    }
    match pat {
        V::Str(p) => {
            let p = String::from_utf8_lossy(&p.borrow()).into_owned();
            if p.is_empty() {
                for c in t.chars() {
                    if limit > 0 && out.len() as i64 == limit - 1 {
                        break;
                    }
                    out.push(c.to_string());
                }
                let used: usize = out.iter().map(|x| x.len()).sum();
                if used < t.len() {
                    out.push(t[used..].to_string());
                }
            } else {
                let mut rest = t;
                loop {
                    if limit > 0 && out.len() as i64 == limit - 1 {
                        out.push(rest.to_string());
                        break;
                    }
                    match rest.find(&p) {
                        Some(i) => {
                            out.push(rest[..i].to_string());
                            rest = &rest[i + p.len()..];
                        }
                        None => {
                            out.push(rest.to_string());
                            break;
                        }
                    }
                }
            }
        }
        V::Regexp(re) => {
            // Ruby's rule: an empty match right where the current field starts does not
            // split; every other match ends a field.
            let len = t.len();
            let (mut beg, mut pos) = (0usize, 0usize);
            let mut splits = 1i64;
            while pos <= len {
                if limit > 0 && splits >= limit {
                    break;
                }
                let Some(m) = re.match_at(t, pos).map_err(regex_err)? else {
                    break;
                };
                let (mb, me) = m.groups[0].unwrap_or((pos, pos));
                let next_char = |at: usize| t[at..].chars().next().map_or(1, char::len_utf8);
                if mb == me {
                    if mb == beg || mb > len {
                        pos = mb + next_char(mb.min(len));
                        continue;
                    }
                    out.push(t[beg..mb].to_string());
                    beg = mb;
                    pos = if mb >= len {
                        len + 1
                    } else {
                        mb + next_char(mb)
                    };
                } else {
                    out.push(t[beg..mb].to_string());
                    beg = me;
                    pos = me;
                }
                for g in 1..m.groups.len() {
                    if let Some(x) = m.group(g) {
                        out.push(x.to_string());
                    }
                }
                splits += 1;
            }
            if len > 0 {
                out.push(t[beg.min(len)..].to_string());
            }
        }
        other => {
            return raise(
                "TypeError",
                format!(
                    "wrong argument type {} (expected Regexp)",
                    other.class_name()
                ),
            )
        }
    }
    if limit == 0 {
        while out.last().is_some_and(|x| x.is_empty()) {
            out.pop();
        }
    }
    Ok(out)
}

/// `sub`/`gsub` with a replacement string, a Hash, or a block.
fn substitute<'a>(
    it: &mut Interp<'a, '_>,
    t: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
    global: bool,
) -> Result<String, Ctl<'a>> {
    check_args(args, 1, 2)?;
    let re = pattern(&args[0])?;
    let literal_pat = matches!(args[0], V::Str(_));
    let matches = if global {
        re.all(t, 1_000_000).map_err(regex_err)?
    } else {
        re.match_at(t, 0).map_err(regex_err)?.into_iter().collect()
    };
    let mut out = String::with_capacity(t.len());
    let mut last = 0;
    let mut last_m: Option<MatchData> = None;
    for m in matches {
        let (ms, me) = m.groups[0].unwrap_or((0, 0));
        out.push_str(&t[last..ms]);
        match args.get(1) {
            Some(V::Str(r)) => {
                let r = String::from_utf8_lossy(&r.borrow()).into_owned();
                if literal_pat && !r.contains('\\') {
                    out.push_str(&r);
                } else {
                    m.expand(&r, &mut out);
                }
            }
            Some(h @ (V::Hash(_) | V::Rec(_))) => {
                let key = s(m.group(0).unwrap_or("").to_string());
                let v = super::hash::lookup(h, &key);
                out.push_str(&text(&v));
            }
            Some(other) => {
                return raise(
                    "TypeError",
                    format!(
                        "no implicit conversion of {} into String",
                        super::conv_name(other)
                    ),
                )
            }
            None => match blk {
                Some(b) => {
                    it.last_match = Some(Rc::new(m.clone()));
                    let v = it.yield_blk(b, vec![s(m.group(0).unwrap_or("").to_string())])?;
                    out.push_str(&text(&v));
                }
                None => return super::super::interp::arg_count(1, "2"),
            },
        }
        it.charge(out.len() / 8)?;
        last = me;
        last_m = Some(m);
    }
    out.push_str(&t[last..]);
    if let Some(m) = last_m {
        it.last_match = Some(Rc::new(m));
    }
    Ok(out)
}

fn capitalize(t: &str) -> String {
    let mut c = t.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase(),
        None => String::new(),
    }
}

fn chomp(t: &str, arg: Option<&str>) -> String {
    match arg {
        None => {
            if let Some(x) = t.strip_suffix("\r\n") {
                x.to_string()
            } else if let Some(x) = t.strip_suffix('\n').or_else(|| t.strip_suffix('\r')) {
                x.to_string()
            } else {
                t.to_string()
            }
        }
        Some("") => t
            .trim_end_matches(['\n'])
            .trim_end_matches("\r\n")
            .to_string(),
        Some(sfx) => t.strip_suffix(sfx).unwrap_or(t).to_string(),
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\0')
}

/// `tr`'s character sets: ranges `a-z`, a leading `^` negates.
fn tr_set(spec: &str) -> (bool, Vec<char>) {
    let chars: Vec<char> = spec.chars().collect();
    let (neg, body) = if chars.len() > 1 && chars[0] == '^' {
        (true, &chars[1..])
    } else {
        (false, &chars[..])
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1] == '-' {
            let (a, b) = (body[i] as u32, body[i + 2] as u32);
            for c in a..=b {
                if let Some(c) = char::from_u32(c) {
                    out.push(c);
                }
            }
            i += 3;
        } else if body[i] == '\\' && i + 1 < body.len() {
            out.push(body[i + 1]);
            i += 2;
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    (neg, out)
}

fn tr(t: &str, from: &str, to: &str, squeeze: bool) -> String {
    let (neg, from) = tr_set(from);
    let (_, to) = tr_set(to);
    let mut out = String::new();
    let mut last: Option<char> = None;
    for c in t.chars() {
        let pos = from.iter().position(|x| *x == c);
        let hit = if neg { pos.is_none() } else { pos.is_some() };
        if !hit {
            out.push(c);
            last = None;
            continue;
        }
        let r = if to.is_empty() {
            None
        } else if neg {
            to.last().copied()
        } else {
            let p = pos.unwrap_or(0);
            Some(*to.get(p).or(to.last()).unwrap_or(&c))
        };
        if let Some(r) = r {
            if squeeze && last == Some(r) {
                continue;
            }
            out.push(r);
            last = Some(r);
        }
    }
    out
}

fn in_sets(c: char, sets: &[(bool, Vec<char>)]) -> bool {
    sets.iter().all(|(neg, set)| set.contains(&c) != *neg)
}

fn sets<'a>(args: &[V<'a>]) -> Result<Vec<(bool, Vec<char>)>, Ctl<'a>> {
    args.iter().map(|a| Ok(tr_set(&string_arg(a)?))).collect()
}

fn pad<'a>(it: &mut Interp<'a, '_>, t: &str, args: &[V<'a>], mode: u8) -> R<'a> {
    check_args(args, 1, 2)?;
    let w = int_arg(&args[0])?;
    let padstr = match args.get(1) {
        Some(p) => string_arg(p)?,
        None => " ".into(),
    };
    if padstr.is_empty() {
        return raise("ArgumentError", "zero width padding");
    }
    let n = t.chars().count() as i64;
    if w <= n {
        return Ok(s(t.to_string()));
    }
    it.charge(w as usize)?;
    let total = (w - n) as usize;
    let (left, right) = match mode {
        b'l' => (0, total),
        b'r' => (total, 0),
        _ => (total / 2, total - total / 2),
    };
    let fill = |k: usize| padstr.chars().cycle().take(k).collect::<String>();
    Ok(s(format!("{}{}{}", fill(left), t, fill(right))))
}

/// `String#succ` (for ranges of strings).
pub fn call_succ(t: &str) -> Option<String> {
    Some(succ(t))
}

fn succ(t: &str) -> String {
    if t.is_empty() {
        return String::new();
    }
    let mut chars: Vec<char> = t.chars().collect();
    if !chars.iter().any(|c| c.is_ascii_alphanumeric()) {
        if let Some(last) = chars.last_mut() {
            *last = char::from_u32(*last as u32 + 1).unwrap_or(*last);
        }
        return chars.into_iter().collect();
    }
    let mut i = chars.len();
    loop {
        if i == 0 {
            let first = chars
                .iter()
                .position(|c| c.is_ascii_alphanumeric())
                .unwrap_or(0);
            let c = chars[first];
            let ins = if c == '0' {
                '1'
            } else if c == 'a' {
                'a'
            } else {
                'A'
            };
            chars.insert(first, ins);
            break;
        }
        i -= 1;
        let c = chars[i];
        if !c.is_ascii_alphanumeric() {
            continue;
        }
        let (next, carry) = match c {
            'z' => ('a', true),
            'Z' => ('A', true),
            '9' => ('0', true),
            c => (char::from_u32(c as u32 + 1).unwrap_or(c), false),
        };
        chars[i] = next;
        if !carry {
            break;
        }
        if !chars[..i].iter().any(|c| c.is_ascii_alphanumeric()) {
            let ins = match c {
                '9' => '1',
                'z' => 'a',
                _ => 'A',
            };
            chars.insert(i, ins);
            break;
        }
    }
    chars.into_iter().collect()
}

/// Mutating methods write the receiver's buffer and return it (or nil when nothing changed,
/// for the `!` forms).
fn mutate<'a>(recv: &V<'a>, new: String, bang_nil: bool) -> R<'a> {
    let V::Str(cell) = recv else {
        return Ok(V::Nil);
    };
    let changed = cell.borrow().as_slice() != new.as_bytes();
    *cell.borrow_mut() = new.into_bytes();
    Ok(if bang_nil && !changed {
        V::Nil
    } else {
        recv.clone()
    })
}

pub fn call<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    call_inner(it, recv, name, args, blk).transpose()
}

fn call_inner<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Result<Option<V<'a>>, Ctl<'a>> {
    let V::Str(cell) = recv else {
        return Ok(None);
    };
    // Methods that only look at the bytes.
    match name {
        "length" | "size" => {
            let b = cell.borrow();
            let n = match std::str::from_utf8(&b) {
                Ok(t) => t.chars().count(),
                Err(_) => String::from_utf8_lossy(&b).chars().count(),
            };
            return Ok(Some(V::Int(n as i64)));
        }
        "bytesize" => return Ok(Some(V::Int(cell.borrow().len() as i64))),
        "empty?" => return Ok(Some(V::Bool(cell.borrow().is_empty()))),
        "to_i" => {
            let radix = match args.first() {
                Some(r) => int_arg(r)?,
                None => 10,
            };
            if !(2..=36).contains(&radix) {
                return raise("ArgumentError", format!("invalid radix {radix}"));
            }
            let v = str_to_int(&cell.borrow(), radix as u32);
            return Ok(Some(big_checked(it, v)?));
        }
        "hex" | "oct" => {
            let v = str_to_int(&cell.borrow(), if name == "hex" { 16 } else { 8 });
            return Ok(Some(big_checked(it, v)?));
        }
        "to_f" => return Ok(Some(V::Float(str_to_f(&cell.borrow())))),
        "to_s" | "to_str" => return Ok(Some(recv.clone())),
        "==" | "eql?" | "===" => {
            return Ok(Some(V::Bool(match arg(args, 0) {
                V::Str(o) => *o.borrow() == *cell.borrow(),
                _ => false,
            })))
        }
        "+" => {
            check_args(args, 1, 1)?;
            let o = str_arg(&args[0])?;
            let mut b = cell.borrow().clone();
            it.charge(b.len() + o.len())?;
            b.extend_from_slice(&o);
            return Ok(Some(V::str(b)));
        }
        "*" => {
            check_args(args, 1, 1)?;
            let n = int_arg(&args[0])?;
            if n < 0 {
                return raise("ArgumentError", "negative argument");
            }
            let len = cell.borrow().len().saturating_mul(n as usize);
            it.charge(len)?;
            return Ok(Some(V::str(cell.borrow().repeat(n as usize))));
        }
        "<<" | "concat" => {
            for a in args {
                let o = match a {
                    V::Int(i) => char::from_u32(*i as u32)
                        .map(|c| c.to_string().into_bytes())
                        .unwrap_or_default(),
                    other => str_arg(other)?,
                };
                it.charge(cell.borrow().len() + o.len())?;
                cell.borrow_mut().extend_from_slice(&o);
            }
            return Ok(Some(recv.clone()));
        }
        "replace" => {
            let o = str_arg(&arg(args, 0))?;
            *cell.borrow_mut() = o;
            return Ok(Some(recv.clone()));
        }
        "clear" => {
            cell.borrow_mut().clear();
            return Ok(Some(recv.clone()));
        }
        "bytes" => {
            return Ok(Some(V::array(
                cell.borrow().iter().map(|b| V::Int(*b as i64)).collect(),
            )))
        }
        "force_encoding" | "encode" | "scrub" | "unicode_normalize" | "b" => {
            return Ok(Some(V::str(
                String::from_utf8_lossy(&cell.borrow()).into_owned(),
            )))
        }
        "valid_encoding?" => return Ok(Some(V::Bool(std::str::from_utf8(&cell.borrow()).is_ok()))),
        "ascii_only?" => return Ok(Some(V::Bool(cell.borrow().is_ascii()))),
        "encoding" => return Ok(Some(V::str("UTF-8"))),
        "hash" => {
            use std::hash::{Hash as _, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            cell.borrow().hash(&mut h);
            return Ok(Some(V::Int(h.finish() as i64)));
        }
        _ => {}
    }
    let t = String::from_utf8_lossy(&cell.borrow()).into_owned();
    let v = match name {
        "downcase" => s(t.to_lowercase()),
        "upcase" => s(t.to_uppercase()),
        "capitalize" => s(capitalize(&t)),
        "swapcase" => s(t
            .chars()
            .map(|c| {
                if c.is_uppercase() {
                    c.to_lowercase().collect::<String>()
                } else {
                    c.to_uppercase().collect()
                }
            })
            .collect::<String>()),
        "downcase!" => mutate(recv, t.to_lowercase(), true)?,
        "upcase!" => mutate(recv, t.to_uppercase(), true)?,
        "capitalize!" => mutate(recv, capitalize(&t), true)?,
        "strip" => s(t.trim_matches(is_space).to_string()),
        "lstrip" => s(t.trim_start_matches(is_space).to_string()),
        "rstrip" => s(t.trim_end_matches(is_space).to_string()),
        "strip!" => mutate(recv, t.trim_matches(is_space).to_string(), true)?,
        "lstrip!" => mutate(recv, t.trim_start_matches(is_space).to_string(), true)?,
        "rstrip!" => mutate(recv, t.trim_end_matches(is_space).to_string(), true)?,
        "chomp" | "chomp!" => {
            let a = match args.first() {
                Some(a) => Some(string_arg(a)?),
                None => None,
            };
            let r = chomp(&t, a.as_deref());
            if name == "chomp!" {
                mutate(recv, r, true)?
            } else {
                s(r)
            }
        }
        "chop" => {
            let mut c = t.clone();
            if c.ends_with("\r\n") {
                c.truncate(c.len() - 2);
            } else {
                c.pop();
            }
            s(c)
        }
        "delete_prefix" => {
            let p = string_arg(&arg(args, 0))?;
            s(t.strip_prefix(p.as_str()).unwrap_or(&t).to_string())
        }
        "delete_suffix" => {
            let p = string_arg(&arg(args, 0))?;
            s(t.strip_suffix(p.as_str()).unwrap_or(&t).to_string())
        }
        "chars" => V::array(t.chars().map(|c| s(c.to_string())).collect()),
        "lines" => {
            let sep = match args.first() {
                Some(a) => string_arg(a)?,
                None => "\n".into(),
            };
            V::array(lines(&t, &sep).into_iter().map(s).collect())
        }
        "each_char" => {
            let Some(b) = blk else { return Ok(None) };
            for c in t.chars() {
                it.yield_blk(b, vec![s(c.to_string())])?;
            }
            recv.clone()
        }
        "each_line" => {
            let Some(b) = blk else { return Ok(None) };
            for l in lines(&t, "\n") {
                it.yield_blk(b, vec![s(l)])?;
            }
            recv.clone()
        }
        "split" => {
            check_args(args, 0, 2)?;
            let limit = match args.get(1) {
                Some(l) => int_arg(l)?,
                None => 0,
            };
            let parts = split(&t, &arg(args, 0), limit)?;
            it.charge(parts.len() * 32)?;
            V::array(parts.into_iter().map(s).collect())
        }
        "gsub" => s(substitute(it, &t, args, blk, true)?),
        "sub" => s(substitute(it, &t, args, blk, false)?),
        "gsub!" => {
            let r = substitute(it, &t, args, blk, true)?;
            mutate(recv, r, true)?
        }
        "sub!" => {
            let r = substitute(it, &t, args, blk, false)?;
            mutate(recv, r, true)?
        }
        "tr" => s(tr(
            &t,
            &string_arg(&arg(args, 0))?,
            &string_arg(&arg(args, 1))?,
            false,
        )),
        "tr_s" => s(tr(
            &t,
            &string_arg(&arg(args, 0))?,
            &string_arg(&arg(args, 1))?,
            true,
        )),
        "delete" => {
            check_args(args, 1, usize::MAX)?;
            let sets = sets(args)?;
            s(t.chars()
                .filter(|c| !in_sets(*c, &sets))
                .collect::<String>())
        }
        "squeeze" | "squeeze!" => {
            let sets = sets(args)?;
            let mut out = String::new();
            let mut last: Option<char> = None;
            for c in t.chars() {
                if last == Some(c) && (sets.is_empty() || in_sets(c, &sets)) {
                    continue;
                }
                out.push(c);
                last = Some(c);
            }
            if name == "squeeze!" {
                mutate(recv, out, true)?
            } else {
                s(out)
            }
        }
        "count" => {
            check_args(args, 1, usize::MAX)?;
            let sets = sets(args)?;
            V::Int(t.chars().filter(|c| in_sets(*c, &sets)).count() as i64)
        }
        "start_with?" => {
            let mut hit = false;
            for a in args {
                hit |= match a {
                    V::Regexp(re) => re
                        .match_at(&t, 0)
                        .map_err(regex_err)?
                        .is_some_and(|m| m.groups[0].is_some_and(|g| g.0 == 0)),
                    other => t.starts_with(string_arg(other)?.as_str()),
                };
            }
            V::Bool(hit)
        }
        "end_with?" => {
            let mut hit = false;
            for a in args {
                hit |= t.ends_with(string_arg(a)?.as_str());
            }
            V::Bool(hit)
        }
        "include?" => {
            check_args(args, 1, 1)?;
            V::Bool(t.contains(string_arg(&args[0])?.as_str()))
        }
        "match" => {
            check_args(args, 1, 2)?;
            let re = pattern(&args[0])?;
            let pos = match args.get(1) {
                Some(p) => int_arg(p)?,
                None => 0,
            };
            let start =
                char_index(&t, pos).map(|c| t.char_indices().nth(c).map_or(t.len(), |(b, _)| b));
            let m = match start {
                Some(b) => re.match_at(&t, b).map_err(regex_err)?,
                None => None,
            };
            match m {
                Some(m) => {
                    let m = Rc::new(m);
                    it.last_match = Some(m.clone());
                    match blk {
                        Some(b) => it.yield_blk(b, vec![V::Match(m)])?,
                        None => V::Match(m),
                    }
                }
                None => {
                    it.last_match = None;
                    V::Nil
                }
            }
        }
        "match?" => {
            check_args(args, 1, 2)?;
            let re = pattern(&args[0])?;
            V::Bool(re.match_at(&t, 0).map_err(regex_err)?.is_some())
        }
        "=~" => {
            check_args(args, 1, 1)?;
            let V::Regexp(re) = &args[0] else {
                return raise(
                    "TypeError",
                    format!(
                        "wrong argument type {} (expected Regexp)",
                        args[0].class_name()
                    ),
                );
            };
            match_pos(it, re, &t)?
        }
        "scan" => {
            check_args(args, 1, 1)?;
            let re = pattern(&args[0])?;
            let ms = re.all(&t, 1_000_000).map_err(regex_err)?;
            let mut out = Vec::new();
            for m in ms {
                let item = if m.groups.len() > 1 {
                    V::array(
                        (1..m.groups.len())
                            .map(|g| m.group(g).map_or(V::Nil, |x| s(x.to_string())))
                            .collect(),
                    )
                } else {
                    s(m.group(0).unwrap_or("").to_string())
                };
                let m = Rc::new(m);
                it.last_match = Some(m);
                match blk {
                    Some(b) => {
                        it.yield_blk(b, vec![item])?;
                    }
                    None => out.push(item),
                }
            }
            if blk.is_some() {
                recv.clone()
            } else {
                V::array(out)
            }
        }
        "[]" | "slice" => index(it, &t, args)?,
        "index" | "rindex" => {
            check_args(args, 1, 2)?;
            let chars: Vec<(usize, char)> = t.char_indices().collect();
            let to_char = |b: usize| {
                chars
                    .iter()
                    .position(|(i, _)| *i == b)
                    .unwrap_or(chars.len())
            };
            let found = match &args[0] {
                V::Regexp(re) => {
                    if name == "index" {
                        re.match_at(&t, 0)
                            .map_err(regex_err)?
                            .and_then(|m| m.groups[0].map(|g| g.0))
                    } else {
                        re.all(&t, 1_000_000)
                            .map_err(regex_err)?
                            .last()
                            .and_then(|m| m.groups[0].map(|g| g.0))
                    }
                }
                other => {
                    let p = string_arg(other)?;
                    if name == "index" {
                        let from = match args.get(1) {
                            Some(f) => char_index(&t, int_arg(f)?)
                                .map(|c| chars.get(c).map_or(t.len(), |x| x.0)),
                            None => Some(0),
                        };
                        from.and_then(|f| t[f..].find(p.as_str()).map(|i| i + f))
                    } else {
                        t.rfind(p.as_str())
                    }
                }
            };
            found.map_or(V::Nil, |b| V::Int(to_char(b) as i64))
        }
        "to_sym" | "intern" => V::sym(&t),
        "inspect" => V::str(super::super::value::inspect(recv)),
        "%" => {
            let list = match &arg(args, 0) {
                V::Array(_) | V::RArr(_) => super::super::value::list(&args[0]),
                other => vec![other.clone()],
            };
            s(super::kernel::format(it, &t, &list)?)
        }
        "reverse" => s(t.chars().rev().collect::<String>()),
        "center" => pad(it, &t, args, b'c')?,
        "ljust" => pad(it, &t, args, b'l')?,
        "rjust" => pad(it, &t, args, b'r')?,
        "ord" => match t.chars().next() {
            Some(c) => V::Int(c as i64),
            None => return raise("ArgumentError", "empty string"),
        },
        "succ" | "next" => s(succ(&t)),
        "casecmp" => {
            let o = string_arg(&arg(args, 0))?;
            V::Int(match t.to_ascii_lowercase().cmp(&o.to_ascii_lowercase()) {
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 1,
            })
        }
        "casecmp?" => {
            let o = string_arg(&arg(args, 0))?;
            V::Bool(t.to_lowercase() == o.to_lowercase())
        }
        "partition" | "rpartition" => {
            let found = match &arg(args, 0) {
                V::Regexp(re) => {
                    let m = if name == "partition" {
                        re.match_at(&t, 0).map_err(regex_err)?
                    } else {
                        re.all(&t, 1_000_000).map_err(regex_err)?.pop()
                    };
                    m.and_then(|m| m.groups[0])
                }
                other => {
                    let p = string_arg(other)?;
                    let i = if name == "partition" {
                        t.find(&p)
                    } else {
                        t.rfind(&p)
                    };
                    i.map(|i| (i, i + p.len()))
                }
            };
            match found {
                Some((a, b)) => V::array(vec![
                    s(t[..a].to_string()),
                    s(t[a..b].to_string()),
                    s(t[b..].to_string()),
                ]),
                None if name == "partition" => V::array(vec![s(t.clone()), s(""), s("")]),
                None => V::array(vec![s(""), s(""), s(t.clone())]),
            }
        }
        "<=>" => match compare(recv, &arg(args, 0)) {
            Some(o) => V::Int(o as i64),
            None => V::Nil,
        },
        "<" | ">" | "<=" | ">=" => {
            let o = super::compare_or_raise(recv, &arg(args, 0))?;
            V::Bool(match name {
                "<" => o.is_lt(),
                ">" => o.is_gt(),
                "<=" => o.is_le(),
                _ => o.is_ge(),
            })
        }
        "between?" => {
            let lo = super::compare_or_raise(recv, &arg(args, 0))?;
            let hi = super::compare_or_raise(recv, &arg(args, 1))?;
            V::Bool(lo.is_ge() && hi.is_le())
        }
        "prepend" => {
            let mut o = Vec::new();
            for a in args {
                o.extend_from_slice(&str_arg(a)?);
            }
            o.extend_from_slice(t.as_bytes());
            *cell.borrow_mut() = o;
            recv.clone()
        }
        "insert" => {
            let i = int_arg(&arg(args, 0))?;
            let o = string_arg(&arg(args, 1))?;
            let n = t.chars().count() as i64;
            let pos = if i < 0 { n + i + 1 } else { i };
            if pos < 0 || pos > n {
                return raise("IndexError", format!("index {i} out of string"));
            }
            let b = t.char_indices().nth(pos as usize).map_or(t.len(), |x| x.0);
            let mut r = t.clone();
            r.insert_str(b, &o);
            mutate(recv, r, false)?
        }
        "unpack1" | "unpack" => {
            return raise("NotImplementedError", "String#unpack is not supported")
        }
        "upto" => {
            let Some(b) = blk else { return Ok(None) };
            let last = string_arg(&arg(args, 0))?;
            let mut cur = t.clone();
            let mut n = 0;
            loop {
                it.yield_blk(b, vec![s(cur.clone())])?;
                if cur == last || cur.len() > last.len() || n > 1_000_000 {
                    break;
                }
                cur = succ(&cur);
                n += 1;
            }
            recv.clone()
        }
        "sum" => V::Int(t.bytes().map(|b| b as i64).sum::<i64>() & 0xffff),
        "each_byte" => {
            let Some(b) = blk else { return Ok(None) };
            for x in t.bytes() {
                it.yield_blk(b, vec![V::Int(x as i64)])?;
            }
            recv.clone()
        }
        "byteslice" => {
            let st = int_arg(&arg(args, 0))?;
            let len = match args.get(1) {
                Some(l) => int_arg(l)?,
                None => 1,
            };
            let b = cell.borrow();
            let n = b.len() as i64;
            let st = if st < 0 { n + st } else { st };
            if st < 0 || st > n || len < 0 {
                V::Nil
            } else {
                let end = (st + len).min(n);
                V::str(b[st as usize..end as usize].to_vec())
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

/// `str =~ re` / `re =~ str`: the character position of the match, and `$~`.
pub fn match_pos<'a>(it: &mut Interp<'a, '_>, re: &Re, t: &str) -> R<'a> {
    match re.match_at(t, 0).map_err(regex_err)? {
        Some(m) => {
            let b = m.groups[0].map_or(0, |g| g.0);
            let pos = t[..b].chars().count();
            it.last_match = Some(Rc::new(m));
            Ok(V::Int(pos as i64))
        }
        None => {
            it.last_match = None;
            Ok(V::Nil)
        }
    }
}

fn lines(t: &str, sep: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = t;
    while !rest.is_empty() {
        match rest.find(sep) {
            Some(i) if !sep.is_empty() => {
                out.push(rest[..i + sep.len()].to_string());
                rest = &rest[i + sep.len()..];
            }
            _ => {
                out.push(rest.to_string());
                break;
            }
        }
    }
    out
}

/// A parsed Integer, charged to the memory budget (`None`: too large to build).
fn big_checked<'a>(it: &mut Interp<'a, '_>, v: Option<V<'a>>) -> Result<V<'a>, Ctl<'a>> {
    match v {
        Some(V::Big(b)) => {
            super::bignum::charge_bits(it, b.bits())?;
            Ok(V::Big(b))
        }
        Some(v) => Ok(v),
        None => super::bignum::charge_bits(it, u64::MAX).map(|_| V::Nil),
    }
}
