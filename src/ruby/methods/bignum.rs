//! Integers beyond 64 bits (Ruby's Bignum). An Integer operation that overflows `i64` is
//! redone here on `BigInt`; a result that fits 64 bits again becomes an `Int` (`int_v`), so
//! `.class` is always Integer and the two forms are never mixed up. The size of a result is
//! estimated before it is computed and charged to the memory budget, so `2 ** 100000000`
//! stops instead of running for minutes.

use std::rc::Rc;

use num_bigint::{BigInt, Sign};
use num_integer::Integer as _;
use num_traits::{Signed, ToPrimitive, Zero};

use super::super::compile::Block;
use super::super::interp::{raise, Ctl, Interp, NO_AT, R};
use super::super::value::{big_of, equal, inspect, int_to_f, int_v, V};
use super::{arg, compare, int_arg};

pub use super::super::value::MAX_INT_BITS as MAX_BITS;

/// Accounts an Integer of about `bits` bits about to be built.
pub fn charge_bits<'a>(it: &mut Interp<'a, '_>, bits: u64) -> Result<(), Ctl<'a>> {
    if bits > MAX_BITS {
        return Err(Ctl::Abort(
            format!("memory budget exceeded (an Integer of more than {MAX_BITS} bits)"),
            NO_AT,
        ));
    }
    it.charge((bits / 8) as usize)
}

fn coerce_error<'a>(o: &V<'a>) -> R<'a> {
    match o {
        V::Nil => raise("TypeError", "nil can't be coerced into Integer"),
        other => raise(
            "TypeError",
            format!("{} can't be coerced into Integer", other.class_name()),
        ),
    }
}

fn zero_div<'a>() -> R<'a> {
    raise("ZeroDivisionError", "divided by 0")
}

fn bits(b: &BigInt) -> u64 {
    b.bits()
}

/// `a ** e` for a non-negative exponent.
pub fn pow<'a>(it: &mut Interp<'a, '_>, a: &BigInt, e: &V<'a>) -> R<'a> {
    let e = match e {
        V::Int(e) => *e,
        // A Bignum exponent: only 0, 1 and -1 bases stay small.
        _ => {
            let odd = big_of(e).is_some_and(|x| x.is_odd());
            return if a.is_zero() || *a == BigInt::from(1) {
                Ok(int_v(a.clone()))
            } else if *a == BigInt::from(-1) {
                Ok(V::Int(if odd { -1 } else { 1 }))
            } else {
                charge_bits(it, u64::MAX).map(|_| V::Nil)
            };
        }
    };
    if e < 0 {
        return raise(
            "NotImplementedError",
            "Integer ** negative Integer makes a Rational, which embedded Ruby does not support",
        );
    }
    // 0, 1 and -1 stay small for any exponent (which need not fit `u32`).
    if a.magnitude() <= &num_bigint::BigUint::from(1u8) {
        return Ok(if e == 0 {
            V::Int(1)
        } else if a.is_negative() && e % 2 == 1 {
            V::Int(-1)
        } else {
            int_v(a.abs())
        });
    }
    let est = match a.abs().to_f64() {
        Some(m) if m.is_finite() => (m.log2() * e as f64).ceil() as u64 + 1,
        _ => bits(a).saturating_mul(e as u64),
    };
    charge_bits(it, est)?;
    Ok(int_v(a.pow(e as u32)))
}

/// `recv <=> o` (Integer receiver).
fn cmp_op<'a>(recv: &V<'a>, name: &str, o: &V<'a>) -> R<'a> {
    let Some(ord) = compare(recv, o) else {
        if matches!(o, V::Float(f) if f.is_nan()) {
            return Ok(V::Bool(false));
        }
        return raise(
            "ArgumentError",
            format!("comparison of Integer with {} failed", super::cmp_name(o)),
        );
    };
    Ok(V::Bool(match name {
        "<" => ord.is_lt(),
        ">" => ord.is_gt(),
        "<=" => ord.is_le(),
        _ => ord.is_ge(),
    }))
}

/// Integer methods on `BigInt`: called for a Bignum receiver, and for an `Int` receiver whose
/// 64-bit operation overflowed or whose argument is a Bignum.
pub fn call<'a>(
    it: &mut Interp<'a, '_>,
    recv: &V<'a>,
    name: &str,
    args: &[V<'a>],
    blk: Option<&Block>,
) -> Option<R<'a>> {
    let a = big_of(recv)?;
    let o = arg(args, 0);
    let ob = big_of(&o);
    let r = match (name, &o) {
        ("+" | "-" | "*", V::Float(f)) => {
            let x = int_to_f(recv);
            Ok(V::Float(match name {
                "+" => x + f,
                "-" => x - f,
                _ => x * f,
            }))
        }
        ("+" | "-", _) => match &ob {
            Some(b) => charge_bits(it, bits(&a).max(bits(b)) + 1)
                .map(|_| int_v(if name == "+" { &a + b } else { &a - b })),
            None => coerce_error(&o),
        },
        ("*", _) => match &ob {
            Some(b) => charge_bits(it, bits(&a) + bits(b)).map(|_| int_v(&a * b)),
            None => coerce_error(&o),
        },
        ("/" | "div" | "%" | "modulo" | "divmod" | "remainder", V::Float(f)) => {
            let x = int_to_f(recv);
            return super::numeric::call(it, &V::Float(x), name, &[V::Float(*f)], blk).map(|r| {
                if name == "div" {
                    r.and_then(|v| match v {
                        V::Float(x) => super::numeric::float_to_int(x.floor()),
                        other => Ok(other),
                    })
                } else {
                    r
                }
            });
        }
        ("/" | "div" | "%" | "modulo" | "divmod" | "remainder", _) => match &ob {
            Some(b) if b.is_zero() => zero_div(),
            Some(b) => Ok(match name {
                "/" | "div" => int_v(a.div_floor(b)),
                "%" | "modulo" => int_v(a.mod_floor(b)),
                "remainder" => int_v(&a % b),
                _ => {
                    let (q, m) = a.div_mod_floor(b);
                    V::array(vec![int_v(q), int_v(m)])
                }
            }),
            None => coerce_error(&o),
        },
        ("fdiv" | "quo", _) => match &o {
            V::Float(f) => Ok(V::Float(int_to_f(recv) / f)),
            V::Int(_) | V::Big(_) => Ok(V::Float(int_to_f(recv) / int_to_f(&o))),
            _ => coerce_error(&o),
        },
        ("**" | "pow", V::Float(f)) => Ok(V::Float(int_to_f(recv).powf(*f))),
        ("pow", _) if args.len() == 2 => {
            let (Some(e), Some(m)) = (ob.clone(), big_of(&args[1])) else {
                return Some(raise(
                    "TypeError",
                    "Integer#pow() 2nd argument not allowed unless all arguments are integers",
                ));
            };
            if m.is_zero() {
                zero_div()
            } else if e.is_negative() {
                raise(
                    "RangeError",
                    "Integer#pow() 1st argument cannot be negative when 2nd argument specified",
                )
            } else {
                Ok(int_v(a.modpow(&e, &m)))
            }
        }
        ("**" | "pow", V::Int(_) | V::Big(_)) => pow(it, &a, &o),
        ("**" | "pow", _) => coerce_error(&o),
        ("&" | "|" | "^", _) => match &ob {
            Some(b) => Ok(int_v(match name {
                "&" => &a & b,
                "|" => &a | b,
                _ => &a ^ b,
            })),
            None => coerce_error(&o),
        },
        ("<<" | ">>", _) => {
            let s = match &o {
                V::Int(s) => *s,
                V::Big(b) => {
                    // Shifting by more than 2**63 bits: only right shifts have a result.
                    let left = (name == "<<") != b.is_negative();
                    if left && !a.is_zero() {
                        return Some(charge_bits(it, u64::MAX).map(|_| V::Nil));
                    }
                    return Some(Ok(V::Int(if a.is_negative() && !left { -1 } else { 0 })));
                }
                _ => return Some(coerce_error(&o)),
            };
            let left = (name == "<<") == (s >= 0);
            let n = s.unsigned_abs();
            if left {
                if a.is_zero() {
                    Ok(V::Int(0))
                } else {
                    charge_bits(it, bits(&a).saturating_add(n)).map(|_| int_v(&a << n))
                }
            } else if n >= bits(&a) {
                Ok(V::Int(if a.is_negative() { -1 } else { 0 }))
            } else {
                Ok(int_v(&a >> n))
            }
        }
        ("~", _) => Ok(int_v(!&a)),
        ("-@", _) => Ok(int_v(-&a)),
        ("+@", _) => Ok(int_v(a)),
        ("abs" | "magnitude", _) => Ok(int_v(a.abs())),
        ("succ" | "next", _) => Ok(int_v(a + 1)),
        ("pred", _) => Ok(int_v(a - 1)),
        ("to_i" | "to_int" | "floor" | "ceil" | "truncate" | "round", _) if args.is_empty() => {
            Ok(int_v(a))
        }
        ("floor" | "ceil" | "truncate" | "round", V::Int(d)) => {
            if *d >= 0 {
                Ok(int_v(a))
            } else {
                // 10**|d| has about 3.33 bits per digit.
                let digits = d.unsigned_abs();
                if let Err(err) = charge_bits(it, digits.saturating_mul(10) / 3 + 1) {
                    return Some(Err(err));
                }
                let m = BigInt::from(10).pow(digits as u32);
                let (q, r) = a.div_mod_floor(&m);
                let down = &q * &m;
                Ok(int_v(match name {
                    "floor" => down,
                    "ceil" if r.is_zero() => down,
                    "ceil" => down + m,
                    "truncate" if a.is_negative() && !r.is_zero() => down + m,
                    "truncate" => down,
                    _ => {
                        let twice: BigInt = &r * 2;
                        if twice > m || (twice == m && a.is_positive()) {
                            down + m
                        } else {
                            down
                        }
                    }
                }))
            }
        }
        ("to_f", _) => Ok(V::Float(int_to_f(recv))),
        ("to_s" | "inspect", _) => {
            let base = match args.first() {
                Some(b) => match int_arg(b) {
                    Ok(b) => b,
                    Err(e) => return Some(Err(e)),
                },
                None => 10,
            };
            if !(2..=36).contains(&base) {
                raise("ArgumentError", format!("invalid radix {base}"))
            } else {
                let t = a.to_str_radix(base as u32);
                it.charge(t.len()).map(|_| V::str(t))
            }
        }
        ("zero?", _) => Ok(V::Bool(a.is_zero())),
        ("nonzero?", _) => Ok(if a.is_zero() { V::Nil } else { recv.clone() }),
        ("positive?", _) => Ok(V::Bool(a.is_positive())),
        ("negative?", _) => Ok(V::Bool(a.is_negative())),
        ("even?", _) => Ok(V::Bool(a.is_even())),
        ("odd?", _) => Ok(V::Bool(a.is_odd())),
        ("integer?" | "finite?", _) => Ok(V::Bool(true)),
        ("infinite?", _) => Ok(V::Nil),
        ("gcd" | "lcm", _) => match &ob {
            Some(b) => {
                if name == "gcd" {
                    Ok(int_v(a.gcd(b)))
                } else {
                    charge_bits(it, bits(&a) + bits(b)).map(|_| int_v(a.lcm(b)))
                }
            }
            None => raise(
                "TypeError",
                format!("not an integer: {}", String::from_utf8_lossy(&inspect(&o))),
            ),
        },
        ("digits", _) => {
            if a.is_negative() {
                raise("Math::DomainError", "out of domain")
            } else {
                let t = a.to_str_radix(10);
                it.charge(t.len() * 16)
                    .map(|_| V::array(t.bytes().rev().map(|d| V::Int((d - b'0') as i64)).collect()))
            }
        }
        ("bit_length", _) => Ok(V::Int(if a.is_negative() {
            bits(&(-&a - 1))
        } else {
            bits(&a)
        } as i64)),
        ("size", _) => Ok(V::Int((bits(&a).div_ceil(64) * 8) as i64)),
        ("chr", _) => raise("RangeError", "bignum out of char range"),
        ("hash", _) => {
            Ok(V::Int(a.iter_u64_digits().fold(0i64, |h, d| {
                h.wrapping_mul(31).wrapping_add(d as i64)
            })))
        }
        ("==" | "===" | "equal?", _) => Ok(V::Bool(equal(recv, &o))),
        ("eql?", _) => Ok(V::Bool(
            matches!(o, V::Int(_) | V::Big(_)) && equal(recv, &o),
        )),
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
            let hi = arg(args, 1);
            Ok(if compare(recv, &o).is_some_and(|x| x.is_lt()) {
                o.clone()
            } else if compare(recv, &hi).is_some_and(|x| x.is_gt()) {
                hi
            } else {
                recv.clone()
            })
        }
        ("coerce", V::Int(_) | V::Big(_)) => Ok(V::array(vec![o.clone(), recv.clone()])),
        ("coerce", _) => Ok(V::array(vec![
            V::Float(match &o {
                V::Float(f) => *f,
                _ => return Some(coerce_error(&o)),
            }),
            V::Float(int_to_f(recv)),
        ])),
        ("times", _) => {
            // Only reachable with a Bignum count: runs until the block breaks or the step
            // budget ends it.
            let b = blk?;
            let mut k = BigInt::zero();
            while k < a {
                if let Err(e) = it.yield_blk(b, vec![int_v(k.clone())]) {
                    return Some(Err(e));
                }
                k += 1;
            }
            Ok(recv.clone())
        }
        _ => return None,
    };
    Some(r)
}

/// The sign and magnitude digits of an Integer in `radix` (for `format`).
pub fn digits(v: &V<'_>, radix: u32) -> Option<(bool, String)> {
    let b = big_of(v)?;
    Some((b.sign() == Sign::Minus, b.magnitude().to_str_radix(radix)))
}

/// An owned Integer value from a BigInt reference (used by literals).
pub fn from_big<'a>(b: &BigInt) -> V<'a> {
    match b.to_i64() {
        Some(i) => V::Int(i),
        None => V::Big(Rc::new(b.clone())),
    }
}
