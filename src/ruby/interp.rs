//! The tree-walking evaluator: control flow, locals, blocks, exceptions, and the step and
//! memory budgets that stop runaway code.

use std::rc::Rc;

use super::compile::{AsgnOp, Block, BlockBody, Call, Node, Param, Target, K};
use super::methods;
use super::regexp::{MatchData, Re};
use super::value::{exception_ancestors, to_s, write_to_s, Class, Exc, Hash, V};
use super::Host;

/// No offset known yet: the call site fills in its own.
pub const NO_AT: usize = usize::MAX;

pub enum Ctl<'a> {
    Raise(Rc<Exc>, usize),
    Next(V<'a>),
    Break(V<'a>),
    /// A budget ran out: not rescuable.
    Abort(String, usize),
}

pub type R<'a> = Result<V<'a>, Ctl<'a>>;

/// What a native block does when yielded to.
pub enum Native<'a> {
    /// Records the values yielded; answers nil.
    Collect(Vec<Vec<V<'a>>>),
    /// Answers the given values in turn (then nil).
    Replay(std::collections::VecDeque<V<'a>>),
}

pub fn raise<'a, T>(class: &str, msg: impl Into<String>) -> Result<T, Ctl<'a>> {
    Err(Ctl::Raise(
        Rc::new(Exc {
            class: class.to_string(),
            msg: msg.into(),
        }),
        NO_AT,
    ))
}

pub fn no_method<'a, T>(name: &str, recv: &V<'_>) -> Result<T, Ctl<'a>> {
    raise(
        "NoMethodError",
        format!("undefined method `{name}' for {}", recv.describe()),
    )
}

pub fn arg_count<'a, T>(given: usize, expected: &str) -> Result<T, Ctl<'a>> {
    raise(
        "ArgumentError",
        format!("wrong number of arguments (given {given}, expected {expected})"),
    )
}

pub struct Interp<'a, 'h> {
    pub locals: Vec<V<'a>>,
    pub host: &'h Host,
    pub steps: u64,
    pub max_steps: u64,
    pub alloc: usize,
    pub max_alloc: usize,
    pub last_match: Option<Rc<MatchData>>,
    pub ivars: Vec<(String, V<'a>)>,
    pub last_error: Option<Rc<Exc>>,
    pub natives: Vec<Native<'a>>,
}

impl<'a, 'h> Interp<'a, 'h> {
    pub fn new(host: &'h Host, nslots: usize, max_steps: u64, max_alloc: usize) -> Self {
        Interp {
            locals: vec![V::Nil; nslots],
            host,
            steps: 0,
            max_steps,
            alloc: 0,
            max_alloc,
            last_match: None,
            ivars: Vec::new(),
            last_error: None,
            natives: Vec::new(),
        }
    }

    /// Accounts `n` bytes about to be allocated.
    pub fn charge(&mut self, n: usize) -> Result<(), Ctl<'a>> {
        self.alloc = self.alloc.saturating_add(n);
        if self.alloc > self.max_alloc || n > self.max_alloc {
            return Err(Ctl::Abort(
                format!(
                    "memory budget exceeded (more than {} bytes built)",
                    self.max_alloc
                ),
                NO_AT,
            ));
        }
        Ok(())
    }

    #[inline]
    fn step(&mut self, at: usize) -> Result<(), Ctl<'a>> {
        self.steps += 1;
        if self.steps > self.max_steps {
            return Err(Ctl::Abort(
                format!("step budget exceeded ({} steps)", self.max_steps),
                at,
            ));
        }
        Ok(())
    }

    pub fn eval(&mut self, n: &Node) -> R<'a> {
        self.step(n.at)?;
        match self.eval_inner(n) {
            Err(Ctl::Raise(e, NO_AT)) => Err(Ctl::Raise(e, n.at)),
            Err(Ctl::Abort(e, NO_AT)) => Err(Ctl::Abort(e, n.at)),
            r => r,
        }
    }

    fn eval_inner(&mut self, n: &Node) -> R<'a> {
        Ok(match &n.kind {
            K::Nil => V::Nil,
            K::True => V::Bool(true),
            K::False => V::Bool(false),
            K::SelfObj => V::Nil,
            K::Int(i) => V::Int(*i),
            K::Big(b) => methods::bignum::from_big(b),
            K::Float(f) => V::Float(*f),
            K::Str(s) => V::str(s.clone()),
            K::DStr(parts) => V::str(self.interpolate(parts)?),
            K::Sym(s) => V::sym(s),
            K::DSym(parts) => {
                let b = self.interpolate(parts)?;
                V::sym(&String::from_utf8_lossy(&b))
            }
            K::Regex(re) => V::Regexp(re.clone()),
            K::DRegex(parts, flags) => {
                let b = self.interpolate(parts)?;
                match Re::new(&String::from_utf8_lossy(&b), *flags) {
                    Ok(r) => V::Regexp(std::sync::Arc::new(r)),
                    Err(e) => return raise("RegexpError", e),
                }
            }
            K::Array(items) => V::array(self.list(items)?),
            K::Splat(inner) => {
                let v = self.eval(inner)?;
                V::array(methods::splat(v))
            }
            K::Hash(pairs) => {
                let mut h = Hash::default();
                for (k, v) in pairs {
                    if let K::Splat(inner) = &k.kind {
                        let other = self.eval(inner)?;
                        for (k, v) in super::value::pairs(&other) {
                            h.insert(k, v);
                        }
                        continue;
                    }
                    let k = self.eval(k)?;
                    let v = self.eval(v)?;
                    h.insert(k, v);
                }
                V::hash(h)
            }
            K::Range(l, r, excl) => {
                let l = match l {
                    Some(x) => self.eval(x)?,
                    None => V::Nil,
                };
                let r = match r {
                    Some(x) => self.eval(x)?,
                    None => V::Nil,
                };
                V::Range(Rc::new((l, r, *excl)))
            }
            K::LVar(s) => self.locals[*s].clone(),
            K::LAsgn(s, v) => {
                let v = self.eval(v)?;
                self.locals[*s] = v.clone();
                v
            }
            K::MAsgn(targets, v) => {
                let v = self.eval(v)?;
                let items = match &v {
                    V::Array(_) | V::RArr(_) => super::value::list(&v),
                    other => vec![other.clone()],
                };
                self.assign_targets(targets, items);
                v
            }
            K::Const(c) => V::Class(*c),
            K::Call(c) => return self.call(c, n.at),
            K::And(a, b) => {
                let l = self.eval(a)?;
                if l.truthy() {
                    self.eval(b)?
                } else {
                    l
                }
            }
            K::Or(a, b) => {
                let l = self.eval(a)?;
                if l.truthy() {
                    l
                } else {
                    self.eval(b)?
                }
            }
            K::Not(a) => V::Bool(!self.eval(a)?.truthy()),
            K::If(c, t, f) => {
                if self.eval(c)?.truthy() {
                    self.eval(t)?
                } else {
                    self.eval(f)?
                }
            }
            K::While {
                cond,
                body,
                until,
                post,
            } => {
                let mut first = *post;
                loop {
                    if !first {
                        let c = self.eval(cond)?.truthy();
                        if c == *until {
                            break;
                        }
                    }
                    first = false;
                    match self.eval(body) {
                        Ok(_) | Err(Ctl::Next(_)) => {}
                        Err(Ctl::Break(v)) => return Ok(v),
                        Err(e) => return Err(e),
                    }
                }
                V::Nil
            }
            K::Case(subject, whens, else_) => {
                let subject = match subject {
                    Some(s) => Some(self.eval(s)?),
                    None => None,
                };
                for (pats, body) in whens {
                    for p in pats {
                        let hit = if let K::Splat(inner) = &p.kind {
                            let list = methods::splat(self.eval(inner)?);
                            let mut any = false;
                            for pv in list {
                                if self.case_eq(&pv, subject.as_ref())? {
                                    any = true;
                                    break;
                                }
                            }
                            any
                        } else {
                            let pv = self.eval(p)?;
                            self.case_eq(&pv, subject.as_ref())?
                        };
                        if hit {
                            return self.eval(body);
                        }
                    }
                }
                self.eval(else_)?
            }
            K::Seq(items) => {
                let mut last = V::Nil;
                for i in items {
                    last = self.eval(i)?;
                }
                last
            }
            K::Rescue {
                body,
                clauses,
                else_,
            } => match self.eval(body) {
                Err(Ctl::Raise(e, at)) => {
                    for c in clauses {
                        let classes: Vec<V<'a>> = if c.classes.is_empty() {
                            vec![V::Class(Class::Exception("StandardError"))]
                        } else {
                            let mut out = Vec::new();
                            for x in &c.classes {
                                let v = self.eval(x)?;
                                out.extend(methods::splat(v));
                            }
                            out
                        };
                        let ancestors = exception_ancestors(&e.class);
                        let hit = classes.iter().any(|k| match k {
                            V::Class(Class::Exception(name)) => ancestors.contains(name),
                            _ => false,
                        });
                        if hit {
                            self.last_error = Some(e.clone());
                            if let Some(s) = c.var {
                                self.locals[s] = V::Exception(e.clone());
                            }
                            return self.eval(&c.body);
                        }
                    }
                    return Err(Ctl::Raise(e, at));
                }
                Ok(v) => match else_ {
                    Some(e) => self.eval(e)?,
                    None => v,
                },
                Err(other) => return Err(other),
            },
            K::Ensure(body, ens) => {
                let r = self.eval(body);
                if let Err(Ctl::Abort(..)) = r {
                    return r;
                }
                self.eval(ens)?;
                return r;
            }
            K::OpAsgnLocal(slot, op, value) => {
                let cur = self.locals[*slot].clone();
                let v = match op {
                    AsgnOp::Or if cur.truthy() => return Ok(cur),
                    AsgnOp::And if !cur.truthy() => return Ok(cur),
                    AsgnOp::Or | AsgnOp::And => self.eval(value)?,
                    AsgnOp::Op(o) => {
                        let rhs = self.eval(value)?;
                        self.send(cur, o, vec![rhs], None, n.at)?
                    }
                };
                self.locals[*slot] = v.clone();
                v
            }
            K::OpAsgnIndex(recv, idx, op, value) => {
                let r = self.eval(recv)?;
                let idx = self.list(idx)?;
                let cur = self.send(r.clone(), "[]", idx.clone(), None, n.at)?;
                let v = match op {
                    AsgnOp::Or if cur.truthy() => return Ok(cur),
                    AsgnOp::And if !cur.truthy() => return Ok(cur),
                    AsgnOp::Or | AsgnOp::And => self.eval(value)?,
                    AsgnOp::Op(o) => {
                        let rhs = self.eval(value)?;
                        self.send(cur, o, vec![rhs], None, n.at)?
                    }
                };
                let mut args = idx;
                args.push(v.clone());
                self.send(r, "[]=", args, None, n.at)?;
                v
            }
            K::Next(v) => {
                let v = match v {
                    Some(x) => self.eval(x)?,
                    None => V::Nil,
                };
                return Err(Ctl::Next(v));
            }
            K::Break(v) => {
                let v = match v {
                    Some(x) => self.eval(x)?,
                    None => V::Nil,
                };
                return Err(Ctl::Break(v));
            }
            K::NthRef(i) => match &self.last_match {
                Some(m) => m.group(*i).map_or(V::Nil, V::str),
                None => V::Nil,
            },
            K::LastError => match &self.last_error {
                Some(e) => V::Exception(e.clone()),
                None => V::Nil,
            },
            K::LastMatch => match &self.last_match {
                Some(m) => V::Match(m.clone()),
                None => V::Nil,
            },
            K::Defined(inner) => match &inner.kind {
                K::LVar(_) => V::str("local-variable"),
                K::Const(_) => V::str("expression"),
                K::Undefined(_) => V::Nil,
                K::Call(_) => V::str("method"),
                _ => V::str("expression"),
            },
            K::IndexStr(recv, key) => {
                let r = self.eval(recv)?;
                match r {
                    V::Rec(rec) => rec.get(key.as_slice()).map_or(V::Nil, V::from_event),
                    other => return self.send(other, "[]", vec![V::str(key.clone())], None, n.at),
                }
            }
            K::Ivar(name) => self
                .ivars
                .iter()
                .find(|(n, _)| n == name)
                .map_or(V::Nil, |(_, v)| v.clone()),
            K::IvAsgn(name, v) => {
                let v = self.eval(v)?;
                match self.ivars.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => self.ivars.push((name.clone(), v.clone())),
                }
                v
            }
            K::Undefined(name) => {
                return raise(
                    "NameError",
                    format!("undefined local variable or method `{name}' for main:Object"),
                )
            }
        })
    }

    fn assign_targets(&mut self, targets: &[Target], items: Vec<V<'a>>) {
        let n = targets.len();
        let splat_at = targets.iter().position(|t| matches!(t, Target::Splat(_)));
        let mut items = items;
        for (i, t) in targets.iter().enumerate() {
            match t {
                Target::Local(s) => {
                    let idx = match splat_at {
                        Some(sp) if i > sp => items.len().saturating_sub(n - i),
                        _ => i,
                    };
                    self.locals[*s] = items.get(idx).cloned().unwrap_or(V::Nil);
                }
                Target::Splat(s) => {
                    let after = n - i - 1;
                    let end = items.len().saturating_sub(after).max(i);
                    let rest: Vec<V<'a>> = if i < items.len() {
                        items[i..end.min(items.len())].to_vec()
                    } else {
                        Vec::new()
                    };
                    self.locals[*s] = V::array(rest);
                }
                Target::Skip => {}
            }
        }
        items.clear();
    }

    fn interpolate(&mut self, parts: &[Node]) -> Result<Vec<u8>, Ctl<'a>> {
        let mut out = Vec::new();
        for p in parts {
            match &p.kind {
                K::Str(s) => out.extend_from_slice(s),
                _ => {
                    let v = self.eval(p)?;
                    write_to_s(&mut out, &v);
                }
            }
        }
        self.charge(out.len())?;
        Ok(out)
    }

    pub fn list(&mut self, items: &[Node]) -> Result<Vec<V<'a>>, Ctl<'a>> {
        let mut out = Vec::with_capacity(items.len());
        for i in items {
            if let K::Splat(inner) = &i.kind {
                let v = self.eval(inner)?;
                out.extend(methods::splat(v));
            } else {
                out.push(self.eval(i)?);
            }
        }
        Ok(out)
    }

    /// `pattern === subject` for case/when (no subject: the pattern's truthiness).
    fn case_eq(&mut self, pat: &V<'a>, subject: Option<&V<'a>>) -> Result<bool, Ctl<'a>> {
        match subject {
            None => Ok(pat.truthy()),
            Some(s) => Ok(self
                .send(pat.clone(), "===", vec![s.clone()], None, NO_AT)?
                .truthy()),
        }
    }

    fn call(&mut self, c: &Call, at: usize) -> R<'a> {
        let recv = match &c.recv {
            Some(r) => {
                let v = self.eval(r)?;
                if c.safe && matches!(v, V::Nil) {
                    return Ok(V::Nil);
                }
                Some(v)
            }
            None => None,
        };
        let args = self.list(&c.args)?;
        let r = match recv {
            Some(recv) => {
                if c.name == "[]=" {
                    // An index assignment's value is the assigned value.
                    let v = args.last().cloned().unwrap_or(V::Nil);
                    self.send(recv, "[]=", args, c.block.as_ref(), at)?;
                    return Ok(v);
                }
                self.send(recv, &c.name, args, c.block.as_ref(), at)
            }
            None => methods::kernel::call_fn(self, &c.name, args, c.block.as_ref()),
        };
        match r {
            Err(Ctl::Break(v)) if c.block.is_some() => Ok(v),
            Err(Ctl::Raise(e, NO_AT)) => Err(Ctl::Raise(e, at)),
            Err(Ctl::Abort(e, NO_AT)) => Err(Ctl::Abort(e, at)),
            other => other,
        }
    }

    pub fn send(
        &mut self,
        recv: V<'a>,
        name: &str,
        args: Vec<V<'a>>,
        blk: Option<&Block>,
        at: usize,
    ) -> R<'a> {
        self.step(at)?;
        let r = methods::dispatch(self, recv, name, args, blk)?;
        match &r {
            V::Str(s) => {
                let n = s.borrow().len();
                if n > 64 {
                    self.charge(n)?;
                }
            }
            V::Array(a) => {
                let n = a.borrow().len();
                self.charge(n * 16)?;
            }
            _ => {}
        }
        Ok(r)
    }

    /// Calls a block with `args`; one Array argument is spread over several parameters.
    pub fn yield_blk(&mut self, blk: &Block, args: Vec<V<'a>>) -> R<'a> {
        match &blk.body {
            BlockBody::Symbol(name) => {
                let mut it = args.into_iter();
                let recv = it.next().unwrap_or(V::Nil);
                self.send(recv, name, it.collect(), None, NO_AT)
            }
            BlockBody::Native(k) => {
                self.step(NO_AT)?;
                self.charge(16 * args.len().max(1))?;
                match self.natives.get_mut(*k) {
                    Some(Native::Collect(seen)) => {
                        seen.push(args);
                        Ok(V::Nil)
                    }
                    Some(Native::Replay(q)) => Ok(q.pop_front().unwrap_or(V::Nil)),
                    None => Ok(V::Nil),
                }
            }
            BlockBody::Code(body) => {
                let spread =
                    blk.params.len() > 1 || matches!(blk.params.first(), Some(Param::Splat(_)));
                let args = if spread && args.len() == 1 {
                    match &args[0] {
                        V::Array(_) | V::RArr(_) => super::value::list(&args[0]),
                        _ => args,
                    }
                } else {
                    args
                };
                self.bind(&blk.params, args);
                match self.eval(body) {
                    Err(Ctl::Next(v)) => Ok(v),
                    r => r,
                }
            }
        }
    }

    fn bind(&mut self, params: &[Param], args: Vec<V<'a>>) {
        let n = params.len();
        let splat_at = params.iter().position(|p| matches!(p, Param::Splat(_)));
        for (i, p) in params.iter().enumerate() {
            match p {
                Param::Slot(s) => {
                    let idx = match splat_at {
                        Some(sp) if i > sp => args.len().saturating_sub(n - i),
                        _ => i,
                    };
                    self.locals[*s] = args.get(idx).cloned().unwrap_or(V::Nil);
                }
                Param::Splat(s) => {
                    let after = n - i - 1;
                    let end = args.len().saturating_sub(after).max(i);
                    let rest = if i < args.len() {
                        args[i..end.min(args.len())].to_vec()
                    } else {
                        Vec::new()
                    };
                    self.locals[*s] = V::array(rest);
                }
                Param::Destructure(inner) => {
                    let v = args.get(i).cloned().unwrap_or(V::Nil);
                    let items = match &v {
                        V::Array(_) | V::RArr(_) => super::value::list(&v),
                        other => vec![other.clone()],
                    };
                    self.bind(inner, items);
                }
            }
        }
    }

    /// Runs `f` with a native block doing `native`; gives back `f`'s result and the native's
    /// final state.
    pub fn with_native(
        &mut self,
        native: Native<'a>,
        f: impl FnOnce(&mut Self, &Block) -> R<'a>,
    ) -> (R<'a>, Option<Native<'a>>) {
        let k = self.natives.len();
        self.natives.push(native);
        let blk = Block {
            params: Vec::new(),
            body: BlockBody::Native(k),
        };
        let r = f(self, &blk);
        self.natives.truncate(k + 1);
        let n = self.natives.pop();
        (r, n)
    }

    /// `to_s` through the evaluator (for interpolation of any value).
    pub fn to_s(&self, v: &V<'a>) -> Vec<u8> {
        to_s(v)
    }
}
