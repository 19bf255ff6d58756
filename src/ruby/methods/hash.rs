//! Hash (and the event's record, read in place until something needs a copy).

use super::super::compile::Block;
use super::super::interp::{raise, Ctl, Interp, NO_AT, R};
use super::super::value::{eql, equal, inspect, pairs, Hash, V};
use super::{arg, check_args};

/// `h[k]` on either kind of hash.
pub fn lookup<'a>(h: &V<'a>, k: &V<'a>) -> V<'a> {
    match h {
        V::Rec(r) => match k {
            V::Str(s) => r.get(s.borrow().as_slice()).map_or(V::Nil, V::from_event),
            _ => V::Nil,
        },
        V::Hash(m) => {
            let m = m.borrow();
            match m.get(k) {
                Some(v) => v.clone(),
                None => m.default.clone().unwrap_or(V::Nil),
            }
        }
        _ => V::Nil,
    }
}

fn has<'a>(h: &V<'a>, k: &V<'a>) -> bool {
    match h {
        V::Rec(r) => match k {
            V::Str(s) => r.contains_key(s.borrow().as_slice()),
            _ => false,
        },
        V::Hash(m) => m.borrow().get(k).is_some(),
        _ => false,
    }
}

fn pair<'a>(k: V<'a>, v: V<'a>) -> V<'a> {
    V::array(vec![k, v])
}

fn from_pairs<'a>(p: Vec<(V<'a>, V<'a>)>) -> V<'a> {
    let mut h = Hash::default();
    for (k, v) in p {
        h.insert(k, v);
    }
    V::hash(h)
}

pub fn call<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    inner(it, recv, name, args, blk).transpose()
}

fn inner<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Result<Option<V<'a>>, Ctl<'a>> {
    let len = || match recv {
        V::Rec(r) => r.len(),
        V::Hash(h) => h.borrow().pairs.len(),
        _ => 0,
    };
    let v = match name {
        "[]" => {
            check_args(args, 1, 1)?;
            lookup(recv, &args[0])
        }
        "dig" => {
            check_args(args, 1, usize::MAX)?;
            let mut cur = lookup(recv, &args[0]);
            for k in &args[1..] {
                if matches!(cur, V::Nil) {
                    break;
                }
                cur = it.send(cur, "dig", vec![k.clone()], None, NO_AT)?;
            }
            cur
        }
        "fetch" => {
            check_args(args, 1, 2)?;
            if has(recv, &args[0]) {
                lookup(recv, &args[0])
            } else if let Some(b) = blk {
                it.yield_blk(b, vec![args[0].clone()])?
            } else if args.len() == 2 {
                args[1].clone()
            } else {
                return raise(
                    "KeyError",
                    format!(
                        "key not found: {}",
                        String::from_utf8_lossy(&inspect(&args[0]))
                    ),
                );
            }
        }
        "key?" | "has_key?" | "include?" | "member?" => {
            check_args(args, 1, 1)?;
            V::Bool(has(recv, &args[0]))
        }
        "keys" => V::array(pairs(recv).into_iter().map(|(k, _)| k).collect()),
        "values" => V::array(pairs(recv).into_iter().map(|(_, v)| v).collect()),
        "size" | "length" if blk.is_none() && args.is_empty() => V::Int(len() as i64),
        "count" if blk.is_none() && args.is_empty() => V::Int(len() as i64),
        "empty?" => V::Bool(len() == 0),
        "values_at" | "fetch_values" => {
            let mut out = Vec::new();
            for k in args {
                if name == "fetch_values" && !has(recv, k) {
                    return raise(
                        "KeyError",
                        format!("key not found: {}", String::from_utf8_lossy(&inspect(k))),
                    );
                }
                out.push(lookup(recv, k));
            }
            V::array(out)
        }
        "key" => {
            let t = arg(args, 0);
            pairs(recv)
                .into_iter()
                .find(|(_, v)| equal(v, &t))
                .map_or(V::Nil, |(k, _)| k)
        }
        "value?" | "has_value?" => {
            let t = arg(args, 0);
            V::Bool(pairs(recv).iter().any(|(_, v)| equal(v, &t)))
        }
        "to_h" if blk.is_none() => recv.clone().owned(),
        "to_a" | "entries" => V::array(pairs(recv).into_iter().map(|(k, v)| pair(k, v)).collect()),
        "to_s" | "inspect" => V::str(inspect(recv)),
        "==" | "eql?" => V::Bool(equal(recv, &arg(args, 0))),
        "merge" | "merge!" | "update" => {
            let mut base: Vec<(V<'a>, V<'a>)> = pairs(recv);
            for o in args {
                if !matches!(o, V::Hash(_) | V::Rec(_)) {
                    return raise(
                        "TypeError",
                        format!(
                            "no implicit conversion of {} into Hash",
                            super::conv_name(o)
                        ),
                    );
                }
                for (k, v) in pairs(o) {
                    match base.iter_mut().find(|(x, _)| eql(x, &k)) {
                        Some(slot) => {
                            slot.1 = match blk {
                                Some(b) => it.yield_blk(b, vec![k.clone(), slot.1.clone(), v])?,
                                None => v,
                            }
                        }
                        None => base.push((k, v)),
                    }
                }
            }
            if name == "merge" {
                from_pairs(base)
            } else {
                let V::Hash(h) = recv else {
                    return raise("FrozenError", "can't modify the event's record in place");
                };
                h.borrow_mut().pairs = base;
                recv.clone()
            }
        }
        "[]=" | "store" => {
            check_args(args, 2, 2)?;
            let V::Hash(h) = recv else {
                return raise("FrozenError", "can't modify the event's record in place");
            };
            it.charge(32)?;
            h.borrow_mut().insert(args[0].clone(), args[1].clone());
            args[1].clone()
        }
        "delete" => {
            let V::Hash(h) = recv else {
                return raise("FrozenError", "can't modify the event's record in place");
            };
            let r = h.borrow_mut().remove(&arg(args, 0));
            r.unwrap_or(V::Nil)
        }
        "default" => match recv {
            V::Hash(h) => h.borrow().default.clone().unwrap_or(V::Nil),
            _ => V::Nil,
        },
        "default=" => {
            if let V::Hash(h) = recv {
                h.borrow_mut().default = Some(arg(args, 0));
            }
            arg(args, 0)
        }
        "select" | "filter" | "reject" if blk.is_some() => {
            let keep = name != "reject";
            let mut out = Vec::new();
            for (k, v) in pairs(recv) {
                if let Some(b) = blk {
                    if it.yield_blk(b, vec![k.clone(), v.clone()])?.truthy() == keep {
                        out.push((k, v));
                    }
                }
            }
            from_pairs(out)
        }
        "transform_values" | "transform_keys" if blk.is_some() => {
            let mut out = Vec::new();
            for (k, v) in pairs(recv) {
                if let Some(b) = blk {
                    if name == "transform_values" {
                        out.push((k, it.yield_blk(b, vec![v])?));
                    } else {
                        out.push((it.yield_blk(b, vec![k])?, v));
                    }
                }
            }
            from_pairs(out)
        }
        "to_h" => {
            let mut out = Vec::new();
            if let Some(b) = blk {
                for (k, v) in pairs(recv) {
                    let r = it.yield_blk(b, vec![k, v])?;
                    let l = super::super::value::list(&r);
                    if l.len() != 2 {
                        return raise("TypeError", "wrong element type (expected array)");
                    }
                    out.push((l[0].clone(), l[1].clone()));
                }
            }
            from_pairs(out)
        }
        "invert" => from_pairs(pairs(recv).into_iter().map(|(k, v)| (v, k)).collect()),
        "slice" => {
            let mut out = Vec::new();
            for k in args {
                if has(recv, k) {
                    out.push((k.clone(), lookup(recv, k)));
                }
            }
            from_pairs(out)
        }
        "except" => from_pairs(
            pairs(recv)
                .into_iter()
                .filter(|(k, _)| !args.iter().any(|a| eql(a, k)))
                .collect(),
        ),
        "compact" => from_pairs(
            pairs(recv)
                .into_iter()
                .filter(|(_, v)| !matches!(v, V::Nil))
                .collect(),
        ),
        "each" | "each_pair" => {
            let Some(b) = blk else { return Ok(None) };
            for (k, v) in pairs(recv) {
                it.yield_blk(b, vec![pair(k, v)])?;
            }
            recv.clone()
        }
        "each_key" | "each_value" => {
            let Some(b) = blk else { return Ok(None) };
            for (k, v) in pairs(recv) {
                it.yield_blk(b, vec![if name == "each_key" { k } else { v }])?;
            }
            recv.clone()
        }
        "any?" if blk.is_none() && args.is_empty() => V::Bool(len() > 0),
        "first" if args.is_empty() => pairs(recv)
            .into_iter()
            .next()
            .map_or(V::Nil, |(k, v)| pair(k, v)),
        "sort" if blk.is_none() => {
            let items = pairs(recv).into_iter().map(|(k, v)| pair(k, v)).collect();
            return super::array::enumerable(it, items, "sort", args, None).transpose();
        }
        "hash" => V::Int(len() as i64),
        _ => {
            let items = pairs(recv).into_iter().map(|(k, v)| pair(k, v)).collect();
            return super::array::enumerable(it, items, name, args, blk).transpose();
        }
    };
    Ok(Some(v))
}
