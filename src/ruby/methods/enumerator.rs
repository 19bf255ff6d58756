//! Enumerator: an iterator method called without a block (`each`, `map`, `each_slice(2)`,
//! `times`, `loop`, ...) returns one, and it chains as Ruby's does (`map.with_index(1) { }`,
//! `each_with_index.map { }`, `each_slice(2).to_a`, `next`).
//!
//! An Enumerator is `recv.meth(*args)` kept for later. What it yields is found by running
//! `meth` with a native block that records each yield (`Native::Collect`), so every iterator
//! the evaluator has is an Enumerator source without a table of what each one yields. Given a
//! block, an Enumerator runs the block over those yields first, then runs `meth` again with a
//! native block that answers the block's results in turn (`Native::Replay`): `map.with_index`
//! maps to the block's values, `select.with_index` keeps what the block chose. The block is
//! called for as many yields as the consuming method would use (`find` stops at the first
//! hit). Enumerators are eager: `loop` and endless sources stop at the budgets, except
//! `loop.with_index { }` and friends, which run one yield at a time.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::super::compile::Block;
use super::super::interp::{raise, Ctl, Interp, Native, R};
use super::super::value::{Enumer, V};
use super::{arg, check_args, int_arg};

/// Enumerable's methods (what an Enumerator answers besides its own).
const ENUMERABLE: &[&str] = &[
    "all?",
    "any?",
    "chunk_while",
    "collect",
    "collect_concat",
    "count",
    "detect",
    "drop",
    "drop_while",
    "each_cons",
    "each_entry",
    "each_slice",
    "entries",
    "filter",
    "filter_map",
    "find",
    "find_all",
    "find_index",
    "first",
    "flat_map",
    "group_by",
    "include?",
    "inject",
    "map",
    "max",
    "max_by",
    "member?",
    "min",
    "min_by",
    "minmax",
    "none?",
    "one?",
    "partition",
    "reduce",
    "reject",
    "select",
    "slice_when",
    "sort",
    "sort_by",
    "sum",
    "take",
    "take_while",
    "tally",
    "to_a",
    "to_h",
    "uniq",
    "zip",
];

/// Methods whose Enumerator yields the elements and has a size.
const ELEMENT_ITERATORS: &[&str] = &[
    "each",
    "map",
    "collect",
    "flat_map",
    "collect_concat",
    "select",
    "filter",
    "filter_map",
    "reject",
    "find_all",
    "sort_by",
    "min_by",
    "max_by",
    "group_by",
    "partition",
    "each_entry",
];

/// Methods whose Enumerator has no size (Ruby answers nil).
const UNSIZED: &[&str] = &[
    "find",
    "detect",
    "find_index",
    "index",
    "rindex",
    "take_while",
    "drop_while",
    "each_line",
    "each_entry",
];

/// Pass-through levels: the block's value goes back to the method below.
fn passthrough(meth: &str) -> bool {
    matches!(
        meth,
        "each" | "with_index" | "each_with_index" | "with_object" | "each_with_object"
    )
}

/// Whether `recv.name(*args)` without a block returns an Enumerator.
fn blockless_enumerates(recv: &V<'_>, name: &str, args: &[V<'_>]) -> bool {
    let n = args.len();
    let common = |name: &str| {
        (n == 0
            && (ELEMENT_ITERATORS.contains(&name)
                || matches!(
                    name,
                    "each_with_index"
                        | "find"
                        | "detect"
                        | "find_index"
                        | "take_while"
                        | "drop_while"
                )))
            || (n == 1 && matches!(name, "each_slice" | "each_cons" | "each_with_object"))
    };
    match recv {
        V::Array(_) | V::RArr(_) => {
            common(name)
                || (n == 0
                    && matches!(
                        name,
                        "each_index"
                            | "index"
                            | "rindex"
                            | "map!"
                            | "collect!"
                            | "select!"
                            | "filter!"
                            | "reject!"
                            | "delete_if"
                            | "keep_if"
                            | "sort_by!"
                    ))
        }
        V::Hash(_) | V::Rec(_) => {
            common(name)
                || (n == 0
                    && matches!(
                        name,
                        "each_pair"
                            | "each_key"
                            | "each_value"
                            | "transform_values"
                            | "transform_keys"
                            | "delete_if"
                            | "keep_if"
                    ))
        }
        V::Range(_) => common(name),
        V::Str(_) => {
            (n == 0 && matches!(name, "each_char" | "each_byte" | "each_line"))
                || (n == 1 && name == "upto")
        }
        V::Int(_) => (n == 0 && name == "times") || (n == 1 && matches!(name, "upto" | "downto")),
        V::Enum(_) => {
            (name != "each" && common(name))
                || (n <= 1 && name == "with_index")
                || (n == 1 && name == "with_object")
        }
        _ => false,
    }
}

pub fn new<'a>(recv: V<'a>, meth: &str, args: Vec<V<'a>>) -> V<'a> {
    V::Enum(Rc::new(Enumer {
        recv,
        meth: meth.to_string(),
        args,
        pos: Cell::new(0),
        buf: RefCell::new(None),
    }))
}

/// The Enumerator a blockless call returns, if it returns one.
pub fn blockless<'a>(recv: &V<'a>, name: &str, args: &[V<'a>]) -> Option<V<'a>> {
    if !blockless_enumerates(recv, name, args) {
        return None;
    }
    Some(new(recv.clone(), name, args.to_vec()))
}

fn pack<'a>(mut args: Vec<V<'a>>) -> V<'a> {
    if args.len() == 1 {
        args.pop().unwrap_or(V::Nil)
    } else {
        V::array(args)
    }
}

fn offset<'a>(e: &Enumer<'a>) -> Result<i64, Ctl<'a>> {
    match e.args.first() {
        None | Some(V::Nil) => Ok(0),
        Some(v) => int_arg(v),
    }
}

fn is_loop(e: &Enumer<'_>) -> bool {
    matches!(e.recv, V::Nil) && e.meth == "loop"
}

/// What `e` yields, each yield as its list of values.
/// `for_block`: the yields a block would see (the block's answers may let more through than
/// a collecting block's nil does).
pub fn yields<'a>(
    it: &mut Interp<'a, '_>,
    e: &Enumer<'a>,
    for_block: bool,
) -> Result<Vec<Vec<V<'a>>>, Ctl<'a>> {
    if let V::Enum(inner) = &e.recv {
        let below = yields(it, inner, for_block && passthrough(&e.meth))?;
        return match e.meth.as_str() {
            "each" => Ok(below),
            "with_index" | "each_with_index" => {
                let off = offset(e)?;
                Ok(below
                    .into_iter()
                    .enumerate()
                    .map(|(i, y)| vec![pack(y), V::Int(off.wrapping_add(i as i64))])
                    .collect())
            }
            "with_object" | "each_with_object" => {
                let memo = arg(&e.args, 0);
                Ok(below
                    .into_iter()
                    .map(|y| vec![pack(y), memo.clone()])
                    .collect())
            }
            _ => {
                let items = V::array(below.into_iter().map(pack).collect());
                collect(it, items, &e.meth, &e.args)
            }
        };
    }
    if is_loop(e) {
        let (r, n) = it.with_native(Native::Collect(Vec::new()), |it, b| {
            super::kernel::call_fn(it, "loop", Vec::new(), Some(b))
        });
        r?;
        return Ok(match n {
            Some(Native::Collect(v)) => v,
            _ => Vec::new(),
        });
    }
    if for_block && matches!(e.meth.as_str(), "take_while" | "drop_while") {
        // Which elements these yield depends on the block's answers: all of them, and the
        // consumer stops where the method would.
        return Ok(super::splat(e.recv.clone())
            .into_iter()
            .map(|x| vec![x])
            .collect());
    }
    collect(it, e.recv.clone(), &e.meth, &e.args)
}

fn collect<'a>(
    it: &mut Interp<'a, '_>,
    recv: V<'a>,
    meth: &str,
    args: &[V<'a>],
) -> Result<Vec<Vec<V<'a>>>, Ctl<'a>> {
    let (r, n) = it.with_native(Native::Collect(Vec::new()), |it, b| {
        super::dispatch(it, recv, meth, args.to_vec(), Some(b))
    });
    r?;
    Ok(match n {
        Some(Native::Collect(v)) => v,
        _ => Vec::new(),
    })
}

/// The method that uses the block's answers: the first level that is not a pass-through.
fn consumer<'e, 'a>(e: &'e Enumer<'a>) -> &'e str {
    match &e.recv {
        V::Enum(inner) if passthrough(&e.meth) => consumer(inner),
        _ => &e.meth,
    }
}

/// Whether a method that has seen `hits` truthy answers and this answer (`t`) stops.
fn stops(consumer: &str, t: bool, hits: usize) -> bool {
    match consumer {
        "find" | "detect" | "find_index" | "index" | "any?" => t,
        "none?" => t,
        "all?" | "take_while" => !t,
        "one?" => hits > 1,
        _ => false,
    }
}

/// `e` given a block.
fn run_block<'a>(it: &mut Interp<'a, '_>, e: &Enumer<'a>, user: &Block) -> R<'a> {
    if let Some(r) = run_loop_lazily(it, e, user) {
        return r;
    }
    let ys = yields(it, e, true)?;
    let cons = consumer(e).to_string();
    let mut answers = Vec::with_capacity(ys.len());
    let mut hits = 0;
    for y in ys {
        let r = it.yield_blk(user, y)?;
        let t = r.truthy();
        if t {
            hits += 1;
        }
        answers.push(r);
        if stops(&cons, t, hits) {
            break;
        }
    }
    finish(it, e, answers)
}

/// Runs the method of `e` with the block's `answers` in place of the block.
fn finish<'a>(it: &mut Interp<'a, '_>, e: &Enumer<'a>, answers: Vec<V<'a>>) -> R<'a> {
    match &e.recv {
        V::Enum(inner) if passthrough(&e.meth) => {
            let r = finish(it, inner, answers)?;
            Ok(match e.meth.as_str() {
                "with_object" | "each_with_object" => arg(&e.args, 0),
                _ => r,
            })
        }
        V::Enum(inner) => {
            let items = V::array(yields(it, inner, false)?.into_iter().map(pack).collect());
            replay(it, items, &e.meth, &e.args, answers)
        }
        _ if is_loop(e) => Ok(V::Nil),
        recv => replay(it, recv.clone(), &e.meth, &e.args, answers),
    }
}

fn replay<'a>(
    it: &mut Interp<'a, '_>,
    recv: V<'a>,
    meth: &str,
    args: &[V<'a>],
    answers: Vec<V<'a>>,
) -> R<'a> {
    it.with_native(Native::Replay(answers.into()), |it, b| {
        super::dispatch(it, recv, meth, args.to_vec(), Some(b))
    })
    .0
}

/// `loop.with_index { }` (only pass-through levels over `loop`): one yield at a time, until
/// the block breaks or raises StopIteration.
fn run_loop_lazily<'a>(it: &mut Interp<'a, '_>, e: &Enumer<'a>, user: &Block) -> Option<R<'a>> {
    let mut levels: Vec<&Enumer<'a>> = Vec::new();
    let mut cur = e;
    loop {
        if is_loop(cur) {
            break;
        }
        match &cur.recv {
            V::Enum(inner) if passthrough(&cur.meth) => {
                levels.push(cur);
                cur = inner;
            }
            _ => return None,
        }
    }
    let mut offs = Vec::with_capacity(levels.len());
    for l in &levels {
        offs.push(match l.meth.as_str() {
            "with_index" | "each_with_index" => match offset(l) {
                Ok(o) => o,
                Err(err) => return Some(Err(err)),
            },
            _ => 0,
        });
    }
    let mut k: i64 = 0;
    loop {
        let mut y: Vec<V<'a>> = Vec::new();
        for (l, off) in levels.iter().rev().zip(offs.iter().rev()) {
            y = match l.meth.as_str() {
                "with_index" | "each_with_index" => vec![pack(y), V::Int(off.wrapping_add(k))],
                "with_object" | "each_with_object" => vec![pack(y), arg(&l.args, 0)],
                _ => y,
            };
        }
        match it.yield_blk(user, y) {
            Ok(_) => {}
            Err(Ctl::Raise(x, _)) if x.class == "StopIteration" => {
                return Some(Ok(match levels.first() {
                    Some(l) if matches!(l.meth.as_str(), "with_object" | "each_with_object") => {
                        arg(&l.args, 0)
                    }
                    _ => V::Nil,
                }))
            }
            Err(err) => return Some(Err(err)),
        }
        k += 1;
    }
}

fn sized(e: &Enumer<'_>) -> bool {
    if UNSIZED.contains(&e.meth.as_str()) || (e.meth == "upto" && matches!(e.recv, V::Str(_))) {
        return false;
    }
    match &e.recv {
        V::Enum(inner) => sized(inner),
        _ => true,
    }
}

fn buffered<'a>(it: &mut Interp<'a, '_>, e: &Enumer<'a>) -> Result<Rc<Vec<V<'a>>>, Ctl<'a>> {
    if let Some(b) = e.buf.borrow().as_ref() {
        return Ok(b.clone());
    }
    let items: Rc<Vec<V<'a>>> = Rc::new(yields(it, e, false)?.into_iter().map(pack).collect());
    *e.buf.borrow_mut() = Some(items.clone());
    Ok(items)
}

/// Methods of an Enumerator.
pub fn call<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    let V::Enum(e) = recv else { return None };
    Some(match (name, blk) {
        ("each", None) if args.is_empty() => Ok(recv.clone()),
        ("each", Some(b)) => run_block(it, e, b),
        ("with_index" | "each_with_index" | "with_object" | "each_with_object", Some(b)) => {
            let expected = if name.ends_with("object") { 1 } else { 0 };
            if let Err(err) = check_args(
                args,
                expected,
                if name == "with_index" { 1 } else { expected },
            ) {
                return Some(Err(err));
            }
            let level = Enumer {
                recv: recv.clone(),
                meth: name.to_string(),
                args: args.to_vec(),
                pos: Cell::new(0),
                buf: RefCell::new(None),
            };
            run_block(it, &level, b)
        }
        ("size", None) if args.is_empty() => {
            if is_loop(e) {
                Ok(V::Float(f64::INFINITY))
            } else if !sized(e) {
                Ok(V::Nil)
            } else {
                yields(it, e, false).map(|y| V::Int(y.len() as i64))
            }
        }
        ("next" | "peek", None) => match buffered(it, e) {
            Ok(items) => {
                let p = e.pos.get();
                match items.get(p) {
                    Some(v) => {
                        if name == "next" {
                            e.pos.set(p + 1);
                        }
                        Ok(v.clone())
                    }
                    None => raise("StopIteration", "iteration reached an end"),
                }
            }
            Err(err) => Err(err),
        },
        ("rewind", None) => {
            e.pos.set(0);
            Ok(recv.clone())
        }
        ("inspect" | "to_s", None) => Ok(V::str(super::super::value::inspect(recv))),
        _ if ENUMERABLE.contains(&name) => {
            let items = match yields(it, e, false) {
                Ok(y) => V::array(y.into_iter().map(pack).collect()),
                Err(err) => return Some(Err(err)),
            };
            super::dispatch(it, items, name, args.to_vec(), blk)
        }
        _ => return None,
    })
}
