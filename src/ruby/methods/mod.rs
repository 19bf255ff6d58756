//! The core-library methods, one file per class. `dispatch` tries the receiver's class, then
//! the methods every object has; a name no class knows is refused at compile time
//! (`known_method`), a name this receiver lacks raises NoMethodError as Ruby does.

pub mod array;
pub mod bignum;
pub mod enumerator;
pub mod hash;
pub mod kernel;
pub mod numeric;
pub mod string;
pub mod time;

use std::cmp::Ordering;
use std::rc::Rc;

use super::compile::Block;
use super::interp::{no_method, raise, Ctl, Interp, R};
use super::value::{class_const_name, eql, equal, inspect, list, to_s, Class, V};

/// Every method name some class implements (checked when an expression compiles).
const KNOWN: &[&str] = &[
    // operators
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "==",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "<=>",
    "===",
    "=~",
    "[]",
    "[]=",
    "<<",
    "&",
    "|",
    "^",
    "!",
    "+@",
    "-@",
    "~",
    ">>",
    // object
    "nil?",
    "class",
    "is_a?",
    "kind_of?",
    "instance_of?",
    "to_s",
    "inspect",
    "equal?",
    "eql?",
    "frozen?",
    "freeze",
    "dup",
    "clone",
    "tap",
    "then",
    "yield_self",
    "itself",
    "respond_to?",
    "to_json",
    "hash",
    "object_id",
    "name",
    "message",
    "full_message",
    "backtrace",
    "new",
    "present?",
    "blank?",
    "display",
    // kernel
    "Integer",
    "Float",
    "String",
    "Array",
    "Hash",
    "format",
    "sprintf",
    "raise",
    "fail",
    "require",
    "require_relative",
    "loop",
    "puts",
    "p",
    "print",
    "pp",
    "warn",
    "hostname",
    "worker_id",
    "use_nil",
    "use_default",
    "rand",
    "srand",
    "catch",
    "block_given?",
    // conversions
    "to_i",
    "to_f",
    "to_sym",
    "to_a",
    "to_h",
    "to_str",
    "to_ary",
    "to_r",
    "to_c",
    "to_proc",
    "to_int",
    "to_string",
    // string
    "downcase",
    "upcase",
    "capitalize",
    "swapcase",
    "strip",
    "lstrip",
    "rstrip",
    "chomp",
    "chop",
    "chars",
    "bytes",
    "lines",
    "split",
    "gsub",
    "sub",
    "gsub!",
    "sub!",
    "start_with?",
    "end_with?",
    "include?",
    "match",
    "match?",
    "scan",
    "slice",
    "length",
    "size",
    "empty?",
    "reverse",
    "index",
    "rindex",
    "count",
    "tr",
    "tr_s",
    "delete",
    "squeeze",
    "center",
    "ljust",
    "rjust",
    "concat",
    "each_char",
    "each_line",
    "each_byte",
    "downcase!",
    "upcase!",
    "capitalize!",
    "strip!",
    "lstrip!",
    "rstrip!",
    "chomp!",
    "squeeze!",
    "encoding",
    "force_encoding",
    "encode",
    "valid_encoding?",
    "scrub",
    "unicode_normalize",
    "hex",
    "oct",
    "ord",
    "chr",
    "succ",
    "next",
    "casecmp",
    "casecmp?",
    "partition",
    "rpartition",
    "between?",
    "bytesize",
    "byteslice",
    "ascii_only?",
    "prepend",
    "insert",
    "replace",
    "unpack",
    "unpack1",
    "delete_prefix",
    "delete_suffix",
    "each_grapheme_cluster",
    "upto",
    "sum",
    "crypt",
    "start_with",
    "b",
    "intern",
    "clear",
    // numeric
    "abs",
    "round",
    "floor",
    "ceil",
    "truncate",
    "divmod",
    "div",
    "modulo",
    "fdiv",
    "pow",
    "zero?",
    "positive?",
    "negative?",
    "even?",
    "odd?",
    "times",
    "downto",
    "step",
    "clamp",
    "pred",
    "integer?",
    "finite?",
    "nan?",
    "infinite?",
    "gcd",
    "lcm",
    "digits",
    "bit_length",
    "nonzero?",
    "magnitude",
    "remainder",
    "coerce",
    "quo",
    // enumerable / array
    "first",
    "last",
    "push",
    "append",
    "pop",
    "shift",
    "unshift",
    "join",
    "map",
    "collect",
    "flat_map",
    "collect_concat",
    "select",
    "filter",
    "reject",
    "find",
    "detect",
    "find_index",
    "any?",
    "all?",
    "none?",
    "one?",
    "each",
    "each_with_index",
    "each_with_object",
    "inject",
    "reduce",
    "min",
    "max",
    "minmax",
    "sort",
    "sort_by",
    "min_by",
    "max_by",
    "uniq",
    "compact",
    "flatten",
    "zip",
    "take",
    "drop",
    "take_while",
    "drop_while",
    "tally",
    "group_by",
    "partition",
    "each_slice",
    "each_cons",
    "entries",
    "values_at",
    "rotate",
    "sample",
    "shuffle",
    "filter_map",
    "sum",
    "map!",
    "collect!",
    "select!",
    "reject!",
    "delete_if",
    "keep_if",
    "uniq!",
    "compact!",
    "flatten!",
    "sort!",
    "reverse!",
    "delete_at",
    "fill",
    "product",
    "transpose",
    "assoc",
    "chunk_while",
    "slice_when",
    "cycle",
    "each_entry",
    "with_index",
    "with_object",
    "peek",
    "rewind",
    "each_index",
    "dig",
    "fetch",
    "sort_by!",
    "union",
    "difference",
    "intersection",
    "intersect?",
    "count",
    "step",
    "lazy",
    "force",
    "to_set",
    "sum",
    // hash
    "key?",
    "has_key?",
    "member?",
    "keys",
    "values",
    "merge",
    "merge!",
    "update",
    "each_pair",
    "each_key",
    "each_value",
    "transform_values",
    "transform_keys",
    "invert",
    "key",
    "value?",
    "has_value?",
    "fetch_values",
    "except",
    "store",
    "default",
    "default=",
    "compare_by_identity",
    "filter_map",
    "sort_by",
    "to_a",
    "any?",
    "find_all",
    "select",
    "dig",
    "slice",
    // range
    "cover?",
    "begin",
    "end",
    "exclude_end?",
    // regexp / match
    "source",
    "options",
    "captures",
    "named_captures",
    "names",
    "pre_match",
    "post_match",
    "string",
    "escape",
    "quote",
    "union",
    "offset",
    "regexp",
    // time
    "now",
    "at",
    "strptime",
    "parse",
    "iso8601",
    "xmlschema",
    "rfc3339",
    "utc",
    "gmtime",
    "localtime",
    "getutc",
    "getgm",
    "getlocal",
    "strftime",
    "year",
    "month",
    "mon",
    "day",
    "mday",
    "hour",
    "min",
    "sec",
    "usec",
    "nsec",
    "subsec",
    "wday",
    "yday",
    "zone",
    "utc?",
    "utc_offset",
    "gmt_offset",
    "gmtoff",
    "mktime",
    "local",
    "gm",
    "httpdate",
    "rfc2822",
    "to_date",
    "monday?",
    "sunday?",
    "saturday?",
    "tv_sec",
    "tv_usec",
    "tv_nsec",
    // ENV, File, Dir, Socket, IPAddr, JSON, Math, Process
    "read",
    "readlines",
    "open",
    "exist?",
    "exists?",
    "file?",
    "directory?",
    "basename",
    "dirname",
    "extname",
    "expand_path",
    "absolute_path",
    "realpath",
    "readable?",
    "pwd",
    "getwd",
    "glob",
    "home",
    "gethostname",
    "ipv4?",
    "ipv6?",
    "private?",
    "loopback?",
    "prefix",
    "mask",
    "generate",
    "dump",
    "pretty_generate",
    "sqrt",
    "log",
    "log10",
    "log2",
    "exp",
    "cbrt",
    "hypot",
    "pid",
    "close",
    "gets",
    "each_line",
    "path",
    "size?",
    "zero?",
    "to_range",
    "hton",
    "ip_address",
    "to_set",
    "key",
    "fetch",
];

pub fn known_method(name: &str) -> bool {
    KNOWN.contains(&name)
}

/// The elements `*v` spreads into.
pub fn splat(v: V<'_>) -> Vec<V<'_>> {
    match v {
        V::Array(_) | V::RArr(_) => list(&v),
        V::Nil => Vec::new(),
        V::Hash(_) | V::Rec(_) => super::value::pairs(&v)
            .into_iter()
            .map(|(k, x)| V::array(vec![k, x]))
            .collect(),
        V::Range(_) => array::range_items(&v, 1_000_000).unwrap_or_default(),
        other => vec![other],
    }
}

pub fn arg<'a>(args: &[V<'a>], i: usize) -> V<'a> {
    args.get(i).cloned().unwrap_or(V::Nil)
}

pub fn check_args<'a>(args: &[V<'a>], min: usize, max: usize) -> Result<(), Ctl<'a>> {
    if args.len() < min || args.len() > max {
        let expected = if min == max {
            min.to_string()
        } else if max == usize::MAX {
            format!("{min}+")
        } else {
            format!("{min}..{max}")
        };
        return super::interp::arg_count(args.len(), &expected);
    }
    Ok(())
}

/// `String`-typed argument (implicit conversion: String or Symbol where Ruby allows).
pub fn str_arg<'a>(v: &V<'a>) -> Result<Vec<u8>, Ctl<'a>> {
    match v {
        V::Str(s) => Ok(s.borrow().clone()),
        other => raise(
            "TypeError",
            format!("no implicit conversion of {} into String", conv_name(other)),
        ),
    }
}

pub fn string_arg<'a>(v: &V<'a>) -> Result<String, Ctl<'a>> {
    Ok(String::from_utf8_lossy(&str_arg(v)?).into_owned())
}

pub fn int_arg<'a>(v: &V<'a>) -> Result<i64, Ctl<'a>> {
    match v {
        V::Int(i) => Ok(*i),
        V::Float(f) if f.is_finite() && f.abs() < 9.2e18 => Ok(f.trunc() as i64),
        V::Float(f) if f.is_finite() => raise(
            "RangeError",
            format!(
                "float {} out of range of integer",
                String::from_utf8_lossy(&to_s(v))
            ),
        ),
        V::Big(_) => raise("RangeError", "bignum too big to convert into `long'"),
        other => raise(
            "TypeError",
            format!(
                "no implicit conversion of {} into Integer",
                conv_name(other)
            ),
        ),
    }
}

pub fn conv_name(v: &V<'_>) -> String {
    match v {
        V::Nil => "nil".into(),
        V::Bool(b) => b.to_string(),
        other => other.class_name(),
    }
}

/// `<=>` for the values sort/min/max compare.
pub fn compare(a: &V<'_>, b: &V<'_>) -> Option<Ordering> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::Int(_) | V::Big(_), V::Int(_) | V::Big(_)) => {
            Some(super::value::big_of(a)?.cmp(&super::value::big_of(b)?))
        }
        (V::Int(_) | V::Big(_), V::Float(y)) => super::value::int_cmp_float(a, *y),
        (V::Float(x), V::Int(_) | V::Big(_)) => {
            super::value::int_cmp_float(b, *x).map(Ordering::reverse)
        }
        (V::Nil, V::Nil) => Some(Ordering::Equal),
        (V::Bool(x), V::Bool(y)) if x == y => Some(Ordering::Equal),
        (V::Float(x), V::Float(y)) => x.partial_cmp(y),
        (V::Str(x), V::Str(y)) => Some(x.borrow().as_slice().cmp(y.borrow().as_slice())),
        (V::Sym(x), V::Sym(y)) => Some(x.cmp(y)),
        (V::Time(x), V::Time(y)) => Some(x.t.cmp(&y.t)),
        (V::Array(_) | V::RArr(_), V::Array(_) | V::RArr(_)) => {
            let (x, y) = (list(a), list(b));
            for (p, q) in x.iter().zip(y.iter()) {
                match compare(p, q)? {
                    Ordering::Equal => continue,
                    o => return Some(o),
                }
            }
            Some(x.len().cmp(&y.len()))
        }
        _ => None,
    }
}

/// How Ruby's "comparison of X with Y failed" names Y: immediates and Floats by their
/// inspect, other objects by their class.
pub fn cmp_name(v: &V<'_>) -> String {
    match v {
        V::Nil | V::Bool(_) | V::Int(_) | V::Float(_) | V::Sym(_) => {
            String::from_utf8_lossy(&inspect(v)).into_owned()
        }
        other => other.class_name(),
    }
}

pub fn compare_or_raise<'a>(a: &V<'a>, b: &V<'a>) -> Result<Ordering, Ctl<'a>> {
    match compare(a, b) {
        Some(o) => Ok(o),
        None => raise(
            "ArgumentError",
            format!(
                "comparison of {} with {} failed",
                a.class_name(),
                cmp_name(b)
            ),
        ),
    }
}

pub fn dispatch<'a>(
    it: &mut Interp<'a, '_>,
    recv: V<'a>,
    name: &str,
    args: Vec<V<'a>>,
    blk: Option<&Block>,
) -> R<'a> {
    if blk.is_none() {
        if let Some(e) = enumerator::blockless(&recv, name, &args) {
            return Ok(e);
        }
    }
    let handled = match &recv {
        V::Str(_) => string::call(it, &recv, name, &args, blk),
        V::Int(_) | V::Float(_) => numeric::call(it, &recv, name, &args, blk),
        V::Big(_) => bignum::call(it, &recv, name, &args, blk),
        V::Enum(_) => enumerator::call(it, &recv, name, &args, blk),
        V::Array(_) | V::RArr(_) => array::call(it, &recv, name, &args, blk),
        V::Hash(_) | V::Rec(_) => hash::call(it, &recv, name, &args, blk),
        V::Range(_) => array::range_call(it, &recv, name, &args, blk),
        V::Time(_) => time::call(it, &recv, name, &args, blk),
        V::Class(c) => kernel::class_call(it, *c, name, &args, blk),
        _ => kernel::misc_call(it, &recv, name, &args, blk),
    };
    if let Some(r) = handled {
        return r;
    }
    object_call(it, recv, name, args, blk)
}

/// Whether `v` is an instance of class constant `c` (with the ancestors configs test).
pub fn is_a(v: &V<'_>, c: &V<'_>) -> bool {
    let V::Class(c) = c else {
        return false;
    };
    let own = v.class_name();
    let name = class_const_name(*c);
    if own == name || name == "Object" || name == "BasicObject" {
        return true;
    }
    match c {
        Class::Exception(n) => match v {
            V::Exception(e) => super::value::exception_ancestors(&e.class).contains(n),
            _ => false,
        },
        _ => matches!(
            (v, name),
            (
                V::Int(_) | V::Big(_) | V::Float(_),
                "Numeric" | "Comparable"
            ) | (V::Str(_), "Comparable")
                | (
                    V::Array(_) | V::RArr(_) | V::Hash(_) | V::Rec(_) | V::Range(_) | V::Enum(_),
                    "Enumerable"
                )
        ),
    }
}

fn object_call<'a>(
    it: &mut Interp<'a, '_>,
    recv: V<'a>,
    name: &str,
    args: Vec<V<'a>>,
    blk: Option<&Block>,
) -> R<'a> {
    Ok(match name {
        "nil?" => V::Bool(matches!(recv, V::Nil)),
        "class" => match recv {
            V::Exception(e) => V::Class(
                match super::value::EXCEPTIONS.iter().find(|x| **x == e.class) {
                    Some(n) => Class::Exception(n),
                    None => Class::Exception("StandardError"),
                },
            ),
            V::Class(_) => V::Class(Class::Exception("Class")),
            ref v => match super::compile::const_class(&v.class_name()) {
                Some(c) => V::Class(c),
                None => V::Class(Class::Exception("Object")),
            },
        },
        "is_a?" | "kind_of?" => {
            check_args(&args, 1, 1)?;
            V::Bool(is_a(&recv, &args[0]))
        }
        "instance_of?" => {
            check_args(&args, 1, 1)?;
            V::Bool(match &args[0] {
                V::Class(c) => recv.class_name() == class_const_name(*c),
                _ => false,
            })
        }
        "to_s" => V::str(to_s(&recv)),
        "inspect" => V::str(inspect(&recv)),
        "==" | "equal?" => V::Bool(equal(&recv, &arg(&args, 0))),
        "eql?" => V::Bool(eql(&recv, &arg(&args, 0))),
        "!=" => V::Bool(!equal(&recv, &arg(&args, 0))),
        "!" => V::Bool(!recv.truthy()),
        "===" => V::Bool(equal(&recv, &arg(&args, 0))),
        "=~" => V::Nil,
        "frozen?" => V::Bool(!matches!(recv, V::Str(_) | V::Array(_) | V::Hash(_))),
        "freeze" | "itself" | "dup" | "clone" => match recv {
            V::Str(s) if name != "freeze" && name != "itself" => V::str(s.borrow().clone()),
            V::Array(a) if name == "dup" || name == "clone" => V::array(a.borrow().clone()),
            V::Hash(h) if name == "dup" || name == "clone" => V::hash(h.borrow().clone()),
            other => other,
        },
        "tap" => {
            if let Some(b) = blk {
                it.yield_blk(b, vec![recv.clone()])?;
            }
            recv
        }
        "then" | "yield_self" => match blk {
            Some(b) => it.yield_blk(b, vec![recv])?,
            None => recv,
        },
        "respond_to?" => {
            let m = to_s(&arg(&args, 0));
            V::Bool(known_method(&String::from_utf8_lossy(&m)))
        }
        "to_json" => V::str(kernel::to_json(&recv, false)?),
        "hash" => V::Int(Rc::as_ptr(&Rc::new(())) as i64),
        "present?" | "blank?" => return no_method(name, &recv),
        "display" => V::Nil,
        _ => return no_method(name, &recv),
    })
}
