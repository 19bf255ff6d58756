//! Integer and Float. Integers are 64-bit here; an operation that overflows (or meets a
//! Bignum) is redone by `bignum`.

use super::super::compile::Block;
use super::super::interp::{raise, Ctl, Interp, R};
use super::super::value::{to_s, V};
use super::{arg, check_args, compare, int_arg};

/// `recv.name(args)` again on BigInt: the 64-bit operation overflowed.
fn promote<'a>(
    it: &mut Interp<'a, '_>,
    i: i64,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> R<'a> {
    let recv = V::Big(std::rc::Rc::new(num_bigint::BigInt::from(i)));
    match super::bignum::call(it, &recv, name, args, blk) {
        Some(r) => r,
        None => super::super::interp::no_method(name, &V::Int(i)),
    }
}

fn num<'a>(v: &V<'a>, op: &str, recv: &V<'a>) -> Result<f64, Ctl<'a>> {
    match v {
        V::Int(i) => Ok(*i as f64),
        V::Big(_) => Ok(super::super::value::int_to_f(v)),
        V::Float(f) => Ok(*f),
        V::Nil => raise(
            "TypeError",
            format!("nil can't be coerced into {}", recv.class_name()),
        ),
        other => {
            let _ = op;
            raise(
                "TypeError",
                format!(
                    "{} can't be coerced into {}",
                    other.class_name(),
                    recv.class_name()
                ),
            )
        }
    }
}

/// Ruby's `Float#round(digits)` for digits > 0 (`round_half_up` on doubles).
pub fn round_float(x: f64, digits: i64) -> f64 {
    if digits > 14 || !x.is_finite() {
        return x;
    }
    let s = 10f64.powi(digits as i32);
    let xs = x * s;
    let mut f = xs.round();
    if x > 0.0 {
        if (f + 0.5) / s <= x {
            f += 1.0;
        }
    } else if (f - 0.5) / s >= x {
        f -= 1.0;
    }
    f / s
}

fn int_pow<'a>(it: &mut Interp<'a, '_>, a: i64, b: i64) -> R<'a> {
    if let Ok(e) = u32::try_from(b) {
        if let Some(v) = a.checked_pow(e) {
            return Ok(V::Int(v));
        }
    }
    super::bignum::pow(it, &num_bigint::BigInt::from(a), &V::Int(b))
}

fn int_div<'a>(a: i64, b: i64) -> R<'a> {
    if b == 0 {
        return raise("ZeroDivisionError", "divided by 0");
    }
    if a == i64::MIN && b == -1 {
        return Ok(V::Big(std::rc::Rc::new(-num_bigint::BigInt::from(a))));
    }
    let q = a.wrapping_div(b);
    let q = if (a % b != 0) && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    };
    Ok(V::Int(q))
}

fn int_mod<'a>(a: i64, b: i64) -> R<'a> {
    if b == 0 {
        return raise("ZeroDivisionError", "divided by 0");
    }
    let r = a.wrapping_rem(b);
    Ok(V::Int(if r != 0 && ((r < 0) != (b < 0)) {
        r + b
    } else {
        r
    }))
}

fn float_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else {
        r
    }
}

fn int_to_s<'a>(i: i64, base: i64) -> R<'a> {
    if !(2..=36).contains(&base) {
        return raise("ArgumentError", format!("invalid radix {base}"));
    }
    let neg = i < 0;
    let mut n = i.unsigned_abs();
    let mut digits = Vec::new();
    loop {
        let d = (n % base as u64) as u32;
        digits.push(std::char::from_digit(d, base as u32).unwrap_or('0'));
        n /= base as u64;
        if n == 0 {
            break;
        }
    }
    if neg {
        digits.push('-');
    }
    Ok(V::str(digits.into_iter().rev().collect::<String>()))
}

pub fn float_to_int<'a>(f: f64) -> R<'a> {
    if !f.is_finite() {
        return raise(
            "FloatDomainError",
            super::super::value::to_s(&V::Float(f))
                .iter()
                .map(|b| *b as char)
                .collect::<String>(),
        );
    }
    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
        use num_traits::FromPrimitive;
        return Ok(
            num_bigint::BigInt::from_f64(f.trunc()).map_or(V::Int(0), super::super::value::int_v)
        );
    }
    Ok(V::Int(f as i64))
}

pub fn call<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    match recv {
        V::Int(i) => int_call(it, *i, recv, name, args, blk),
        V::Float(f) => float_call(*f, recv, name, args),
        _ => None,
    }
}

fn cmp_op<'a>(recv: &V<'a>, name: &str, o: &V<'a>) -> R<'a> {
    let ord = match compare(recv, o) {
        Some(x) => x,
        None => {
            return raise(
                "ArgumentError",
                format!(
                    "comparison of {} with {} failed",
                    recv.class_name(),
                    super::cmp_name(o)
                ),
            )
        }
    };
    Ok(V::Bool(match name {
        "<" => ord.is_lt(),
        ">" => ord.is_gt(),
        "<=" => ord.is_le(),
        _ => ord.is_ge(),
    }))
}

fn int_call<'a>(
    it: &mut Interp<'a, '_>,
    i: i64,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    let o = arg(args, 0);
    if matches!(o, V::Big(_)) || (name == "pow" && args.len() == 2) {
        return super::bignum::call(it, &V::Big(std::rc::Rc::new(i.into())), name, args, blk);
    }
    let r = match (name, &o) {
        ("+", V::Int(j)) => i
            .checked_add(*j)
            .map_or_else(|| promote(it, i, name, args, blk), |v| Ok(V::Int(v))),
        ("-", V::Int(j)) => i
            .checked_sub(*j)
            .map_or_else(|| promote(it, i, name, args, blk), |v| Ok(V::Int(v))),
        ("*", V::Int(j)) => i
            .checked_mul(*j)
            .map_or_else(|| promote(it, i, name, args, blk), |v| Ok(V::Int(v))),
        ("/" | "div", V::Int(j)) => int_div(i, *j),
        ("%" | "modulo", V::Int(j)) => int_mod(i, *j),
        ("**" | "pow", V::Int(j)) => int_pow(it, i, *j),
        ("divmod", V::Int(j)) => {
            if i == i64::MIN && *j == -1 {
                return Some(promote(it, i, name, args, blk));
            }
            let q = match int_div(i, *j) {
                Ok(q) => q,
                Err(e) => return Some(Err(e)),
            };
            let m = match int_mod(i, *j) {
                Ok(m) => m,
                Err(e) => return Some(Err(e)),
            };
            Ok(V::array(vec![q, m]))
        }
        ("remainder", V::Int(j)) => {
            if *j == 0 {
                raise("ZeroDivisionError", "divided by 0")
            } else {
                Ok(V::Int(i.wrapping_rem(*j)))
            }
        }
        (
            "+" | "-" | "*" | "/" | "%" | "**" | "pow" | "modulo" | "divmod" | "fdiv" | "div"
            | "quo" | "remainder",
            _,
        ) => {
            let f = match num(&o, name, recv) {
                Ok(f) => f,
                Err(e) => return Some(Err(e)),
            };
            return float_call(i as f64, &V::Float(i as f64), name, &[V::Float(f)]).map(|r| {
                if name == "div" {
                    r.and_then(|v| match v {
                        V::Float(x) => float_to_int(x.floor()),
                        other => Ok(other),
                    })
                } else {
                    r
                }
            });
        }
        ("&", V::Int(j)) => Ok(V::Int(i & j)),
        ("|", V::Int(j)) => Ok(V::Int(i | j)),
        ("^", V::Int(j)) => Ok(V::Int(i ^ j)),
        ("<<" | ">>", V::Int(j)) => {
            // `x << -n` is `x >> n`, and the reverse.
            let (left, n) = ((name == "<<") == (*j >= 0), j.unsigned_abs());
            if left {
                if n < 63 && i.checked_shl(n as u32).is_some_and(|v| (v >> n) == i) {
                    Ok(V::Int(i << n))
                } else if i == 0 {
                    Ok(V::Int(0))
                } else {
                    promote(it, i, "<<", &[V::Int(n.min(i64::MAX as u64) as i64)], blk)
                }
            } else {
                Ok(V::Int(if n >= 64 {
                    if i < 0 {
                        -1
                    } else {
                        0
                    }
                } else {
                    i >> n
                }))
            }
        }
        ("~", _) => Ok(V::Int(!i)),
        ("-@", _) => i
            .checked_neg()
            .map_or_else(|| promote(it, i, name, args, blk), |v| Ok(V::Int(v))),
        ("+@", _) => Ok(V::Int(i)),
        ("abs" | "magnitude", _) => i
            .checked_abs()
            .map_or_else(|| promote(it, i, name, args, blk), |v| Ok(V::Int(v))),
        ("to_i" | "to_int" | "floor" | "ceil" | "truncate", _) if args.is_empty() => Ok(V::Int(i)),
        ("round" | "floor" | "ceil" | "truncate", V::Int(d)) => {
            if *d >= 0 {
                Ok(V::Int(i))
            } else {
                let m = 10i64.checked_pow((-d) as u32).unwrap_or(i64::MAX);
                let q = i.div_euclid(m);
                let r = i.rem_euclid(m);
                let down = q * m;
                Ok(V::Int(match name {
                    "floor" => down,
                    "ceil" => {
                        if r == 0 {
                            down
                        } else {
                            down + m
                        }
                    }
                    "truncate" => {
                        if i < 0 && r != 0 {
                            down + m
                        } else {
                            down
                        }
                    }
                    _ => {
                        if r * 2 > m || (r * 2 == m && i > 0) {
                            down + m
                        } else {
                            down
                        }
                    }
                }))
            }
        }
        ("round", _) => Ok(V::Int(i)),
        ("to_f", _) => Ok(V::Float(i as f64)),
        ("to_s" | "inspect", _) => {
            let base = match args.first() {
                Some(b) => match int_arg(b) {
                    Ok(b) => b,
                    Err(e) => return Some(Err(e)),
                },
                None => 10,
            };
            int_to_s(i, base)
        }
        ("chr", _) => match u8::try_from(i) {
            Ok(b) if b < 128 => Ok(V::str(vec![b])),
            _ => match char::from_u32(i as u32) {
                Some(c) if !args.is_empty() => Ok(V::str(c.to_string())),
                _ => raise("RangeError", format!("{i} out of char range")),
            },
        },
        ("ord", _) => Ok(V::Int(i)),
        ("zero?", _) => Ok(V::Bool(i == 0)),
        ("nonzero?", _) => Ok(if i == 0 { V::Nil } else { V::Int(i) }),
        ("positive?", _) => Ok(V::Bool(i > 0)),
        ("negative?", _) => Ok(V::Bool(i < 0)),
        ("even?", _) => Ok(V::Bool(i % 2 == 0)),
        ("odd?", _) => Ok(V::Bool(i % 2 != 0)),
        ("succ" | "next", _) => i
            .checked_add(1)
            .map_or_else(|| promote(it, i, name, args, blk), |v| Ok(V::Int(v))),
        ("pred", _) => i
            .checked_sub(1)
            .map_or_else(|| promote(it, i, name, args, blk), |v| Ok(V::Int(v))),
        ("integer?", _) => Ok(V::Bool(true)),
        ("finite?", _) => Ok(V::Bool(true)),
        ("infinite?", _) => Ok(V::Nil),
        ("nan?", _) => return None,
        ("gcd", V::Int(j)) => {
            let (mut a, mut b) = (i.unsigned_abs(), j.unsigned_abs());
            while b != 0 {
                (a, b) = (b, a % b);
            }
            match i64::try_from(a) {
                Ok(g) => Ok(V::Int(g)),
                Err(_) => promote(it, i, name, args, blk),
            }
        }
        ("lcm", V::Int(j)) => {
            let (mut a, mut b) = (i.unsigned_abs(), j.unsigned_abs());
            match (i.unsigned_abs()).checked_mul(j.unsigned_abs()) {
                Some(p) if p <= i64::MAX as u64 => {
                    while b != 0 {
                        (a, b) = (b, a % b);
                    }
                    Ok(V::Int(p.checked_div(a).unwrap_or(0) as i64))
                }
                _ => promote(it, i, name, args, blk),
            }
        }
        ("digits", _) => {
            if i < 0 {
                raise("Math::DomainError", "out of domain")
            } else {
                let mut n = i;
                let mut d = Vec::new();
                loop {
                    d.push(V::Int(n % 10));
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                Ok(V::array(d))
            }
        }
        ("bit_length", _) => Ok(V::Int(
            64 - if i < 0 {
                (!i).leading_zeros()
            } else {
                i.leading_zeros()
            } as i64,
        )),
        ("times", _) => {
            let b = blk?;
            if let Err(e) = it.charge(0) {
                return Some(Err(e));
            }
            for k in 0..i.max(0) {
                if let Err(e) = it.yield_blk(b, vec![V::Int(k)]) {
                    return Some(Err(e));
                }
            }
            Ok(V::Int(i))
        }
        ("upto" | "downto", V::Int(j)) => {
            let b = blk?;
            let (j, up) = (*j, name == "upto");
            let mut k = i;
            while (up && k <= j) || (!up && k >= j) {
                if let Err(e) = it.yield_blk(b, vec![V::Int(k)]) {
                    return Some(Err(e));
                }
                k = if up { k + 1 } else { k - 1 };
            }
            Ok(V::Int(i))
        }
        ("==" | "===" | "equal?", _) => Ok(V::Bool(super::super::value::equal(recv, &o))),
        ("eql?", _) => Ok(V::Bool(matches!(o, V::Int(j) if j == i))),
        ("<=>", _) => Ok(compare(recv, &o).map_or(V::Nil, |x| V::Int(x as i64))),
        ("<" | ">" | "<=" | ">=", _) => cmp_op(recv, name, &o),
        ("between?", _) => {
            let lo = compare(recv, &o);
            let hi = compare(recv, &arg(args, 1));
            Ok(V::Bool(
                lo.is_some_and(|x| x.is_ge()) && hi.is_some_and(|x| x.is_le()),
            ))
        }
        ("clamp", _) => {
            let (lo, hi) = (o.clone(), arg(args, 1));
            Ok(if compare(recv, &lo).is_some_and(|x| x.is_lt()) {
                lo
            } else if compare(recv, &hi).is_some_and(|x| x.is_gt()) {
                hi
            } else {
                recv.clone()
            })
        }
        ("coerce", _) => Ok(V::array(vec![o.clone(), recv.clone()])),
        ("hash", _) => Ok(V::Int(i)),
        _ => return None,
    };
    Some(r)
}

fn float_call<'a>(f: f64, recv: &V<'a>, name: &str, args: &[V<'a>]) -> Option<R<'a>> {
    let o = arg(args, 0);
    let on = |r: &V<'a>| -> Result<f64, Ctl<'a>> { num(&o, name, r) };
    let r = match name {
        "+" => on(recv).map(|x| V::Float(f + x)),
        "-" => on(recv).map(|x| V::Float(f - x)),
        "*" => on(recv).map(|x| V::Float(f * x)),
        "/" | "fdiv" | "quo" => on(recv).map(|x| V::Float(f / x)),
        "%" | "modulo" => on(recv).map(|x| V::Float(float_mod(f, x))),
        "**" | "pow" => on(recv).map(|x| V::Float(f.powf(x))),
        "div" => on(recv).and_then(|x| {
            if x == 0.0 {
                raise("ZeroDivisionError", "divided by 0")
            } else {
                float_to_int((f / x).floor())
            }
        }),
        "divmod" => on(recv).and_then(|x| {
            if x == 0.0 {
                return raise("ZeroDivisionError", "divided by 0");
            }
            Ok(V::array(vec![
                float_to_int((f / x).floor())?,
                V::Float(float_mod(f, x)),
            ]))
        }),
        "remainder" => on(recv).map(|x| V::Float(f % x)),
        "-@" => Ok(V::Float(-f)),
        "+@" => Ok(V::Float(f)),
        "abs" | "magnitude" => Ok(V::Float(f.abs())),
        "to_f" => Ok(V::Float(f)),
        "to_i" | "to_int" | "truncate" if args.is_empty() => float_to_int(f.trunc()),
        "floor" | "ceil" | "round" | "truncate" => {
            let digits = match args.first() {
                Some(V::Hash(_)) | None => 0,
                Some(d) => match int_arg(d) {
                    Ok(d) => d,
                    Err(e) => return Some(Err(e)),
                },
            };
            if digits > 0 {
                let m = 10f64.powi(digits as i32);
                Ok(V::Float(match name {
                    "floor" => (f * m).floor() / m,
                    "ceil" => (f * m).ceil() / m,
                    "truncate" => (f * m).trunc() / m,
                    _ => round_float(f, digits),
                }))
            } else {
                let m = 10f64.powi((-digits) as i32);
                let x = f / m;
                let r = match name {
                    "floor" => x.floor(),
                    "ceil" => x.ceil(),
                    "truncate" => x.trunc(),
                    _ => x.round(),
                };
                float_to_int(r * m)
            }
        }
        "to_s" | "inspect" => Ok(V::str(to_s(recv))),
        "nan?" => Ok(V::Bool(f.is_nan())),
        "finite?" => Ok(V::Bool(f.is_finite())),
        "infinite?" => Ok(if f.is_infinite() {
            V::Int(if f > 0.0 { 1 } else { -1 })
        } else {
            V::Nil
        }),
        "integer?" => Ok(V::Bool(false)),
        "zero?" => Ok(V::Bool(f == 0.0)),
        "nonzero?" => Ok(if f == 0.0 { V::Nil } else { V::Float(f) }),
        "positive?" => Ok(V::Bool(f > 0.0)),
        "negative?" => Ok(V::Bool(f < 0.0)),
        "==" | "===" => Ok(V::Bool(super::super::value::equal(recv, &o))),
        "eql?" => Ok(V::Bool(matches!(o, V::Float(x) if x == f))),
        "<=>" => Ok(compare(recv, &o).map_or(V::Nil, |x| V::Int(x as i64))),
        "<" | ">" | "<=" | ">=" => cmp_op(recv, name, &o),
        "between?" => {
            let lo = compare(recv, &o);
            let hi = compare(recv, &arg(args, 1));
            Ok(V::Bool(
                lo.is_some_and(|x| x.is_ge()) && hi.is_some_and(|x| x.is_le()),
            ))
        }
        "clamp" => {
            let (lo, hi) = (o.clone(), arg(args, 1));
            Ok(if compare(recv, &lo).is_some_and(|x| x.is_lt()) {
                lo
            } else if compare(recv, &hi).is_some_and(|x| x.is_gt()) {
                hi
            } else {
                recv.clone()
            })
        }
        "coerce" => on(recv).map(|x| V::array(vec![V::Float(x), V::Float(f)])),
        _ => {
            let _ = check_args(args, 0, 0);
            return None;
        }
    };
    Some(r)
}
