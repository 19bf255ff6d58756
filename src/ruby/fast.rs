//! Direct evaluation of the expression shapes per-record configs use most (`record["a"]["b"]`,
//! `record.dig(...)`, `tag_parts[N]`, `a || b`, `x.to_i >= N ? "a" : "b"`, interpolation,
//! `.to_s`/`.upcase`/`.gsub(/re/, "lit")`, `Time.at(time).utc.strftime("...")`): they read the
//! event's values in place and build the result Value once, without the general evaluator's
//! boxed values. Anything outside what a shape handles (another type, invalid UTF-8, a huge
//! result) answers `None` before any effect, and the general evaluator runs instead, so the
//! result is always the general evaluator's.

use std::sync::{Arc, Mutex};

use crate::event::{EventTime, Record, Value};
use crate::timefmt::{Strftime, TimeZoneSpec};

use super::compile::{Node, K};
use super::regexp::Re;
use super::value::{str_to_i_radix, write_to_s, Class, Time, V};

/// Results above this size go through the general evaluator (and its memory budget).
const MAX_OUT: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

pub enum Fast {
    Str(Vec<u8>),
    Int(i64),
    Nil,
    Bool(bool),
    Local(usize),
    Index(Box<Fast>, Vec<u8>),
    /// `local["a"]["b"]...` on a record local, walked in one loop.
    Path(usize, Vec<Vec<u8>>),
    At(Box<Fast>, i64),
    Dig(Box<Fast>, Vec<Vec<u8>>),
    Or(Box<Fast>, Box<Fast>),
    And(Box<Fast>, Box<Fast>),
    Not(Box<Fast>),
    If(Box<Fast>, Box<Fast>, Box<Fast>),
    Cmp(Box<Fast>, Cmp, Box<Fast>),
    ToS(Box<Fast>),
    ToI(Box<Fast>),
    Upcase(Box<Fast>),
    Downcase(Box<Fast>),
    Sub {
        s: Box<Fast>,
        re: Arc<Re>,
        repl: Vec<u8>,
        global: bool,
    },
    Interp(Vec<Fast>),
    TimeAt(Box<Fast>),
    Zone(Box<Fast>, TimeZoneSpec),
    Strftime(Box<Fast>, Box<Strf>),
    /// `x&.m`: nil when `x` is nil, else the call (which reads `x` again).
    Safe(Box<Fast>, Box<Fast>),
}

/// A compiled strftime format and the last instant it formatted (events come in bursts
/// with the same second).
pub struct Strf {
    fmt: Strftime,
    last: Mutex<Option<(EventTime, TimeZoneSpec, Vec<u8>)>>,
}

impl std::fmt::Debug for Fast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fast")
    }
}

/// A value during direct evaluation: borrowed from the event where possible.
#[derive(Clone)]
enum F<'a> {
    Ref(&'a Value),
    Rec(&'a Record),
    Arr(&'a [Value]),
    Own(Value),
    Time(Time),
}

const NIL: F<'static> = F::Own(Value::Nil);

fn truthy(v: &F<'_>) -> bool {
    !matches!(
        v,
        F::Ref(Value::Nil | Value::Bool(false) | Value::Ext(..))
            | F::Own(Value::Nil | Value::Bool(false))
    )
}

/// The bytes of a String value.
fn str_of<'b>(v: &'b F<'_>) -> Option<&'b [u8]> {
    match v {
        F::Ref(Value::Str(s) | Value::Bin(s)) | F::Own(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn int_of(v: &F<'_>) -> Option<i64> {
    match v {
        F::Ref(Value::Int(i)) | F::Own(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

/// Appends `v.to_s` as Ruby writes it (None: a type left to the general evaluator).
fn write_s(out: &mut Vec<u8>, v: &F<'_>) -> Option<()> {
    match v {
        F::Ref(Value::Str(s) | Value::Bin(s)) | F::Own(Value::Str(s)) => out.extend_from_slice(s),
        F::Ref(Value::Nil) | F::Own(Value::Nil) => {}
        F::Ref(Value::Int(i)) | F::Own(Value::Int(i)) => {
            let mut b = itoa_buf(*i);
            out.append(&mut b)
        }
        F::Ref(Value::Float(x)) | F::Own(Value::Float(x)) => write_to_s(out, &V::Float(*x)),
        F::Ref(Value::Bool(b)) | F::Own(Value::Bool(b)) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" })
        }
        F::Time(t) => out.extend_from_slice(super::methods::time::to_s(t).as_bytes()),
        _ => return None,
    }
    Some(())
}

fn itoa_buf(i: i64) -> Vec<u8> {
    i.to_string().into_bytes()
}

/// The event Value the general evaluator would give for `v` (`to_event(from_event(v))`).
fn out(v: F<'_>) -> Option<Value> {
    Some(match v {
        F::Own(v) => v,
        F::Ref(v) => match v {
            Value::Bin(s) => Value::Str(s.clone()),
            Value::UInt(_) | Value::BigInt(_) | Value::Ext(..) => return None,
            other => other.clone(),
        },
        F::Rec(r) => Value::Map(r.clone()),
        F::Arr(a) => Value::Array(a.to_vec()),
        F::Time(t) => Value::Str(super::methods::time::to_s(&t).into_bytes()),
    })
}

impl Fast {
    /// The direct form of `n`, if every part of it has one. `npre`: the predefined locals.
    pub fn build(n: &Node, npre: usize) -> Option<Fast> {
        let b = |x: &Node| Fast::build(x, npre).map(Box::new);
        Some(match &n.kind {
            K::Str(s) => Fast::Str(s.clone()),
            K::Int(i) => Fast::Int(*i),
            K::Nil => Fast::Nil,
            K::True => Fast::Bool(true),
            K::False => Fast::Bool(false),
            K::LVar(s) if *s < npre => Fast::Local(*s),
            K::IndexStr(r, k) => match Fast::build(r, npre)? {
                Fast::Local(s) => Fast::Path(s, vec![k.clone()]),
                Fast::Path(s, mut keys) => {
                    keys.push(k.clone());
                    Fast::Path(s, keys)
                }
                other => Fast::Index(Box::new(other), k.clone()),
            },
            K::Or(x, y) => Fast::Or(b(x)?, b(y)?),
            K::And(x, y) => Fast::And(b(x)?, b(y)?),
            K::Not(x) => Fast::Not(b(x)?),
            K::If(c, t, f) => Fast::If(b(c)?, b(t)?, b(f)?),
            K::DStr(parts) => Fast::Interp(
                parts
                    .iter()
                    .map(|p| Fast::build(p, npre))
                    .collect::<Option<Vec<_>>>()?,
            ),
            K::Call(c) => {
                if c.block.is_some() {
                    return None;
                }
                let recv = c.recv.as_ref()?;
                let call = Fast::call(recv, &c.name, &c.args, npre)?;
                if c.safe {
                    Fast::Safe(b(recv)?, Box::new(call))
                } else {
                    call
                }
            }
            _ => return None,
        })
    }

    fn call(recv: &Node, name: &str, args: &[Node], npre: usize) -> Option<Fast> {
        let r = || Fast::build(recv, npre).map(Box::new);
        Some(match (name, args) {
            ("at", [x]) if matches!(recv.kind, K::Const(Class::Time)) => {
                Fast::TimeAt(Box::new(Fast::build(x, npre)?))
            }
            ("[]", [a]) => match &a.kind {
                K::Int(i) => Fast::At(r()?, *i),
                K::Str(k) => Fast::Index(r()?, k.clone()),
                _ => return None,
            },
            ("dig", keys) if !keys.is_empty() => {
                let mut ks = Vec::new();
                for k in keys {
                    match &k.kind {
                        K::Str(s) => ks.push(s.clone()),
                        _ => return None,
                    }
                }
                Fast::Dig(r()?, ks)
            }
            (op @ ("<" | "<=" | ">" | ">=" | "==" | "!="), [x]) => {
                let op = match op {
                    "<" => Cmp::Lt,
                    "<=" => Cmp::Le,
                    ">" => Cmp::Gt,
                    ">=" => Cmp::Ge,
                    "==" => Cmp::Eq,
                    _ => Cmp::Ne,
                };
                Fast::Cmp(r()?, op, Box::new(Fast::build(x, npre)?))
            }
            ("to_s", []) => Fast::ToS(r()?),
            ("to_i", []) => Fast::ToI(r()?),
            ("upcase", []) => Fast::Upcase(r()?),
            ("downcase", []) => Fast::Downcase(r()?),
            ("utc" | "getutc" | "gmtime" | "getgm", []) => Fast::Zone(r()?, TimeZoneSpec::Utc),
            ("localtime" | "getlocal", []) => Fast::Zone(r()?, TimeZoneSpec::Local),
            ("strftime", [f]) => match &f.kind {
                K::Str(f) => Fast::Strftime(
                    r()?,
                    Box::new(Strf {
                        fmt: Strftime::new(std::str::from_utf8(f).ok()?),
                        last: Mutex::new(None),
                    }),
                ),
                _ => return None,
            },
            (g @ ("gsub" | "sub"), [p, rep]) => match (&p.kind, &rep.kind) {
                (K::Regex(re), K::Str(repl)) if !repl.contains(&b'\\') => Fast::Sub {
                    s: r()?,
                    re: re.clone(),
                    repl: repl.clone(),
                    global: g == "gsub",
                },
                _ => return None,
            },
            _ => return None,
        })
    }

    /// The expression's value as an event Value, or None to use the general evaluator.
    pub fn run(&self, locals: &[V<'_>]) -> Option<Value> {
        out(self.eval(locals)?)
    }

    fn eval<'a>(&self, locals: &[V<'a>]) -> Option<F<'a>> {
        Some(match self {
            Fast::Str(s) => F::Own(Value::Str(s.clone())),
            Fast::Int(i) => F::Own(Value::Int(*i)),
            Fast::Nil => NIL,
            Fast::Bool(b) => F::Own(Value::Bool(*b)),
            Fast::Local(s) => match locals.get(*s)? {
                V::Rec(r) => F::Rec(r),
                V::RArr(a) => F::Arr(a),
                V::Nil => NIL,
                V::Int(i) => F::Own(Value::Int(*i)),
                V::Str(s) => F::Own(Value::Str(s.borrow().clone())),
                V::Time(t) => F::Time(*t),
                _ => return None,
            },
            Fast::Path(slot, keys) => {
                let V::Rec(r) = locals.get(*slot)? else {
                    return None;
                };
                let mut cur: &'a Record = r;
                let last = keys.len() - 1;
                for k in &keys[..last] {
                    match cur.get(k.as_slice()) {
                        Some(Value::Map(m)) => cur = m,
                        _ => return None,
                    }
                }
                cur.get(keys[last].as_slice()).map_or(NIL, F::Ref)
            }
            Fast::Index(x, k) => match x.eval(locals)? {
                F::Rec(r) | F::Ref(Value::Map(r)) => r.get(k.as_slice()).map_or(NIL, F::Ref),
                _ => return None,
            },
            Fast::At(x, i) => match x.eval(locals)? {
                F::Arr(a) => at(a, *i),
                F::Ref(Value::Array(a)) => at(a, *i),
                _ => return None,
            },
            Fast::Dig(x, keys) => {
                let mut cur = x.eval(locals)?;
                for k in keys {
                    cur = match cur {
                        F::Rec(r) | F::Ref(Value::Map(r)) => {
                            r.get(k.as_slice()).map_or(NIL, F::Ref)
                        }
                        F::Ref(Value::Nil) | F::Own(Value::Nil) => return Some(NIL),
                        _ => return None,
                    };
                }
                cur
            }
            Fast::Or(a, b) => {
                let l = a.eval(locals)?;
                if truthy(&l) {
                    l
                } else {
                    b.eval(locals)?
                }
            }
            Fast::And(a, b) => {
                let l = a.eval(locals)?;
                if truthy(&l) {
                    b.eval(locals)?
                } else {
                    l
                }
            }
            Fast::Not(a) => F::Own(Value::Bool(!truthy(&a.eval(locals)?))),
            Fast::If(c, t, f) => {
                if truthy(&c.eval(locals)?) {
                    t.eval(locals)?
                } else {
                    f.eval(locals)?
                }
            }
            Fast::Cmp(a, op, b) => {
                let l = a.eval(locals)?;
                let r = b.eval(locals)?;
                let ord = match (int_of(&l), int_of(&r)) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    _ => match (str_of(&l), str_of(&r), op) {
                        (Some(x), Some(y), Cmp::Eq | Cmp::Ne) => x.cmp(y),
                        _ => return None,
                    },
                };
                use std::cmp::Ordering::*;
                F::Own(Value::Bool(match op {
                    Cmp::Lt => ord == Less,
                    Cmp::Le => ord != Greater,
                    Cmp::Gt => ord == Greater,
                    Cmp::Ge => ord != Less,
                    Cmp::Eq => ord == Equal,
                    Cmp::Ne => ord != Equal,
                }))
            }
            Fast::ToS(x) => {
                let v = x.eval(locals)?;
                if let F::Ref(Value::Str(_)) | F::Own(Value::Str(_)) = v {
                    v
                } else {
                    let mut b = Vec::new();
                    write_s(&mut b, &v)?;
                    F::Own(Value::Str(b))
                }
            }
            Fast::ToI(x) => {
                let v = x.eval(locals)?;
                F::Own(Value::Int(match &v {
                    F::Ref(Value::Int(i)) | F::Own(Value::Int(i)) => *i,
                    F::Ref(Value::Nil) | F::Own(Value::Nil) => 0,
                    F::Time(t) => t.t.sec,
                    _ => str_to_i_radix(str_of(&v)?, 10)?,
                }))
            }
            Fast::Upcase(x) | Fast::Downcase(x) => {
                let v = x.eval(locals)?;
                let s = str_of(&v)?;
                if !s.is_ascii() {
                    return None;
                }
                F::Own(Value::Str(if matches!(self, Fast::Upcase(_)) {
                    s.to_ascii_uppercase()
                } else {
                    s.to_ascii_lowercase()
                }))
            }
            Fast::Sub {
                s,
                re,
                repl,
                global,
            } => {
                let v = s.eval(locals)?;
                let b = str_of(&v)?;
                let t = std::str::from_utf8(b).ok()?;
                let simple = re.simple.as_ref().filter(|_| b.is_ascii());
                let mut o = Vec::with_capacity(t.len());
                let (mut pos, mut last, mut n) = (0, 0, 0);
                while pos <= t.len() {
                    let found = match simple {
                        Some(s) => Ok(s.find(t.as_bytes(), pos)),
                        None => re.find_at(t, pos),
                    };
                    let (ms, me) = match found {
                        Ok(Some(m)) => m,
                        Ok(None) => break,
                        Err(_) => return None,
                    };
                    n += 1;
                    if n > 100_000 {
                        return None;
                    }
                    o.extend_from_slice(&t.as_bytes()[last..ms]);
                    o.extend_from_slice(repl);
                    if o.len() > MAX_OUT {
                        return None;
                    }
                    last = me;
                    pos = if me == ms {
                        me + t[me..].chars().next().map_or(1, char::len_utf8)
                    } else {
                        me
                    };
                    if !global {
                        break;
                    }
                }
                o.extend_from_slice(&t.as_bytes()[last..]);
                F::Own(Value::Str(o))
            }
            Fast::Interp(parts) => {
                let mut o = Vec::new();
                for p in parts {
                    match p {
                        Fast::Str(s) => o.extend_from_slice(s),
                        other => write_s(&mut o, &other.eval(locals)?)?,
                    }
                }
                if o.len() > MAX_OUT {
                    return None;
                }
                F::Own(Value::Str(o))
            }
            Fast::TimeAt(x) => match x.eval(locals)? {
                F::Time(t) => F::Time(Time {
                    t: t.t,
                    zone: TimeZoneSpec::Local,
                }),
                F::Ref(&Value::Int(i)) | F::Own(Value::Int(i)) => F::Time(Time {
                    t: EventTime::new(i, 0),
                    zone: TimeZoneSpec::Local,
                }),
                _ => return None,
            },
            Fast::Zone(x, z) => match x.eval(locals)? {
                F::Time(t) => F::Time(Time { t: t.t, zone: *z }),
                _ => return None,
            },
            Fast::Strftime(x, f) => match x.eval(locals)? {
                F::Time(t) => F::Own(Value::Str(f.format(&t))),
                _ => return None,
            },
            Fast::Safe(r, call) => {
                let v = r.eval(locals)?;
                if matches!(v, F::Ref(Value::Nil) | F::Own(Value::Nil)) {
                    NIL
                } else {
                    call.eval(locals)?
                }
            }
        })
    }
}

/// `a[i]` with Ruby's negative indexes.
fn at(a: &[Value], i: i64) -> F<'_> {
    let idx = if i < 0 { a.len() as i64 + i } else { i };
    if idx < 0 {
        NIL
    } else {
        a.get(idx as usize).map_or(NIL, F::Ref)
    }
}

impl Strf {
    fn format(&self, t: &Time) -> Vec<u8> {
        if let Ok(last) = self.last.lock() {
            if let Some((lt, lz, s)) = last.as_ref() {
                if *lt == t.t && *lz == t.zone {
                    return s.clone();
                }
            }
        }
        let mut o = Vec::with_capacity(32);
        self.fmt.format_into(t.t, &t.zone, &mut o);
        let o = match String::from_utf8(o) {
            Ok(s) => s.into_bytes(),
            Err(e) => String::from_utf8_lossy(e.as_bytes())
                .into_owned()
                .into_bytes(),
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some((t.t, t.zone, o.clone()));
        }
        o
    }
}
