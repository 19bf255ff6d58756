//! Array, the Enumerable methods (shared with Hash and Range through their element lists),
//! and Range.

use std::rc::Rc;

use super::super::compile::Block;
use super::super::interp::{raise, Ctl, Interp, R};
use super::super::value::{eql, equal, inspect, list, to_s, write_to_s, Hash, V};
use super::{arg, check_args, compare, compare_or_raise, int_arg};

/// The items of a Range (Integer or String bounds), at most `limit`.
pub fn range_items<'a>(v: &V<'a>, limit: usize) -> Result<Vec<V<'a>>, Ctl<'a>> {
    let V::Range(r) = v else {
        return Ok(Vec::new());
    };
    match (&r.0, &r.1) {
        (V::Int(a), V::Int(b)) => {
            let end = if r.2 { *b - 1 } else { *b };
            if end >= *a && (end - *a) as u128 + 1 > limit as u128 {
                return Err(Ctl::Abort(
                    "range too large to enumerate".into(),
                    super::super::interp::NO_AT,
                ));
            }
            Ok((*a..=end).map(V::Int).collect())
        }
        (V::Int(_), V::Nil) => Err(Ctl::Abort(
            "endless range cannot be enumerated".into(),
            super::super::interp::NO_AT,
        )),
        (V::Str(a), V::Str(b)) => {
            let (a, b) = (
                String::from_utf8_lossy(&a.borrow()).into_owned(),
                String::from_utf8_lossy(&b.borrow()).into_owned(),
            );
            let mut out = Vec::new();
            let mut cur = a;
            loop {
                if cur.len() > b.len() || out.len() > limit {
                    break;
                }
                if cur == b {
                    if !r.2 {
                        out.push(V::str(cur.clone()));
                    }
                    break;
                }
                out.push(V::str(cur.clone()));
                let next = match super::string::call_succ(&cur) {
                    Some(n) => n,
                    None => break,
                };
                cur = next;
            }
            Ok(out)
        }
        _ => raise(
            "TypeError",
            format!("can't iterate from {}", r.0.class_name()),
        ),
    }
}

/// `(start, len)` of a range applied to a sequence of `n` items.
pub fn range_bounds<'a>(
    r: &Rc<(V<'a>, V<'a>, bool)>,
    n: i64,
) -> Result<Option<(usize, usize)>, Ctl<'a>> {
    let a = match &r.0 {
        V::Nil => 0,
        v => int_arg(v)?,
    };
    let b = match &r.1 {
        V::Nil => -1,
        v => int_arg(v)?,
    };
    let a = if a < 0 { n + a } else { a };
    if a < 0 || a > n {
        return Ok(None);
    }
    let mut b = if b < 0 { n + b } else { b };
    if r.2 && !matches!(r.1, V::Nil) {
        b -= 1;
    }
    let len = (b - a + 1).max(0).min(n - a);
    Ok(Some((a as usize, len as usize)))
}

fn y<'a>(it: &mut Interp<'a, '_>, b: &Block, x: &V<'a>) -> R<'a> {
    it.yield_blk(b, vec![x.clone()])
}

fn flatten<'a>(items: &[V<'a>], depth: i64, out: &mut Vec<V<'a>>) {
    for x in items {
        match x {
            V::Array(_) | V::RArr(_) if depth != 0 => flatten(&list(x), depth - 1, out),
            other => out.push(other.clone()),
        }
    }
}

fn join<'a>(items: &[V<'a>], sep: &[u8], out: &mut Vec<u8>) {
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(sep);
        }
        match x {
            V::Array(_) | V::RArr(_) => join(&list(x), sep, out),
            other => write_to_s(out, other),
        }
    }
}

fn sum<'a>(it: &mut Interp<'a, '_>, items: &[V<'a>], init: V<'a>, blk: Option<&Block>) -> R<'a> {
    let mut acc = init;
    // Kahan-Babuska summation for floats, as Ruby does.
    let mut comp = 0.0f64;
    let mut float_mode = false;
    for x in items {
        let x = match blk {
            Some(b) => y(it, b, x)?,
            None => x.clone(),
        };
        match (&acc, &x) {
            (V::Float(a), V::Float(_) | V::Int(_)) => {
                let xf = match x {
                    V::Float(f) => f,
                    V::Int(i) => i as f64,
                    _ => 0.0,
                };
                let t = a + xf;
                if a.abs() >= xf.abs() {
                    comp += (a - t) + xf;
                } else {
                    comp += (xf - t) + a;
                }
                acc = V::Float(t);
                float_mode = true;
            }
            _ => {
                acc = it.send(acc, "+", vec![x], None, super::super::interp::NO_AT)?;
            }
        }
    }
    if float_mode {
        if let V::Float(a) = acc {
            return Ok(V::Float(a + comp));
        }
    }
    Ok(acc)
}

/// The Enumerable methods over `items`. `None`: not an Enumerable method.
pub fn enumerable<'a>(
    it: &mut Interp<'a, '_>,
    items: Vec<V<'a>>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    enum_inner(it, items, name, args, blk).transpose()
}

fn enum_inner<'a>(
    it: &mut Interp<'a, '_>,
    items: Vec<V<'a>>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Result<Option<V<'a>>, Ctl<'a>> {
    let v = match (name, blk) {
        ("map" | "collect" | "flat_map" | "collect_concat", Some(b)) => {
            let mut out = Vec::with_capacity(items.len());
            for x in &items {
                let r = y(it, b, x)?;
                if name.starts_with("flat") || name == "collect_concat" {
                    match r {
                        V::Array(_) | V::RArr(_) => out.extend(list(&r)),
                        other => out.push(other),
                    }
                } else {
                    out.push(r);
                }
            }
            V::array(out)
        }
        ("select" | "filter" | "find_all" | "reject", Some(b)) => {
            let keep = name != "reject";
            let mut out = Vec::new();
            for x in items {
                if y(it, b, &x)?.truthy() == keep {
                    out.push(x);
                }
            }
            V::array(out)
        }
        ("filter_map", Some(b)) => {
            let mut out = Vec::new();
            for x in &items {
                let r = y(it, b, x)?;
                if r.truthy() {
                    out.push(r);
                }
            }
            V::array(out)
        }
        ("find" | "detect", Some(b)) => {
            for x in items {
                if y(it, b, &x)?.truthy() {
                    return Ok(Some(x));
                }
            }
            V::Nil
        }
        ("find_index" | "index", _) => {
            for (i, x) in items.iter().enumerate() {
                let hit = match blk {
                    Some(b) if args.is_empty() => y(it, b, x)?.truthy(),
                    _ => equal(x, &arg(args, 0)),
                };
                if hit {
                    return Ok(Some(V::Int(i as i64)));
                }
            }
            V::Nil
        }
        ("any?" | "all?" | "none?" | "one?", _) => {
            let mut count = 0usize;
            let total = items.len();
            for x in &items {
                let t = match (blk, args.first()) {
                    (_, Some(p)) => it
                        .send(
                            p.clone(),
                            "===",
                            vec![x.clone()],
                            None,
                            super::super::interp::NO_AT,
                        )?
                        .truthy(),
                    (Some(b), None) => y(it, b, x)?.truthy(),
                    (None, None) => x.truthy(),
                };
                if t {
                    count += 1;
                    if name == "any?" {
                        return Ok(Some(V::Bool(true)));
                    }
                    if name == "none?" {
                        return Ok(Some(V::Bool(false)));
                    }
                } else if name == "all?" {
                    return Ok(Some(V::Bool(false)));
                }
            }
            V::Bool(match name {
                "any?" => false,
                "all?" => true,
                "none?" => true,
                _ => count == 1 && total > 0,
            })
        }
        ("each" | "each_entry", Some(b)) => {
            for x in &items {
                y(it, b, x)?;
            }
            V::array(items)
        }
        ("each_with_index", Some(b)) => {
            for (i, x) in items.iter().enumerate() {
                it.yield_blk(b, vec![x.clone(), V::Int(i as i64)])?;
            }
            V::array(items)
        }
        ("each_with_object", Some(b)) => {
            let memo = arg(args, 0);
            for x in &items {
                it.yield_blk(b, vec![x.clone(), memo.clone()])?;
            }
            memo
        }
        ("inject" | "reduce", _) => {
            let (mut acc, op, start) = match (args.len(), blk) {
                (2, _) => (Some(args[0].clone()), Some(to_s(&args[1])), 0),
                (1, None) => (None, Some(to_s(&args[0])), 0),
                (1, Some(_)) => (Some(args[0].clone()), None, 0),
                _ => (None, None, 0),
            };
            for x in items.into_iter().skip(start) {
                acc = Some(match acc {
                    None => x,
                    Some(a) => match (&op, blk) {
                        (Some(o), _) => it.send(
                            a,
                            &String::from_utf8_lossy(o),
                            vec![x],
                            None,
                            super::super::interp::NO_AT,
                        )?,
                        (None, Some(b)) => it.yield_blk(b, vec![a, x])?,
                        (None, None) => return Ok(None),
                    },
                });
            }
            acc.unwrap_or(V::Nil)
        }
        ("sum", _) => sum(it, &items, args.first().cloned().unwrap_or(V::Int(0)), blk)?,
        ("count", _) => {
            let mut n = 0;
            for x in &items {
                let hit = match (blk, args.first()) {
                    (_, Some(a)) => equal(x, a),
                    (Some(b), None) => y(it, b, x)?.truthy(),
                    (None, None) => true,
                };
                if hit {
                    n += 1;
                }
            }
            V::Int(n)
        }
        ("min" | "max", _) => {
            let want_max = name == "max";
            let mut sorted = items;
            sort(it, &mut sorted, blk)?;
            if want_max {
                sorted.reverse();
            }
            match args.first() {
                Some(n) => {
                    let n = int_arg(n)?.max(0) as usize;
                    sorted.truncate(n);
                    V::array(sorted)
                }
                None => sorted.into_iter().next().unwrap_or(V::Nil),
            }
        }
        ("minmax", None) => {
            let mut sorted = items;
            sort(it, &mut sorted, None)?;
            V::array(vec![
                sorted.first().cloned().unwrap_or(V::Nil),
                sorted.last().cloned().unwrap_or(V::Nil),
            ])
        }
        ("sort", _) => {
            let mut sorted = items;
            sort(it, &mut sorted, blk)?;
            V::array(sorted)
        }
        ("sort_by" | "min_by" | "max_by", Some(b)) => {
            let mut keyed = Vec::with_capacity(items.len());
            for x in items {
                let k = y(it, b, &x)?;
                keyed.push((k, x));
            }
            let mut err = None;
            keyed.sort_by(|a, b| match compare(&a.0, &b.0) {
                Some(o) => o,
                None => {
                    err.get_or_insert_with(|| (a.0.class_name(), super::cmp_name(&b.0)));
                    std::cmp::Ordering::Equal
                }
            });
            if let Some((a, b)) = err {
                return raise(
                    "ArgumentError",
                    format!("comparison of {a} with {b} failed"),
                );
            }
            match name {
                "sort_by" => V::array(keyed.into_iter().map(|(_, x)| x).collect()),
                "min_by" => keyed.into_iter().next().map_or(V::Nil, |(_, x)| x),
                _ => keyed.into_iter().last().map_or(V::Nil, |(_, x)| x),
            }
        }
        ("group_by" | "partition" | "tally" | "chunk_while" | "slice_when", _)
            if name == "tally" || blk.is_some() =>
        {
            match name {
                "group_by" => {
                    let mut h = Hash::default();
                    for x in items {
                        let k = y(it, blk.ok_or_else(unreachable_ctl)?, &x)?;
                        match h.pairs.iter_mut().find(|(kk, _)| eql(kk, &k)) {
                            Some((_, V::Array(a))) => a.borrow_mut().push(x),
                            _ => h.insert(k, V::array(vec![x])),
                        }
                    }
                    V::hash(h)
                }
                "partition" => {
                    let (mut a, mut b2) = (Vec::new(), Vec::new());
                    for x in items {
                        if y(it, blk.ok_or_else(unreachable_ctl)?, &x)?.truthy() {
                            a.push(x);
                        } else {
                            b2.push(x);
                        }
                    }
                    V::array(vec![V::array(a), V::array(b2)])
                }
                "tally" => {
                    let mut h = Hash::default();
                    for x in items {
                        let n = match h.get(&x) {
                            Some(V::Int(n)) => n + 1,
                            _ => 1,
                        };
                        h.insert(x, V::Int(n));
                    }
                    V::hash(h)
                }
                _ => {
                    let b = blk.ok_or_else(unreachable_ctl)?;
                    let mut out: Vec<Vec<V<'a>>> = Vec::new();
                    let mut prev: Option<V<'a>> = None;
                    for x in items {
                        let split = match &prev {
                            None => true,
                            Some(p) => {
                                let r = it.yield_blk(b, vec![p.clone(), x.clone()])?.truthy();
                                if name == "chunk_while" {
                                    !r
                                } else {
                                    r
                                }
                            }
                        };
                        if split {
                            out.push(Vec::new());
                        }
                        if let Some(last) = out.last_mut() {
                            last.push(x.clone());
                        }
                        prev = Some(x);
                    }
                    V::array(out.into_iter().map(V::array).collect())
                }
            }
        }
        ("each_slice" | "each_cons", _) => {
            let n = int_arg(&arg(args, 0))?;
            if n <= 0 {
                return raise("ArgumentError", "invalid slice size");
            }
            let n = n as usize;
            let groups: Vec<V<'a>> = if name == "each_slice" {
                items.chunks(n).map(|c| V::array(c.to_vec())).collect()
            } else {
                items.windows(n).map(|c| V::array(c.to_vec())).collect()
            };
            match blk {
                Some(b) => {
                    for g in &groups {
                        y(it, b, g)?;
                    }
                    V::Nil
                }
                None => V::array(groups),
            }
        }
        ("to_a" | "entries", None) => V::array(items),
        ("include?" | "member?", None) => V::Bool(items.iter().any(|x| equal(x, &arg(args, 0)))),
        ("first", None) => match args.first() {
            Some(n) => {
                let n = int_arg(n)?;
                if n < 0 {
                    return raise("ArgumentError", "negative array size");
                }
                V::array(items.into_iter().take(n as usize).collect())
            }
            None => items.into_iter().next().unwrap_or(V::Nil),
        },
        ("take_while" | "drop_while", Some(b)) => {
            let mut i = 0;
            while i < items.len() && y(it, b, &items[i])?.truthy() {
                i += 1;
            }
            V::array(if name == "take_while" {
                items[..i].to_vec()
            } else {
                items[i..].to_vec()
            })
        }
        ("uniq", _) => {
            let mut out: Vec<V<'a>> = Vec::new();
            let mut keys: Vec<V<'a>> = Vec::new();
            for x in items {
                let k = match blk {
                    Some(b) => y(it, b, &x)?,
                    None => x.clone(),
                };
                if !keys.iter().any(|o| eql(o, &k)) {
                    keys.push(k);
                    out.push(x);
                }
            }
            V::array(out)
        }
        ("zip", _) => {
            let others: Vec<Vec<V<'a>>> = args.iter().map(list).collect();
            V::array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| {
                        let mut row = vec![x];
                        for o in &others {
                            row.push(o.get(i).cloned().unwrap_or(V::Nil));
                        }
                        V::array(row)
                    })
                    .collect(),
            )
        }
        ("to_h", _) => {
            let mut h = Hash::default();
            for x in items {
                let pair = match blk {
                    Some(b) => y(it, b, &x)?,
                    None => x,
                };
                let l = list(&pair);
                if l.len() != 2 {
                    return raise(
                        "TypeError",
                        format!("wrong element type {} (expected array)", pair.class_name()),
                    );
                }
                h.insert(l[0].clone(), l[1].clone());
            }
            V::hash(h)
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

fn unreachable_ctl<'a>() -> Ctl<'a> {
    Ctl::Raise(
        Rc::new(super::super::value::Exc {
            class: "ArgumentError".into(),
            msg: "no block given".into(),
        }),
        super::super::interp::NO_AT,
    )
}

fn sort<'a>(
    it: &mut Interp<'a, '_>,
    items: &mut [V<'a>],
    blk: Option<&Block>,
) -> Result<(), Ctl<'a>> {
    // A merge sort that can fail: compare everything first with the block or <=>.
    let mut err: Option<Ctl<'a>> = None;
    let mut v: Vec<V<'a>> = items.to_vec();
    v.sort_by(|a, b| {
        if err.is_some() {
            return std::cmp::Ordering::Equal;
        }
        let r = match blk {
            Some(bk) => match it.yield_blk(bk, vec![a.clone(), b.clone()]) {
                Ok(V::Int(n)) => Ok(n.cmp(&0)),
                Ok(other) => raise(
                    "ArgumentError",
                    format!(
                        "comparison of {} with {} failed",
                        a.class_name(),
                        String::from_utf8_lossy(&inspect(&other))
                    ),
                ),
                Err(e) => Err(e),
            },
            None => compare_or_raise(a, b),
        };
        match r {
            Ok(o) => o,
            Err(e) => {
                err = Some(e);
                std::cmp::Ordering::Equal
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    items.clone_from_slice(&v);
    Ok(())
}

fn owned_array<'a>(recv: &V<'a>) -> Option<super::super::value::RArr<'a>> {
    match recv {
        V::Array(a) => Some(a.clone()),
        _ => None,
    }
}

pub fn call<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    // Fast paths that need no copy of the elements.
    if let V::Array(a) = recv {
        let a = a.borrow();
        match (name, args) {
            ("[]", [V::Int(i)]) => {
                let n = a.len() as i64;
                let i = if *i < 0 { n + i } else { *i };
                return Some(Ok(if (0..n).contains(&i) {
                    a[i as usize].clone()
                } else {
                    V::Nil
                }));
            }
            ("size" | "length", []) => return Some(Ok(V::Int(a.len() as i64))),
            ("first", []) => return Some(Ok(a.first().cloned().unwrap_or(V::Nil))),
            ("last", []) => return Some(Ok(a.last().cloned().unwrap_or(V::Nil))),
            ("empty?", []) => return Some(Ok(V::Bool(a.is_empty()))),
            _ => {}
        }
    }
    if let V::RArr(a) = recv {
        match (name, args) {
            ("[]", [V::Int(i)]) => {
                let n = a.len() as i64;
                let i = if *i < 0 { n + i } else { *i };
                return Some(Ok(if (0..n).contains(&i) {
                    V::from_event(&a[i as usize])
                } else {
                    V::Nil
                }));
            }
            ("size" | "length", []) => return Some(Ok(V::Int(a.len() as i64))),
            ("first", []) => return Some(Ok(a.first().map_or(V::Nil, V::from_event))),
            ("last", []) => return Some(Ok(a.last().map_or(V::Nil, V::from_event))),
            ("empty?", []) => return Some(Ok(V::Bool(a.is_empty()))),
            _ => {}
        }
    }
    array_inner(it, recv, name, args, blk).transpose()
}

fn array_inner<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Result<Option<V<'a>>, Ctl<'a>> {
    let items = list(recv);
    let n = items.len() as i64;
    let v = match name {
        "size" | "length" => V::Int(n),
        "empty?" => V::Bool(items.is_empty()),
        "[]" | "slice" => {
            check_args(args, 1, 2)?;
            match (&args[0], args.get(1)) {
                (V::Int(i), None) => {
                    let i = if *i < 0 { n + i } else { *i };
                    if (0..n).contains(&i) {
                        items[i as usize].clone()
                    } else {
                        V::Nil
                    }
                }
                (V::Int(i), Some(l)) => {
                    let l = int_arg(l)?;
                    let i = if *i < 0 { n + i } else { *i };
                    if i < 0 || i > n || l < 0 {
                        V::Nil
                    } else {
                        V::array(
                            items
                                .into_iter()
                                .skip(i as usize)
                                .take(l as usize)
                                .collect(),
                        )
                    }
                }
                (V::Range(r), None) => match range_bounds(r, n)? {
                    Some((s, l)) => V::array(items.into_iter().skip(s).take(l).collect()),
                    None => V::Nil,
                },
                (V::Float(f), None) => {
                    let i = f.trunc() as i64;
                    let i = if i < 0 { n + i } else { i };
                    if (0..n).contains(&i) {
                        items[i as usize].clone()
                    } else {
                        V::Nil
                    }
                }
                (V::Big(_), _) => return int_arg(&args[0]).map(|_| None),
                (other, _) => {
                    return raise(
                        "TypeError",
                        format!(
                            "no implicit conversion of {} into Integer",
                            super::conv_name(other)
                        ),
                    )
                }
            }
        }
        "[]=" => {
            check_args(args, 2, 3)?;
            let Some(a) = owned_array(recv) else {
                return raise("FrozenError", "can't modify the event's array in place");
            };
            let i = int_arg(&args[0])?;
            let i = if i < 0 { n + i } else { i };
            if i < 0 {
                return raise("IndexError", format!("index {} too small for array", i - n));
            }
            if i > 1_000_000 {
                return raise("IndexError", "index too large");
            }
            let val = args.last().cloned().unwrap_or(V::Nil);
            let mut b = a.borrow_mut();
            while b.len() <= i as usize {
                b.push(V::Nil);
            }
            b[i as usize] = val.clone();
            val
        }
        "dig" => {
            let mut cur = it.send(
                recv.clone(),
                "[]",
                vec![arg(args, 0)],
                None,
                super::super::interp::NO_AT,
            )?;
            for k in args.iter().skip(1) {
                if matches!(cur, V::Nil) {
                    break;
                }
                cur = it.send(
                    cur,
                    "[]",
                    vec![k.clone()],
                    None,
                    super::super::interp::NO_AT,
                )?;
            }
            cur
        }
        "fetch" => {
            let i = int_arg(&arg(args, 0))?;
            let j = if i < 0 { n + i } else { i };
            if (0..n).contains(&j) {
                items[j as usize].clone()
            } else if let Some(b) = blk {
                it.yield_blk(b, vec![V::Int(i)])?
            } else if args.len() > 1 {
                args[1].clone()
            } else {
                return raise(
                    "IndexError",
                    format!("index {i} outside of array bounds: {}...{}", -n, n),
                );
            }
        }
        "first" if args.is_empty() => items.first().cloned().unwrap_or(V::Nil),
        "last" => match args.first() {
            Some(k) => {
                let k = int_arg(k)?.max(0) as usize;
                V::array(items[items.len().saturating_sub(k)..].to_vec())
            }
            None => items.last().cloned().unwrap_or(V::Nil),
        },
        "push" | "append" | "<<" => {
            let Some(a) = owned_array(recv) else {
                return raise("FrozenError", "can't modify the event's array in place");
            };
            it.charge(args.len() * 16)?;
            a.borrow_mut().extend(args.iter().cloned());
            recv.clone()
        }
        "pop" | "shift" => {
            let Some(a) = owned_array(recv) else {
                return raise("FrozenError", "can't modify the event's array in place");
            };
            let mut b = a.borrow_mut();
            if b.is_empty() {
                V::Nil
            } else if name == "pop" {
                b.pop().unwrap_or(V::Nil)
            } else {
                b.remove(0)
            }
        }
        "unshift" => {
            let Some(a) = owned_array(recv) else {
                return raise("FrozenError", "can't modify the event's array in place");
            };
            let mut b = a.borrow_mut();
            for (i, x) in args.iter().enumerate() {
                b.insert(i, x.clone());
            }
            recv.clone()
        }
        "concat" => {
            let Some(a) = owned_array(recv) else {
                return raise("FrozenError", "can't modify the event's array in place");
            };
            for x in args {
                let l = list(x);
                a.borrow_mut().extend(l);
            }
            recv.clone()
        }
        "delete" => {
            let Some(a) = owned_array(recv) else {
                return raise("FrozenError", "can't modify the event's array in place");
            };
            let t = arg(args, 0);
            let before = a.borrow().len();
            a.borrow_mut().retain(|x| !equal(x, &t));
            if a.borrow().len() == before {
                V::Nil
            } else {
                t
            }
        }
        "delete_at" => {
            let Some(a) = owned_array(recv) else {
                return raise("FrozenError", "can't modify the event's array in place");
            };
            let i = int_arg(&arg(args, 0))?;
            let i = if i < 0 { n + i } else { i };
            if (0..n).contains(&i) {
                a.borrow_mut().remove(i as usize)
            } else {
                V::Nil
            }
        }
        "map!" | "collect!" | "select!" | "reject!" | "delete_if" | "keep_if" | "uniq!"
        | "compact!" | "flatten!" | "sort!" | "reverse!" | "sort_by!" => {
            let Some(a) = owned_array(recv) else {
                return raise("FrozenError", "can't modify the event's array in place");
            };
            let base = match name {
                "map!" | "collect!" => "map",
                "select!" | "keep_if" => "select",
                "reject!" | "delete_if" => "reject",
                other => other.trim_end_matches('!'),
            };
            let r = match array_inner(it, &V::array(items), base, args, blk)? {
                Some(r) => r,
                None => return Ok(None),
            };
            *a.borrow_mut() = list(&r);
            recv.clone()
        }
        "join" => {
            let sep = match args.first() {
                Some(V::Nil) | None => Vec::new(),
                Some(s) => super::str_arg(s)?,
            };
            let mut out = Vec::new();
            join(&items, &sep, &mut out);
            it.charge(out.len())?;
            V::str(out)
        }
        "to_s" | "inspect" => V::str(inspect(recv)),
        "to_a" | "entries" | "to_ary" => recv.clone(),
        "reverse" => V::array(items.into_iter().rev().collect()),
        "compact" => V::array(items.into_iter().filter(|x| !matches!(x, V::Nil)).collect()),
        "flatten" => {
            let depth = match args.first() {
                Some(d) => int_arg(d)?,
                None => -1,
            };
            let mut out = Vec::new();
            flatten(&items, depth, &mut out);
            V::array(out)
        }
        "take" => V::array(
            items
                .into_iter()
                .take(int_arg(&arg(args, 0))?.max(0) as usize)
                .collect(),
        ),
        "drop" => V::array(
            items
                .into_iter()
                .skip(int_arg(&arg(args, 0))?.max(0) as usize)
                .collect(),
        ),
        "rotate" => {
            let k = match args.first() {
                Some(k) => int_arg(k)?,
                None => 1,
            };
            let mut v = items;
            if !v.is_empty() {
                let k = k.rem_euclid(v.len() as i64) as usize;
                v.rotate_left(k);
            }
            V::array(v)
        }
        "values_at" => {
            let mut out = Vec::new();
            for a in args {
                let i = int_arg(a)?;
                let i = if i < 0 { n + i } else { i };
                out.push(if (0..n).contains(&i) {
                    items[i as usize].clone()
                } else {
                    V::Nil
                });
            }
            V::array(out)
        }
        "+" => {
            let mut v = items;
            match &arg(args, 0) {
                o @ (V::Array(_) | V::RArr(_)) => v.extend(list(o)),
                other => {
                    return raise(
                        "TypeError",
                        format!(
                            "no implicit conversion of {} into Array",
                            super::conv_name(other)
                        ),
                    )
                }
            }
            it.charge(v.len() * 16)?;
            V::array(v)
        }
        "-" | "difference" => {
            let o = list(&arg(args, 0));
            V::array(
                items
                    .into_iter()
                    .filter(|x| !o.iter().any(|y| eql(x, y)))
                    .collect(),
            )
        }
        "&" | "intersection" => {
            let o = list(&arg(args, 0));
            let mut out: Vec<V<'a>> = Vec::new();
            for x in items {
                if o.iter().any(|y| eql(&x, y)) && !out.iter().any(|y| eql(&x, y)) {
                    out.push(x);
                }
            }
            V::array(out)
        }
        "intersect?" => {
            let o = list(&arg(args, 0));
            V::Bool(items.iter().any(|x| o.iter().any(|y| eql(x, y))))
        }
        "|" | "union" => {
            let mut out: Vec<V<'a>> = Vec::new();
            for x in items.into_iter().chain(args.iter().flat_map(list)) {
                if !out.iter().any(|y| eql(&x, y)) {
                    out.push(x);
                }
            }
            V::array(out)
        }
        "*" => match &arg(args, 0) {
            V::Int(k) => {
                if *k < 0 {
                    return raise("ArgumentError", "negative argument");
                }
                it.charge(items.len().saturating_mul(*k as usize).saturating_mul(16))?;
                let mut out = Vec::new();
                for _ in 0..*k {
                    out.extend(items.iter().cloned());
                }
                V::array(out)
            }
            s @ V::Str(_) => {
                let sep = super::str_arg(s)?;
                let mut out = Vec::new();
                join(&items, &sep, &mut out);
                V::str(out)
            }
            other => {
                return raise(
                    "TypeError",
                    format!(
                        "no implicit conversion of {} into Integer",
                        super::conv_name(other)
                    ),
                )
            }
        },
        "==" | "eql?" => V::Bool(equal(recv, &arg(args, 0))),
        "<=>" => compare(recv, &arg(args, 0)).map_or(V::Nil, |o| V::Int(o as i64)),
        "index" | "find_index" if !args.is_empty() || blk.is_some() => {
            return enumerable(it, items, "find_index", args, blk).transpose()
        }
        "rindex" => {
            let t = arg(args, 0);
            items
                .iter()
                .rposition(|x| equal(x, &t))
                .map_or(V::Nil, |i| V::Int(i as i64))
        }
        "each" if blk.is_some() => {
            let Some(b) = blk else { return Ok(None) };
            for x in &items {
                it.yield_blk(b, vec![x.clone()])?;
            }
            recv.clone()
        }
        "each_with_index" | "each_index" if blk.is_some() => {
            let Some(b) = blk else { return Ok(None) };
            for (i, x) in items.iter().enumerate() {
                if name == "each_index" {
                    it.yield_blk(b, vec![V::Int(i as i64)])?;
                } else {
                    it.yield_blk(b, vec![x.clone(), V::Int(i as i64)])?;
                }
            }
            recv.clone()
        }
        "sample" => items.first().cloned().unwrap_or(V::Nil),
        "shuffle" => recv.clone(),
        "transpose" => {
            let rows: Vec<Vec<V<'a>>> = items.iter().map(list).collect();
            let w = rows.first().map_or(0, |r| r.len());
            if rows.iter().any(|r| r.len() != w) {
                return raise("IndexError", "element size differs");
            }
            V::array(
                (0..w)
                    .map(|c| V::array(rows.iter().map(|r| r[c].clone()).collect()))
                    .collect(),
            )
        }
        "product" => {
            let mut acc: Vec<Vec<V<'a>>> = items.into_iter().map(|x| vec![x]).collect();
            for a in args {
                let l = list(a);
                it.charge(acc.len().saturating_mul(l.len()).saturating_mul(16))?;
                acc = acc
                    .into_iter()
                    .flat_map(|p| {
                        l.iter().map(move |x| {
                            let mut q = p.clone();
                            q.push(x.clone());
                            q
                        })
                    })
                    .collect();
            }
            V::array(acc.into_iter().map(V::array).collect())
        }
        "assoc" => {
            let k = arg(args, 0);
            items
                .into_iter()
                .find(|x| list(x).first().is_some_and(|f| equal(f, &k)))
                .unwrap_or(V::Nil)
        }
        "fill" => {
            let Some(a) = owned_array(recv) else {
                return raise("FrozenError", "can't modify the event's array in place");
            };
            let v = arg(args, 0);
            for x in a.borrow_mut().iter_mut() {
                *x = v.clone();
            }
            recv.clone()
        }
        "hash" => V::Int(items.len() as i64),
        "pack" => return raise("NotImplementedError", "Array#pack is not supported"),
        _ => return enumerable(it, items, name, args, blk).transpose(),
    };
    Ok(Some(v))
}

pub fn range_call<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    range_inner(it, recv, name, args, blk).transpose()
}

fn range_inner<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Result<Option<V<'a>>, Ctl<'a>> {
    let V::Range(r) = recv else { return Ok(None) };
    let contains = |x: &V<'a>| -> bool {
        let lo = match &r.0 {
            V::Nil => true,
            a => compare(a, x).is_some_and(|o| o.is_le()),
        };
        let hi = match &r.1 {
            V::Nil => true,
            b => compare(x, b).is_some_and(|o| if r.2 { o.is_lt() } else { o.is_le() }),
        };
        lo && hi
    };
    let v = match name {
        "===" | "include?" | "member?" | "cover?" => V::Bool(contains(&arg(args, 0))),
        "first" | "begin" if args.is_empty() => r.0.clone(),
        "last" | "end" if args.is_empty() => r.1.clone(),
        "exclude_end?" => V::Bool(r.2),
        "min" if args.is_empty() && blk.is_none() => match (&r.0, &r.1) {
            (V::Int(a), V::Int(b)) => {
                if a <= b && !(r.2 && a == b) {
                    V::Int(*a)
                } else {
                    V::Nil
                }
            }
            _ => r.0.clone(),
        },
        "max" if args.is_empty() && blk.is_none() => match (&r.0, &r.1) {
            (V::Int(a), V::Int(b)) => {
                let e = if r.2 { b - 1 } else { *b };
                if *a <= e {
                    V::Int(e)
                } else {
                    V::Nil
                }
            }
            _ => r.1.clone(),
        },
        "size" | "count" if args.is_empty() && blk.is_none() => match (&r.0, &r.1) {
            (V::Int(a), V::Int(b)) => {
                let e = if r.2 { b - 1 } else { *b };
                V::Int((e - a + 1).max(0))
            }
            _ => V::Nil,
        },
        "to_s" | "inspect" => V::str(if name == "to_s" {
            to_s(recv)
        } else {
            inspect(recv)
        }),
        "==" | "eql?" => V::Bool(equal(recv, &arg(args, 0))),
        "step" => {
            let st = int_arg(&arg(args, 0))?;
            let (V::Int(a), V::Int(b)) = (&r.0, &r.1) else {
                return raise("TypeError", "step needs Integer bounds");
            };
            if st <= 0 {
                return raise("ArgumentError", "step can't be negative or zero");
            }
            let mut out = Vec::new();
            let mut k = *a;
            while k < *b || (!r.2 && k == *b) {
                out.push(V::Int(k));
                if out.len() > 1_000_000 {
                    return Err(Ctl::Abort(
                        "range too large to enumerate".into(),
                        super::super::interp::NO_AT,
                    ));
                }
                k += st;
            }
            match blk {
                Some(b) => {
                    for x in &out {
                        it.yield_blk(b, vec![x.clone()])?;
                    }
                    recv.clone()
                }
                None => V::array(out),
            }
        }
        _ => {
            let items = range_items(recv, 1_000_000)?;
            if name == "each" {
                let Some(b) = blk else { return Ok(None) };
                for x in &items {
                    it.yield_blk(b, vec![x.clone()])?;
                }
                return Ok(Some(recv.clone()));
            }
            return array_inner(it, &V::array(items), name, args, blk);
        }
    };
    Ok(Some(v))
}
