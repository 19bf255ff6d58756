//! Ruby values during one evaluation. Record data is borrowed (`Rec`, `RArr`) until a method
//! needs an owned copy, so reading `record["a"]["b"]` copies only the string it returns.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::rc::Rc;

use num_bigint::BigInt;
use num_traits::{FromPrimitive, ToPrimitive, Zero};

use crate::event::{EventTime, Record, Value};
use crate::timefmt::TimeZoneSpec;

use super::regexp::{MatchData, Re};

pub type RStr = Rc<RefCell<Vec<u8>>>;
pub type RArr<'a> = Rc<RefCell<Vec<V<'a>>>>;
pub type RHash<'a> = Rc<RefCell<Hash<'a>>>;

/// An insertion-ordered Ruby Hash with `eql?` keys (small, so a vector).
#[derive(Clone, Default, Debug)]
pub struct Hash<'a> {
    pub pairs: Vec<(V<'a>, V<'a>)>,
    /// `Hash.new(x)`'s default value.
    pub default: Option<V<'a>>,
}

impl<'a> Hash<'a> {
    pub fn get(&self, k: &V<'a>) -> Option<&V<'a>> {
        self.pairs.iter().find(|(x, _)| eql(x, k)).map(|(_, v)| v)
    }
    pub fn insert(&mut self, k: V<'a>, v: V<'a>) {
        // A String key is copied and frozen, as Ruby does.
        let k = match k {
            V::Str(s) => V::Str(Rc::new(RefCell::new(s.borrow().clone()))),
            other => other,
        };
        match self.pairs.iter_mut().find(|(x, _)| eql(x, &k)) {
            Some(slot) => slot.1 = v,
            None => self.pairs.push((k, v)),
        }
    }
    pub fn remove(&mut self, k: &V<'a>) -> Option<V<'a>> {
        let i = self.pairs.iter().position(|(x, _)| eql(x, k))?;
        Some(self.pairs.remove(i).1)
    }
}

#[derive(Clone, Debug)]
pub struct Exc {
    pub class: String,
    pub msg: String,
}

/// The constants the evaluator knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Env,
    File,
    Dir,
    Time,
    Socket,
    IpAddr,
    Json,
    Integer,
    Float,
    String,
    Array,
    Hash,
    Symbol,
    NilClass,
    TrueClass,
    FalseClass,
    Range,
    Regexp,
    MatchData,
    Math,
    Process,
    Enumerator,
    Exception(&'static str),
}

pub const EXCEPTIONS: &[&str] = &[
    "Exception",
    "StandardError",
    "RuntimeError",
    "ArgumentError",
    "TypeError",
    "NameError",
    "NoMethodError",
    "KeyError",
    "IndexError",
    "ZeroDivisionError",
    "RangeError",
    "FloatDomainError",
    "IOError",
    "SystemCallError",
    "RegexpError",
    "FrozenError",
    "StopIteration",
    "LocalJumpError",
    "NotImplementedError",
    "ScriptError",
    "JSON::ParserError",
    "IPAddr::InvalidAddressError",
    "Errno::ENOENT",
    "Errno::EACCES",
    "Errno::EISDIR",
];

/// The superclass chain of an exception class, for `rescue` matching.
pub fn exception_ancestors(class: &str) -> &'static [&'static str] {
    match class {
        "NoMethodError" => &["NoMethodError", "NameError", "StandardError", "Exception"],
        "KeyError" => &["KeyError", "IndexError", "StandardError", "Exception"],
        "StopIteration" => &["StopIteration", "IndexError", "StandardError", "Exception"],
        "FloatDomainError" => &[
            "FloatDomainError",
            "RangeError",
            "StandardError",
            "Exception",
        ],
        "FrozenError" => &["FrozenError", "RuntimeError", "StandardError", "Exception"],
        "Errno::ENOENT" => &[
            "Errno::ENOENT",
            "SystemCallError",
            "StandardError",
            "Exception",
        ],
        "Errno::EACCES" => &[
            "Errno::EACCES",
            "SystemCallError",
            "StandardError",
            "Exception",
        ],
        "Errno::EISDIR" => &[
            "Errno::EISDIR",
            "SystemCallError",
            "StandardError",
            "Exception",
        ],
        "JSON::ParserError" => &["JSON::ParserError", "StandardError", "Exception"],
        "IPAddr::InvalidAddressError" => &[
            "IPAddr::InvalidAddressError",
            "ArgumentError",
            "StandardError",
            "Exception",
        ],
        "NotImplementedError" => &["NotImplementedError", "ScriptError", "Exception"],
        "ScriptError" => &["ScriptError", "Exception"],
        "Exception" => &["Exception"],
        _ => {
            for c in EXCEPTIONS {
                if *c == class {
                    return match *c {
                        "StandardError" => &["StandardError", "Exception"],
                        "RuntimeError" => &["RuntimeError", "StandardError", "Exception"],
                        "ArgumentError" => &["ArgumentError", "StandardError", "Exception"],
                        "TypeError" => &["TypeError", "StandardError", "Exception"],
                        "NameError" => &["NameError", "StandardError", "Exception"],
                        "IndexError" => &["IndexError", "StandardError", "Exception"],
                        "ZeroDivisionError" => &["ZeroDivisionError", "StandardError", "Exception"],
                        "RangeError" => &["RangeError", "StandardError", "Exception"],
                        "IOError" => &["IOError", "StandardError", "Exception"],
                        "SystemCallError" => &["SystemCallError", "StandardError", "Exception"],
                        "RegexpError" => &["RegexpError", "StandardError", "Exception"],
                        "LocalJumpError" => &["LocalJumpError", "StandardError", "Exception"],
                        _ => &["StandardError", "Exception"],
                    };
                }
            }
            &["StandardError", "Exception"]
        }
    }
}

/// An Enumerator: `recv.meth(*args)` not yet given a block (`loop` has no receiver: `recv` is
/// nil). What it yields is computed when it is used (see `methods::enumerator`).
#[derive(Debug)]
pub struct Enumer<'a> {
    pub recv: V<'a>,
    pub meth: String,
    pub args: Vec<V<'a>>,
    /// `next`'s position in `buf`, the packed values computed at the first `next`/`peek`.
    pub pos: Cell<usize>,
    pub buf: RefCell<Option<Rc<Vec<V<'a>>>>>,
}

/// A Ruby `Time`: an instant and the zone it shows itself in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Time {
    pub t: EventTime,
    pub zone: TimeZoneSpec,
}

#[derive(Clone, Debug)]
pub enum V<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    /// An Integer beyond 64 bits (never one that fits an `Int`: see [`int_v`]).
    Big(Rc<BigInt>),
    Float(f64),
    Str(RStr),
    Sym(Rc<str>),
    Array(RArr<'a>),
    Hash(RHash<'a>),
    /// A record (or nested map) read from the event, not copied.
    Rec(&'a Record),
    /// An array read from the event, not copied.
    RArr(&'a [Value]),
    Range(Rc<(V<'a>, V<'a>, bool)>),
    Regexp(std::sync::Arc<Re>),
    /// `File.open(path)`: the path and the content read at open.
    File(Rc<(String, Vec<u8>)>),
    Match(Rc<MatchData>),
    Time(Time),
    IpAddr(Rc<std::net::IpAddr>, u8),
    Class(Class),
    Exception(Rc<Exc>),
    Enum(Rc<Enumer<'a>>),
    /// `use_nil` / `use_default` in a config value.
    UseNil,
    UseDefault,
}

impl<'a> V<'a> {
    pub fn str(s: impl Into<Vec<u8>>) -> V<'a> {
        V::Str(Rc::new(RefCell::new(s.into())))
    }
    pub fn array(v: Vec<V<'a>>) -> V<'a> {
        V::Array(Rc::new(RefCell::new(v)))
    }
    pub fn hash(h: Hash<'a>) -> V<'a> {
        V::Hash(Rc::new(RefCell::new(h)))
    }
    pub fn sym(s: &str) -> V<'a> {
        V::Sym(Rc::from(s))
    }
    pub fn truthy(&self) -> bool {
        !matches!(self, V::Nil | V::Bool(false))
    }

    /// A record value, borrowed where it is a container.
    pub fn from_event(v: &'a Value) -> V<'a> {
        match v {
            Value::Nil => V::Nil,
            Value::Bool(b) => V::Bool(*b),
            Value::Int(i) => V::Int(*i),
            Value::UInt(u) => int_v(BigInt::from(*u)),
            Value::BigInt(d) => match BigInt::parse_bytes(d.as_bytes(), 10) {
                Some(b) => int_v(b),
                None => V::Float(d.parse().unwrap_or(0.0)),
            },
            Value::Float(f) => V::Float(*f),
            Value::Str(s) | Value::Bin(s) => V::str(s.clone()),
            Value::Array(a) => V::RArr(a),
            Value::Map(m) => V::Rec(m),
            Value::Ext(..) => V::Nil,
        }
    }

    /// An owned copy of a borrowed container (other values unchanged).
    pub fn owned(self) -> V<'a> {
        match self {
            V::Rec(r) => {
                let mut h = Hash::default();
                for (k, v) in r.iter() {
                    h.pairs.push((V::str(k.to_vec()), V::from_event(v)));
                }
                V::hash(h)
            }
            V::RArr(a) => V::array(a.iter().map(V::from_event).collect()),
            other => other,
        }
    }

    pub fn class_name(&self) -> String {
        match self {
            V::Nil | V::UseNil | V::UseDefault => "NilClass".into(),
            V::Bool(true) => "TrueClass".into(),
            V::Bool(false) => "FalseClass".into(),
            V::Int(_) | V::Big(_) => "Integer".into(),
            V::Float(_) => "Float".into(),
            V::Str(_) => "String".into(),
            V::Sym(_) => "Symbol".into(),
            V::Array(_) | V::RArr(_) => "Array".into(),
            V::Hash(_) | V::Rec(_) => "Hash".into(),
            V::Range(_) => "Range".into(),
            V::Regexp(_) => "Regexp".into(),
            V::Match(_) => "MatchData".into(),
            V::Time(_) => "Time".into(),
            V::IpAddr(..) => "IPAddr".into(),
            V::File(_) => "File".into(),
            V::Class(Class::Env) => "Object".into(),
            V::Class(Class::Math) | V::Class(Class::Process) | V::Class(Class::Json) => {
                "Module".into()
            }
            V::Class(_) => "Class".into(),
            V::Exception(e) => e.class.clone(),
            V::Enum(_) => "Enumerator".into(),
        }
    }

    /// The receiver as Ruby's NoMethodError message names it (`nil:NilClass`, `"x":String`).
    pub fn describe(&self) -> String {
        match self {
            V::Nil | V::UseNil | V::UseDefault => "nil:NilClass".into(),
            V::Bool(b) => format!("{b}:{}", self.class_name()),
            V::Class(c) => class_const_name(*c).to_string(),
            V::Exception(_) | V::Time(_) | V::IpAddr(..) | V::Match(_) => {
                format!("an instance of {}", self.class_name())
            }
            // An inspect that starts with `#` is shown without the class.
            V::Enum(_) => {
                let s = String::from_utf8_lossy(&inspect(self)).into_owned();
                if s.len() > 65 {
                    "an instance of Enumerator".into()
                } else {
                    s
                }
            }
            other => {
                let s = String::from_utf8_lossy(&inspect(other)).into_owned();
                if s.len() > 65 {
                    format!("an instance of {}", self.class_name())
                } else {
                    format!("{s}:{}", self.class_name())
                }
            }
        }
    }
}

pub fn class_const_name(c: Class) -> &'static str {
    match c {
        Class::Env => "ENV",
        Class::File => "File",
        Class::Dir => "Dir",
        Class::Time => "Time",
        Class::Socket => "Socket",
        Class::IpAddr => "IPAddr",
        Class::Json => "JSON",
        Class::Integer => "Integer",
        Class::Float => "Float",
        Class::String => "String",
        Class::Array => "Array",
        Class::Hash => "Hash",
        Class::Symbol => "Symbol",
        Class::NilClass => "NilClass",
        Class::TrueClass => "TrueClass",
        Class::FalseClass => "FalseClass",
        Class::Range => "Range",
        Class::Regexp => "Regexp",
        Class::MatchData => "MatchData",
        Class::Math => "Math",
        Class::Process => "Process",
        Class::Enumerator => "Enumerator",
        Class::Exception(n) => n,
    }
}

/// `eql?`: same class and value (1 and 1.0 differ).
pub fn eql(a: &V<'_>, b: &V<'_>) -> bool {
    match (a, b) {
        (V::Int(x), V::Int(y)) => x == y,
        (V::Float(x), V::Float(y)) => x == y,
        (V::Int(_) | V::Big(_), V::Float(_)) | (V::Float(_), V::Int(_) | V::Big(_)) => false,
        _ => equal(a, b),
    }
}

/// `==`.
pub fn equal(a: &V<'_>, b: &V<'_>) -> bool {
    match (a, b) {
        (V::Nil | V::UseNil | V::UseDefault, V::Nil | V::UseNil | V::UseDefault) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Int(x), V::Int(y)) => x == y,
        (V::Float(x), V::Float(y)) => x == y,
        (V::Int(_) | V::Big(_), V::Float(y)) => int_cmp_float(a, *y) == Some(Ordering::Equal),
        (V::Float(x), V::Int(_) | V::Big(_)) => int_cmp_float(b, *x) == Some(Ordering::Equal),
        (V::Big(x), V::Big(y)) => x == y,
        (V::Str(x), V::Str(y)) => Rc::ptr_eq(x, y) || *x.borrow() == *y.borrow(),
        (V::Sym(x), V::Sym(y)) => x == y,
        (V::Time(x), V::Time(y)) => x.t == y.t,
        (V::Class(x), V::Class(y)) => x == y,
        (V::Range(x), V::Range(y)) => x.2 == y.2 && equal(&x.0, &y.0) && equal(&x.1, &y.1),
        (V::Regexp(x), V::Regexp(y)) => x.source == y.source && x.flags == y.flags,
        (V::IpAddr(x, m), V::IpAddr(y, n)) => x == y && m == n,
        (V::Enum(x), V::Enum(y)) => {
            std::ptr::eq(Rc::as_ptr(x).cast::<u8>(), Rc::as_ptr(y).cast::<u8>())
        }
        (V::Array(_) | V::RArr(_), V::Array(_) | V::RArr(_)) => {
            let (x, y) = (list(a), list(b));
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| equal(p, q))
        }
        (V::Hash(_) | V::Rec(_), V::Hash(_) | V::Rec(_)) => {
            let (x, y) = (pairs(a), pairs(b));
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.iter()
                        .find(|(k2, _)| eql(k, k2))
                        .is_some_and(|(_, v2)| equal(v, v2))
                })
        }
        _ => false,
    }
}

/// The elements of an Array value (copied handles).
pub fn list<'a>(v: &V<'a>) -> Vec<V<'a>> {
    match v {
        V::Array(a) => a.borrow().clone(),
        V::RArr(a) => a.iter().map(V::from_event).collect(),
        _ => Vec::new(),
    }
}

/// The pairs of a Hash value (copied handles).
pub fn pairs<'a>(v: &V<'a>) -> Vec<(V<'a>, V<'a>)> {
    match v {
        V::Hash(h) => h.borrow().pairs.clone(),
        V::Rec(r) => r
            .iter()
            .map(|(k, v)| (V::str(k.to_vec()), V::from_event(v)))
            .collect(),
        _ => Vec::new(),
    }
}

pub fn write_float(out: &mut Vec<u8>, f: f64) {
    crate::json::encode::write_ruby_float(out, f);
}

/// Ruby's `to_s`.
pub fn to_s(v: &V<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write_to_s(&mut out, v);
    out
}

pub fn write_to_s(out: &mut Vec<u8>, v: &V<'_>) {
    match v {
        V::Nil | V::UseNil | V::UseDefault => {}
        V::Str(s) => out.extend_from_slice(&s.borrow()),
        V::Sym(s) => out.extend_from_slice(s.as_bytes()),
        V::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        V::Big(b) => out.extend_from_slice(b.to_string().as_bytes()),
        V::Float(f) => write_float(out, *f),
        V::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        V::Time(t) => out.extend_from_slice(super::methods::time::to_s(t).as_bytes()),
        V::IpAddr(ip, _) => out.extend_from_slice(ip.to_string().as_bytes()),
        V::Class(c) => out.extend_from_slice(class_const_name(*c).as_bytes()),
        V::Exception(e) => out.extend_from_slice(e.msg.as_bytes()),
        V::Regexp(r) => out.extend_from_slice(r.to_s().as_bytes()),
        V::Match(m) => {
            if let Some(s) = m.group(0) {
                out.extend_from_slice(s.as_bytes())
            }
        }
        V::Range(r) => {
            write_to_s(out, &r.0);
            out.extend_from_slice(if r.2 { b"..." } else { b".." });
            write_to_s(out, &r.1);
        }
        other => write_inspect(out, other),
    }
}

pub fn inspect(v: &V<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write_inspect(&mut out, v);
    out
}

pub fn write_inspect(out: &mut Vec<u8>, v: &V<'_>) {
    match v {
        V::Nil | V::UseNil | V::UseDefault => out.extend_from_slice(b"nil"),
        V::Str(s) => write_inspect_str(out, &s.borrow()),
        V::Sym(s) => {
            out.push(b':');
            let plain = s
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && s.chars().enumerate().all(|(i, c)| {
                    c.is_alphanumeric()
                        || c == '_'
                        || ((c == '?' || c == '!' || c == '=') && i + 1 == s.chars().count())
                });
            if plain {
                out.extend_from_slice(s.as_bytes());
            } else {
                write_inspect_str(out, s.as_bytes());
            }
        }
        V::Array(_) | V::RArr(_) => {
            out.push(b'[');
            for (i, x) in list(v).iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_inspect(out, x);
            }
            out.push(b']');
        }
        V::Hash(_) | V::Rec(_) => {
            out.push(b'{');
            for (i, (k, x)) in pairs(v).iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_inspect(out, k);
                out.extend_from_slice(b"=>");
                write_inspect(out, x);
            }
            out.push(b'}');
        }
        V::Range(r) => {
            write_inspect(out, &r.0);
            out.extend_from_slice(if r.2 { b"..." } else { b".." });
            write_inspect(out, &r.1);
        }
        V::Regexp(r) => out.extend_from_slice(r.inspect().as_bytes()),
        V::Time(t) => out.extend_from_slice(super::methods::time::inspect(t).as_bytes()),
        V::IpAddr(ip, m) => out.extend_from_slice(
            format!(
                "#<IPAddr: {}:{}/{}>",
                if ip.is_ipv4() { "IPv4" } else { "IPv6" },
                ip,
                super::methods::kernel::mask_string(ip, *m)
            )
            .as_bytes(),
        ),
        V::Exception(e) => out.extend_from_slice(format!("#<{}: {}>", e.class, e.msg).as_bytes()),
        V::Match(m) => out.extend_from_slice(m.inspect().as_bytes()),
        V::Enum(e) => {
            out.extend_from_slice(b"#<Enumerator: ");
            match (&e.recv, e.meth.as_str()) {
                (V::Nil, "loop") => out.extend_from_slice(b"main"),
                (r, _) => write_inspect(out, r),
            }
            out.push(b':');
            out.extend_from_slice(e.meth.as_bytes());
            if !e.args.is_empty() {
                out.push(b'(');
                for (i, a) in e.args.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    write_inspect(out, a);
                }
                out.push(b')');
            }
            out.push(b'>');
        }
        other => write_to_s(out, other),
    }
}

/// `String#inspect` for UTF-8 text.
pub fn write_inspect_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let text = String::from_utf8_lossy(s);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\u{b}' => out.extend_from_slice(b"\\v"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{7}' => out.extend_from_slice(b"\\a"),
            '\u{1b}' => out.extend_from_slice(b"\\e"),
            '#' => {
                if matches!(chars.peek(), Some('{') | Some('$') | Some('@')) {
                    out.push(b'\\');
                }
                out.push(b'#');
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.extend_from_slice(format!("\\x{:02X}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// An evaluation result as a record value. Hash keys become their `to_s`.
pub fn to_event(v: &V<'_>) -> Value {
    match v {
        V::Nil | V::UseNil | V::UseDefault => Value::Nil,
        V::Bool(b) => Value::Bool(*b),
        V::Int(i) => Value::Int(*i),
        V::Big(b) => match b.to_u64() {
            Some(u) => Value::UInt(u),
            None => Value::BigInt(b.to_string()),
        },
        V::Float(f) => Value::Float(*f),
        V::Str(s) => Value::Str(s.borrow().clone()),
        V::Rec(r) => Value::Map((*r).clone()),
        V::RArr(a) => Value::Array(a.to_vec()),
        V::Array(a) => Value::Array(a.borrow().iter().map(to_event).collect()),
        V::Hash(h) => {
            let h = h.borrow();
            let mut r = Record::with_capacity(h.pairs.len());
            for (k, x) in &h.pairs {
                r.insert(to_s(k), to_event(x));
            }
            Value::Map(r)
        }
        other => Value::Str(to_s(other)),
    }
}

/// [`to_event`] of a value no longer needed: an unshared String moves its bytes.
pub fn into_event(v: V<'_>) -> Value {
    match v {
        V::Str(s) => match Rc::try_unwrap(s) {
            Ok(cell) => Value::Str(cell.into_inner()),
            Err(s) => Value::Str(s.borrow().clone()),
        },
        other => to_event(&other),
    }
}

/// The largest Integer built, in bits (about 78,900 decimal digits). Printing or parsing an
/// Integer costs time quadratic in its size, so the limit is far below what the byte budget
/// alone would allow; a larger one stops the evaluation as the memory budget does.
pub const MAX_INT_BITS: u64 = 1 << 18;

/// Ruby's `String#to_i` (base 10), saturated to 64 bits.
pub fn str_to_i(s: &[u8]) -> i64 {
    match str_to_int(s, 10) {
        Some(V::Int(i)) => i,
        Some(V::Big(b)) if b.sign() == num_bigint::Sign::Minus => i64::MIN,
        _ => i64::MAX,
    }
}

/// `String#to_i(radix)` when the result fits 64 bits; `None` when it does not.
pub fn str_to_i_radix(s: &[u8], radix: u32) -> Option<i64> {
    match str_to_int(s, radix) {
        Some(V::Int(i)) => Some(i),
        _ => None,
    }
}

/// Ruby's `String#to_i(radix)`: the leading digits (with `_` between them), any size; `None`
/// when the Integer would exceed [`MAX_INT_BITS`].
pub fn str_to_int<'a>(s: &[u8], radix: u32) -> Option<V<'a>> {
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        neg = s[i] == b'-';
        i += 1;
    }
    if radix == 16 && s[i..].len() >= 2 && (s[i..].starts_with(b"0x") || s[i..].starts_with(b"0X"))
    {
        i += 2;
    }
    let start = i;
    let mut v: i64 = 0;
    let mut overflow = false;
    let mut prev_digit = false;
    while i < s.len() {
        let c = s[i];
        match (c as char).to_digit(radix) {
            Some(d) => {
                if !overflow {
                    match v
                        .checked_mul(radix as i64)
                        .and_then(|x| x.checked_add(d as i64))
                    {
                        Some(x) => v = x,
                        None => overflow = true,
                    }
                }
                prev_digit = true;
            }
            None if c == b'_' && prev_digit => prev_digit = false,
            None => break,
        }
        i += 1;
    }
    if !overflow {
        return Some(V::Int(if neg { -v } else { v }));
    }
    // Beyond 64 bits (rare): the digits again, into a BigInt.
    let digits: Vec<u8> = s[start..i].iter().copied().filter(|c| *c != b'_').collect();
    if digits.len() as f64 * (radix as f64).log2() > MAX_INT_BITS as f64 {
        return None;
    }
    Some(match BigInt::parse_bytes(&digits, radix) {
        Some(b) => int_v(if neg { -b } else { b }),
        None => V::Int(0),
    })
}

/// An Integer value: an `Int` when it fits 64 bits, else a `Big`.
pub fn int_v<'a>(b: BigInt) -> V<'a> {
    match b.to_i64() {
        Some(i) => V::Int(i),
        None => V::Big(Rc::new(b)),
    }
}

/// An Integer value as a BigInt (`None` for other values).
pub fn big_of(v: &V<'_>) -> Option<BigInt> {
    match v {
        V::Int(i) => Some(BigInt::from(*i)),
        V::Big(b) => Some((**b).clone()),
        _ => None,
    }
}

/// An Integer's value as a Float (beyond the Float range: an infinity, as Ruby gives).
pub fn int_to_f(v: &V<'_>) -> f64 {
    match v {
        V::Int(i) => *i as f64,
        V::Big(b) => b
            .to_f64()
            .unwrap_or(if b.sign() == num_bigint::Sign::Minus {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }),
        _ => 0.0,
    }
}

/// Compares an Integer with a Float exactly, as Ruby does (`2**53 + 1 > 2.0**53`); `None`
/// for NaN.
pub fn int_cmp_float(v: &V<'_>, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f.is_infinite() {
        return Some(if f > 0.0 {
            Ordering::Less
        } else {
            Ordering::Greater
        });
    }
    if let V::Int(i) = v {
        if i.unsigned_abs() <= 1 << 53 {
            return (*i as f64).partial_cmp(&f);
        }
    }
    let x = big_of(v)?;
    let t = f.trunc();
    let tb = BigInt::from_f64(t).unwrap_or_else(BigInt::zero);
    match x.cmp(&tb) {
        Ordering::Equal => Some(if f > t {
            Ordering::Less
        } else if f < t {
            Ordering::Greater
        } else {
            Ordering::Equal
        }),
        o => Some(o),
    }
}

/// Ruby's `String#to_f`: the longest numeric prefix, else 0.0.
pub fn str_to_f(s: &[u8]) -> f64 {
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    let start = i;
    let mut text = String::new();
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        text.push(s[i] as char);
        i += 1;
    }
    let mut digits = 0;
    let mut prev_digit = false;
    while i < s.len() {
        if s[i].is_ascii_digit() {
            text.push(s[i] as char);
            digits += 1;
            prev_digit = true;
        } else if s[i] == b'_' && prev_digit && i + 1 < s.len() && s[i + 1].is_ascii_digit() {
            prev_digit = false;
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return 0.0;
    }
    if i + 1 < s.len() && s[i] == b'.' && s[i + 1].is_ascii_digit() {
        text.push('.');
        i += 1;
        while i < s.len()
            && (s[i].is_ascii_digit()
                || (s[i] == b'_' && i + 1 < s.len() && s[i + 1].is_ascii_digit()))
        {
            if s[i] != b'_' {
                text.push(s[i] as char);
            }
            i += 1;
        }
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        let mut exp = String::from("e");
        if j < s.len() && (s[j] == b'-' || s[j] == b'+') {
            exp.push(s[j] as char);
            j += 1;
        }
        let ds = j;
        while j < s.len() && s[j].is_ascii_digit() {
            exp.push(s[j] as char);
            j += 1;
        }
        if j > ds {
            text.push_str(&exp);
        }
    }
    let _ = start;
    text.parse().unwrap_or(0.0)
}
