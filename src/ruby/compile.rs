//! From lib-ruby-parser's AST (Ruby 3.1's grammar) to the evaluator's tree: locals resolved to
//! slots, constants to the classes the evaluator knows, regexp literals compiled once. What the
//! evaluator cannot run (`def`, `class`, lambdas, globals, ...) and methods it does not know at
//! all are refused here, with the offset of the construct.

use std::collections::HashMap;
use std::sync::Arc;

use lib_ruby_parser::{Node as P, Parser, ParserOptions};

use super::methods::known_method;
use super::regexp::{Re, EXTENDED, IGNORECASE, MULTILINE};
use super::value::{Class, EXCEPTIONS};

#[derive(Debug)]
pub struct Node {
    pub kind: K,
    /// Byte offset of the construct in the source.
    pub at: usize,
}

#[derive(Debug)]
pub enum K {
    Nil,
    True,
    False,
    SelfObj,
    Int(i64),
    /// An Integer literal beyond 64 bits.
    Big(num_bigint::BigInt),
    Float(f64),
    Str(Vec<u8>),
    DStr(Vec<Node>),
    Sym(String),
    DSym(Vec<Node>),
    Regex(Arc<Re>),
    DRegex(Vec<Node>, u8),
    Array(Vec<Node>),
    Splat(Box<Node>),
    Hash(Vec<(Node, Node)>),
    Range(Option<Box<Node>>, Option<Box<Node>>, bool),
    LVar(usize),
    LAsgn(usize, Box<Node>),
    MAsgn(Vec<Target>, Box<Node>),
    Const(Class),
    Call(Box<Call>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    If(Box<Node>, Box<Node>, Box<Node>),
    While {
        cond: Box<Node>,
        body: Box<Node>,
        until: bool,
        post: bool,
    },
    Case(Option<Box<Node>>, Vec<(Vec<Node>, Node)>, Box<Node>),
    Seq(Vec<Node>),
    Rescue {
        body: Box<Node>,
        clauses: Vec<Clause>,
        else_: Option<Box<Node>>,
    },
    Ensure(Box<Node>, Box<Node>),
    /// `x op= v`, `x ||= v`, `x &&= v` on a local.
    OpAsgnLocal(usize, AsgnOp, Box<Node>),
    /// `r[i] op= v`.
    OpAsgnIndex(Box<Node>, Vec<Node>, AsgnOp, Box<Node>),
    Next(Option<Box<Node>>),
    Break(Option<Box<Node>>),
    NthRef(usize),
    LastMatch,
    /// `$!`: the exception being rescued.
    LastError,
    Defined(Box<Node>),
    /// `recv["literal"]`: read without building the key String when `recv` is the record.
    IndexStr(Box<Node>, Vec<u8>),
    /// `@name` (record_modifier's prepare_value sets them).
    Ivar(String),
    IvAsgn(String, Box<Node>),
    /// A name that is neither a local nor a method the evaluator knows: NameError when run.
    Undefined(String),
}

#[derive(Debug, Clone)]
pub enum AsgnOp {
    Op(String),
    Or,
    And,
}

#[derive(Debug)]
pub enum Target {
    Local(usize),
    Splat(usize),
    Skip,
}

#[derive(Debug)]
pub struct Clause {
    pub classes: Vec<Node>,
    pub var: Option<usize>,
    pub body: Node,
}

#[derive(Debug)]
pub struct Call {
    pub recv: Option<Node>,
    pub name: String,
    pub args: Vec<Node>,
    pub block: Option<Block>,
    pub safe: bool,
}

#[derive(Debug)]
pub enum Param {
    Slot(usize),
    Destructure(Vec<Param>),
    Splat(usize),
}

#[derive(Debug)]
pub enum BlockBody {
    Code(Node),
    /// `&:sym`: call the method on the yielded value.
    Symbol(String),
    /// A block made by the evaluator itself (never compiled): `Interp::natives[i]` decides
    /// what a yield does. Enumerators use it to see what a method yields.
    Native(usize),
}

#[derive(Debug)]
pub struct Block {
    pub params: Vec<Param>,
    pub body: BlockBody,
}

/// A compile error: the message and the byte offset it refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileError {
    pub message: String,
    pub at: usize,
}

const MAX_NESTING: usize = 128;
const MAX_SOURCE: usize = 64 * 1024;

pub struct Compiled {
    pub root: Node,
    pub nslots: usize,
    /// Which predefined locals are read.
    pub used: Vec<bool>,
}

/// Parses and compiles `src`; `locals` are predefined local variables (slots 0..).
pub fn compile(src: &str, locals: &[&str]) -> Result<Compiled, CompileError> {
    if src.len() > MAX_SOURCE {
        return Err(CompileError {
            message: format!("Ruby expression too long ({} bytes)", src.len()),
            at: 0,
        });
    }
    // The parser's tree is dropped recursively: bound the nesting before parsing.
    let mut depth = 0usize;
    for (i, c) in src.bytes().enumerate() {
        match c {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(CompileError {
                        message: "Ruby expression nested too deeply".into(),
                        at: i,
                    });
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let opts = ParserOptions {
        buffer_name: "(config)".into(),
        record_tokens: false,
        ..Default::default()
    };
    let result = Parser::new(src.as_bytes().to_vec(), opts).do_parse();
    if let Some(d) = result.diagnostics.iter().find(|d| d.is_error()) {
        return Err(CompileError {
            message: format!("syntax error, {}", d.render_message()),
            at: d.loc.begin,
        });
    }
    let mut c = Compiler {
        scopes: vec![HashMap::new()],
        nslots: 0,
        depth: 0,
        used: vec![false; locals.len()],
    };
    for l in locals {
        c.declare(l);
    }
    c.used = vec![false; locals.len()];
    let root = match result.ast {
        Some(ast) => c.node(&ast)?,
        None => Node {
            kind: K::Nil,
            at: 0,
        },
    };
    Ok(Compiled {
        root,
        nslots: c.nslots,
        used: c.used,
    })
}

struct Compiler {
    scopes: Vec<HashMap<String, usize>>,
    nslots: usize,
    depth: usize,
    used: Vec<bool>,
}

type R = Result<Node, CompileError>;

fn err<T>(message: impl Into<String>, at: usize) -> Result<T, CompileError> {
    Err(CompileError {
        message: message.into(),
        at,
    })
}

pub fn const_class(name: &str) -> Option<Class> {
    Some(match name {
        "ENV" => Class::Env,
        "File" => Class::File,
        "Dir" => Class::Dir,
        "Time" => Class::Time,
        "Socket" => Class::Socket,
        "IPAddr" => Class::IpAddr,
        "JSON" => Class::Json,
        "Integer" => Class::Integer,
        "Float" => Class::Float,
        "String" => Class::String,
        "Array" => Class::Array,
        "Hash" => Class::Hash,
        "Symbol" => Class::Symbol,
        "NilClass" => Class::NilClass,
        "TrueClass" => Class::TrueClass,
        "FalseClass" => Class::FalseClass,
        "Range" => Class::Range,
        "Regexp" => Class::Regexp,
        "MatchData" => Class::MatchData,
        "Math" => Class::Math,
        "Process" => Class::Process,
        "Enumerator" => Class::Enumerator,
        _ => {
            let e = EXCEPTIONS.iter().find(|e| **e == name)?;
            Class::Exception(e)
        }
    })
}

fn regex_flags(opts: &Option<Box<P>>) -> u8 {
    let mut f = 0;
    if let Some(o) = opts {
        if let P::RegOpt(r) = &**o {
            for c in r.options.as_deref().unwrap_or("").chars() {
                match c {
                    'i' => f |= IGNORECASE,
                    'x' => f |= EXTENDED,
                    'm' => f |= MULTILINE,
                    _ => {}
                }
            }
        }
    }
    f
}

impl Compiler {
    fn declare(&mut self, name: &str) -> usize {
        if let Some(s) = self.lookup(name) {
            return s;
        }
        let slot = self.nslots;
        self.nslots += 1;
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(name.to_string(), slot);
        }
        slot
    }

    /// A block parameter always gets a fresh slot (it shadows an outer local).
    fn fresh(&mut self, name: &str) -> usize {
        let slot = self.nslots;
        self.nslots += 1;
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(name.to_string(), slot);
        }
        slot
    }

    fn lookup(&mut self, name: &str) -> Option<usize> {
        let slot = self
            .scopes
            .iter()
            .rev()
            .find_map(|s| s.get(name).copied())?;
        if let Some(u) = self.used.get_mut(slot) {
            *u = true;
        }
        Some(slot)
    }

    fn opt(&mut self, n: &Option<Box<P>>, at: usize) -> R {
        match n {
            Some(n) => self.node(n),
            None => Ok(Node { kind: K::Nil, at }),
        }
    }

    fn boxed(&mut self, n: &P) -> Result<Box<Node>, CompileError> {
        Ok(Box::new(self.node(n)?))
    }

    fn nodes(&mut self, ns: &[P]) -> Result<Vec<Node>, CompileError> {
        ns.iter().map(|n| self.node(n)).collect()
    }

    fn seq(&mut self, ns: &[P], at: usize) -> R {
        let mut v = self.nodes(ns)?;
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Node {
                kind: K::Seq(v),
                at,
            }
        })
    }

    fn node(&mut self, n: &P) -> R {
        self.depth += 1;
        if self.depth > MAX_NESTING * 2 {
            return err("Ruby expression nested too deeply", n.expression().begin);
        }
        let r = self.node_inner(n);
        self.depth -= 1;
        r
    }

    fn call(
        &mut self,
        recv: Option<&P>,
        name: &str,
        args: &[P],
        safe: bool,
        at: usize,
        block: Option<Block>,
    ) -> R {
        let mut block = block;
        let mut cargs = Vec::new();
        for a in args {
            match a {
                P::BlockPass(bp) => {
                    let sym = match bp.value.as_deref() {
                        Some(P::Sym(s)) => s.name.to_string_lossy(),
                        _ => {
                            return err(
                                "only &:symbol can be passed as a block",
                                bp.expression_l.begin,
                            )
                        }
                    };
                    if !known_method(&sym) {
                        return err(format!("undefined method '{sym}' (not supported by ferrentd's Ruby evaluator)"), bp.expression_l.begin);
                    }
                    block = Some(Block {
                        params: Vec::new(),
                        body: BlockBody::Symbol(sym),
                    });
                }
                P::Kwargs(k) => {
                    // Keyword arguments become a trailing Hash, as in Ruby 2.
                    let mut pairs = Vec::new();
                    for p in &k.pairs {
                        match p {
                            P::Pair(pair) => {
                                pairs.push((self.node(&pair.key)?, self.node(&pair.value)?))
                            }
                            other => {
                                return err(
                                    "unsupported keyword argument",
                                    other.expression().begin,
                                )
                            }
                        }
                    }
                    cargs.push(Node {
                        kind: K::Hash(pairs),
                        at: k.expression_l.begin,
                    });
                }
                other => cargs.push(self.node(other)?),
            }
        }
        let recv = match recv {
            Some(r) => Some(self.node(r)?),
            None => None,
        };
        if !known_method(name) {
            if recv.is_none() && cargs.is_empty() && block.is_none() {
                return Ok(Node {
                    kind: K::Undefined(name.to_string()),
                    at,
                });
            }
            return err(
                format!("undefined method '{name}' (not supported by ferrentd's Ruby evaluator)"),
                at,
            );
        }
        Ok(Node {
            kind: K::Call(Box::new(Call {
                recv,
                name: name.to_string(),
                args: cargs,
                block,
                safe,
            })),
            at,
        })
    }

    fn params(&mut self, args: &P, out: &mut Vec<Param>) -> Result<(), CompileError> {
        match args {
            P::Args(a) => {
                for x in &a.args {
                    self.params(x, out)?;
                }
            }
            P::Arg(a) => out.push(Param::Slot(self.fresh(&a.name))),
            P::Procarg0(p) => {
                if p.args.len() == 1 {
                    self.params(&p.args[0], out)?;
                } else {
                    let mut inner = Vec::new();
                    for x in &p.args {
                        self.params(x, &mut inner)?;
                    }
                    out.push(Param::Destructure(inner));
                }
            }
            P::Mlhs(m) => {
                let mut inner = Vec::new();
                for x in &m.items {
                    self.params(x, &mut inner)?;
                }
                out.push(Param::Destructure(inner));
            }
            P::Restarg(r) => {
                let name = r.name.clone().unwrap_or_else(|| "*".into());
                out.push(Param::Splat(self.fresh(&name)));
            }
            P::Shadowarg(s) => {
                self.fresh(&s.name);
            }
            other => return err("unsupported block parameter", other.expression().begin),
        }
        Ok(())
    }

    fn block(&mut self, b: &lib_ruby_parser::nodes::Block) -> R {
        self.scopes.push(HashMap::new());
        let mut params = Vec::new();
        if let Some(a) = &b.args {
            self.params(a, &mut params)?;
        }
        let body = self.opt(&b.body, b.expression_l.begin);
        self.scopes.pop();
        let body = body?;
        let blk = Block {
            params,
            body: BlockBody::Code(body),
        };
        self.call_with_block(&b.call, blk)
    }

    fn call_with_block(&mut self, call: &P, blk: Block) -> R {
        match call {
            P::Send(s) => self.call(
                s.recv.as_deref(),
                &s.method_name,
                &s.args,
                false,
                s.selector_l
                    .as_ref()
                    .map_or(s.expression_l.begin, |l| l.begin),
                Some(blk),
            ),
            P::CSend(s) => self.call(
                Some(&s.recv),
                &s.method_name,
                &s.args,
                true,
                s.selector_l
                    .as_ref()
                    .map_or(s.expression_l.begin, |l| l.begin),
                Some(blk),
            ),
            other => err("unsupported block", other.expression().begin),
        }
    }

    fn target(&mut self, n: &P) -> Result<Target, CompileError> {
        Ok(match n {
            P::Lvasgn(l) => Target::Local(self.declare(&l.name)),
            P::Splat(s) => match s.value.as_deref() {
                Some(P::Lvasgn(l)) => Target::Splat(self.declare(&l.name)),
                None => Target::Skip,
                Some(o) => return err("unsupported assignment target", o.expression().begin),
            },
            other => return err("unsupported assignment target", other.expression().begin),
        })
    }

    fn node_inner(&mut self, n: &P) -> R {
        let at = n.expression().begin;
        let mk = |kind| Ok(Node { kind, at });
        match n {
            P::Nil(_) => mk(K::Nil),
            P::True(_) => mk(K::True),
            P::False(_) => mk(K::False),
            P::Self_(_) => mk(K::SelfObj),
            P::Int(i) => {
                let text = i.value.replace('_', "");
                let (neg, digits) = match text.strip_prefix('-') {
                    Some(d) => (true, d.to_string()),
                    None => (false, text.trim_start_matches('+').to_string()),
                };
                let (radix, body) = if let Some(h) =
                    digits.strip_prefix("0x").or(digits.strip_prefix("0X"))
                {
                    (16, h.to_string())
                } else if let Some(b) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
                    (2, b.to_string())
                } else if let Some(o) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
                    (8, o.to_string())
                } else if digits.len() > 1 && digits.starts_with('0') {
                    (8, digits[1..].to_string())
                } else {
                    (10, digits)
                };
                match i64::from_str_radix(&body, radix) {
                    Ok(v) => mk(K::Int(if neg { -v } else { v })),
                    Err(_) => match num_bigint::BigInt::parse_bytes(body.as_bytes(), radix) {
                        Some(b) if b.bits() <= super::value::MAX_INT_BITS => {
                            mk(K::Big(if neg { -b } else { b }))
                        }
                        _ => err("Integer literal too large", at),
                    },
                }
            }
            P::Float(f) => match f.value.replace('_', "").parse::<f64>() {
                Ok(v) => mk(K::Float(v)),
                Err(_) => err("bad Float literal", at),
            },
            P::Rational(_) | P::Complex(_) => {
                err("Rational and Complex literals are not supported", at)
            }
            P::Str(s) => mk(K::Str(s.value.as_raw().clone())),
            P::Heredoc(h) => mk(K::DStr(self.nodes(&h.parts)?)),
            P::Dstr(d) => mk(K::DStr(self.nodes(&d.parts)?)),
            P::Sym(s) => mk(K::Sym(s.name.to_string_lossy())),
            P::Dsym(d) => mk(K::DSym(self.nodes(&d.parts)?)),
            P::Xstr(_) => err("backtick commands are not supported", at),
            P::Regexp(r) => {
                let flags = regex_flags(&r.options);
                let parts = self.nodes(&r.parts)?;
                if parts.iter().all(|p| matches!(p.kind, K::Str(_))) {
                    let mut src = Vec::new();
                    for p in &parts {
                        if let K::Str(s) = &p.kind {
                            src.extend_from_slice(s);
                        }
                    }
                    let src = String::from_utf8_lossy(&src).into_owned();
                    match Re::new(&src, flags) {
                        Ok(re) => mk(K::Regex(Arc::new(re))),
                        Err(e) => err(format!("invalid regexp: {e}"), at),
                    }
                } else {
                    mk(K::DRegex(parts, flags))
                }
            }
            P::Array(a) => mk(K::Array(self.nodes(&a.elements)?)),
            P::Splat(s) => match &s.value {
                Some(v) => mk(K::Splat(self.boxed(v)?)),
                None => err("anonymous splat is not supported", at),
            },
            P::Hash(h) => {
                let mut pairs = Vec::new();
                for p in &h.pairs {
                    match p {
                        P::Pair(pair) => {
                            pairs.push((self.node(&pair.key)?, self.node(&pair.value)?))
                        }
                        P::Kwsplat(k) => {
                            // `**h` merges: a pair with a splat marker key.
                            let v = self.node(&k.value)?;
                            pairs.push((
                                Node {
                                    kind: K::Splat(Box::new(v)),
                                    at: k.expression_l.begin,
                                },
                                Node { kind: K::Nil, at },
                            ));
                        }
                        other => return err("unsupported hash element", other.expression().begin),
                    }
                }
                mk(K::Hash(pairs))
            }
            P::Irange(r) => {
                let l = match &r.left {
                    Some(x) => Some(self.boxed(x)?),
                    None => None,
                };
                let rt = match &r.right {
                    Some(x) => Some(self.boxed(x)?),
                    None => None,
                };
                mk(K::Range(l, rt, false))
            }
            P::Erange(r) => {
                let l = match &r.left {
                    Some(x) => Some(self.boxed(x)?),
                    None => None,
                };
                let rt = match &r.right {
                    Some(x) => Some(self.boxed(x)?),
                    None => None,
                };
                mk(K::Range(l, rt, true))
            }
            P::Lvar(l) => match self.lookup(&l.name) {
                Some(s) => mk(K::LVar(s)),
                None => mk(K::Undefined(l.name.clone())),
            },
            P::Lvasgn(l) => {
                let slot = self.declare(&l.name);
                let v = self.opt(&l.value, at)?;
                mk(K::LAsgn(slot, Box::new(v)))
            }
            P::Masgn(m) => {
                let value = self.node(&m.rhs)?;
                let mut targets = Vec::new();
                match &*m.lhs {
                    P::Mlhs(ml) => {
                        for t in &ml.items {
                            targets.push(self.target(t)?);
                        }
                    }
                    other => targets.push(self.target(other)?),
                }
                mk(K::MAsgn(targets, Box::new(value)))
            }
            P::Const(c) => {
                let name = match &c.scope {
                    None => c.name.clone(),
                    Some(s) => match &**s {
                        P::Cbase(_) => c.name.clone(),
                        P::Const(outer) if outer.scope.is_none() => {
                            format!("{}::{}", outer.name, c.name)
                        }
                        other => {
                            return err("unsupported constant scope", other.expression().begin)
                        }
                    },
                };
                match const_class(&name) {
                    Some(k) => mk(K::Const(k)),
                    None => err(format!("uninitialized constant {name} (not supported by ferrentd's Ruby evaluator)"), at),
                }
            }
            P::Send(s) => {
                // Predefined locals (record, tag, ...) parse as method calls.
                if s.recv.is_none() && s.args.is_empty() {
                    if let Some(slot) = self.lookup(&s.method_name) {
                        return mk(K::LVar(slot));
                    }
                }
                let sel = s.selector_l.as_ref().map_or(at, |l| l.begin);
                if s.method_name == "!" && s.args.is_empty() {
                    if let Some(r) = &s.recv {
                        return Ok(Node {
                            kind: K::Not(self.boxed(r)?),
                            at,
                        });
                    }
                }
                if s.method_name == "!=" && s.args.len() == 1 {
                    if let Some(r) = &s.recv {
                        let inner = self.call(Some(r), "==", &s.args, false, sel, None)?;
                        return Ok(Node {
                            kind: K::Not(Box::new(inner)),
                            at,
                        });
                    }
                }
                if s.method_name == "!~" && s.args.len() == 1 {
                    if let Some(r) = &s.recv {
                        let inner = self.call(Some(r), "=~", &s.args, false, sel, None)?;
                        return Ok(Node {
                            kind: K::Not(Box::new(inner)),
                            at,
                        });
                    }
                }
                if s.recv.is_none()
                    && matches!(
                        s.method_name.as_str(),
                        "lambda"
                            | "proc"
                            | "define_method"
                            | "eval"
                            | "instance_eval"
                            | "send"
                            | "__send__"
                            | "public_send"
                            | "system"
                            | "exec"
                            | "spawn"
                            | "fork"
                            | "exit"
                            | "exit!"
                            | "abort"
                            | "sleep"
                    )
                {
                    return err(
                        format!("'{}' is not supported in embedded Ruby", s.method_name),
                        sel,
                    );
                }
                self.call(s.recv.as_deref(), &s.method_name, &s.args, false, sel, None)
            }
            P::CSend(s) => {
                let sel = s.selector_l.as_ref().map_or(at, |l| l.begin);
                self.call(Some(&s.recv), &s.method_name, &s.args, true, sel, None)
            }
            P::Index(i) => {
                if let [P::Str(k)] = i.indexes.as_slice() {
                    let recv = self.boxed(&i.recv)?;
                    return Ok(Node {
                        kind: K::IndexStr(recv, k.value.as_raw().clone()),
                        at: i.begin_l.begin,
                    });
                }
                self.call(
                    Some(&i.recv),
                    "[]",
                    &i.indexes,
                    false,
                    i.begin_l.begin,
                    None,
                )
            }
            P::IndexAsgn(i) => {
                let mut args: Vec<P> = i.indexes.clone();
                match &i.value {
                    Some(v) => args.push((**v).clone()),
                    None => return err("unsupported index assignment", at),
                }
                self.call(Some(&i.recv), "[]=", &args, false, i.begin_l.begin, None)
            }
            P::Block(b) => self.block(b),
            P::Numblock(b) => {
                self.scopes.push(HashMap::new());
                let mut params = Vec::new();
                for i in 1..=b.numargs {
                    params.push(Param::Slot(self.fresh(&format!("_{i}"))));
                }
                let body = self.node(&b.body);
                self.scopes.pop();
                let blk = Block {
                    params,
                    body: BlockBody::Code(body?),
                };
                self.call_with_block(&b.call, blk)
            }
            P::And(a) => mk(K::And(self.boxed(&a.lhs)?, self.boxed(&a.rhs)?)),
            P::Or(o) => mk(K::Or(self.boxed(&o.lhs)?, self.boxed(&o.rhs)?)),
            P::If(i) => {
                let c = self.boxed(&i.cond)?;
                let t = self.opt(&i.if_true, at)?;
                let f = self.opt(&i.if_false, at)?;
                mk(K::If(c, Box::new(t), Box::new(f)))
            }
            P::IfMod(i) => {
                let c = self.boxed(&i.cond)?;
                let t = self.opt(&i.if_true, at)?;
                let f = self.opt(&i.if_false, at)?;
                mk(K::If(c, Box::new(t), Box::new(f)))
            }
            P::IfTernary(i) => {
                let c = self.boxed(&i.cond)?;
                let t = self.boxed(&i.if_true)?;
                let f = self.boxed(&i.if_false)?;
                mk(K::If(c, t, f))
            }
            P::While(w) => {
                let cond = self.boxed(&w.cond)?;
                let body = self.opt(&w.body, at)?;
                mk(K::While {
                    cond,
                    body: Box::new(body),
                    until: false,
                    post: false,
                })
            }
            P::Until(w) => {
                let cond = self.boxed(&w.cond)?;
                let body = self.opt(&w.body, at)?;
                mk(K::While {
                    cond,
                    body: Box::new(body),
                    until: true,
                    post: false,
                })
            }
            P::WhilePost(w) => {
                let cond = self.boxed(&w.cond)?;
                let body = self.boxed(&w.body)?;
                mk(K::While {
                    cond,
                    body,
                    until: false,
                    post: true,
                })
            }
            P::UntilPost(w) => {
                let cond = self.boxed(&w.cond)?;
                let body = self.boxed(&w.body)?;
                mk(K::While {
                    cond,
                    body,
                    until: true,
                    post: true,
                })
            }
            P::Case(c) => {
                let subject = match &c.expr {
                    Some(e) => Some(self.boxed(e)?),
                    None => None,
                };
                let mut whens = Vec::new();
                for w in &c.when_bodies {
                    if let P::When(w) = w {
                        let pats = self.nodes(&w.patterns)?;
                        let body = self.opt(&w.body, w.expression_l.begin)?;
                        whens.push((pats, body));
                    }
                }
                let else_ = self.opt(&c.else_body, at)?;
                mk(K::Case(subject, whens, Box::new(else_)))
            }
            P::CaseMatch(_) => err("pattern matching (case/in) is not supported", at),
            P::Begin(b) => self.seq(&b.statements, at),
            P::KwBegin(b) => self.seq(&b.statements, at),
            P::Rescue(r) => {
                let body = self.opt(&r.body, at)?;
                let mut clauses = Vec::new();
                for rb in &r.rescue_bodies {
                    if let P::RescueBody(rb) = rb {
                        let classes = match rb.exc_list.as_deref() {
                            Some(P::Array(a)) => self.nodes(&a.elements)?,
                            Some(other) => vec![self.node(other)?],
                            None => Vec::new(),
                        };
                        let var = match rb.exc_var.as_deref() {
                            Some(P::Lvasgn(l)) => Some(self.declare(&l.name)),
                            Some(other) => {
                                return err("unsupported rescue variable", other.expression().begin)
                            }
                            None => None,
                        };
                        let body = self.opt(&rb.body, rb.expression_l.begin)?;
                        clauses.push(Clause { classes, var, body });
                    }
                }
                let else_ = match &r.else_ {
                    Some(e) => Some(self.boxed(e)?),
                    None => None,
                };
                mk(K::Rescue {
                    body: Box::new(body),
                    clauses,
                    else_,
                })
            }
            P::Ensure(e) => {
                let body = self.opt(&e.body, at)?;
                let ens = self.opt(&e.ensure, at)?;
                mk(K::Ensure(Box::new(body), Box::new(ens)))
            }
            P::OpAsgn(o) => self.op_asgn(&o.recv, AsgnOp::Op(o.operator.clone()), &o.value, at),
            P::OrAsgn(o) => self.op_asgn(&o.recv, AsgnOp::Or, &o.value, at),
            P::AndAsgn(o) => self.op_asgn(&o.recv, AsgnOp::And, &o.value, at),
            P::Next(nx) => {
                let v = match nx.args.len() {
                    0 => None,
                    _ => Some(Box::new(self.seq(&nx.args, at)?)),
                };
                mk(K::Next(v))
            }
            P::Break(b) => {
                let v = match b.args.len() {
                    0 => None,
                    _ => Some(Box::new(self.seq(&b.args, at)?)),
                };
                mk(K::Break(v))
            }
            P::NthRef(r) => mk(K::NthRef(
                r.name.trim_start_matches('$').parse().unwrap_or(0),
            )),
            P::BackRef(r) if r.name == "$~" => mk(K::LastMatch),
            P::Gvar(g) if g.name == "$~" => mk(K::LastMatch),
            P::Gvar(g) if g.name == "$!" => mk(K::LastError),
            P::Defined(d) => mk(K::Defined(self.boxed(&d.value)?)),
            P::Return(_) => err("'return' is not supported in embedded Ruby", at),
            P::Def(_) | P::Defs(_) => {
                err("method definitions are not supported in embedded Ruby", at)
            }
            P::Class(_) | P::Module(_) | P::SClass(_) => {
                err("class definitions are not supported in embedded Ruby", at)
            }
            P::Lambda(_) => err("lambdas are not supported in embedded Ruby", at),
            P::Gvar(g) => err(format!("global variable {} is not supported", g.name), at),
            P::Gvasgn(g) => err(format!("global variable {} is not supported", g.name), at),
            P::Ivar(i) => mk(K::Ivar(i.name.clone())),
            P::Ivasgn(i) => {
                let v = self.opt(&i.value, at)?;
                mk(K::IvAsgn(i.name.clone(), Box::new(v)))
            }
            P::Cvar(_) | P::Cvasgn(_) => {
                err("class variables are not supported in embedded Ruby", at)
            }
            P::Casgn(_) => err("constant assignment is not supported in embedded Ruby", at),
            P::Yield(_) | P::Super(_) | P::ZSuper(_) => {
                err("yield/super are not supported in embedded Ruby", at)
            }
            P::For(_) => err("'for' is not supported in embedded Ruby; use each", at),
            P::Redo(_) | P::Retry(_) => err("redo/retry are not supported in embedded Ruby", at),
            P::File(_) => mk(K::Str(b"(config)".to_vec())),
            P::Line(_) => mk(K::Int(1)),
            P::Encoding(_) => err("__ENCODING__ is not supported", at),
            P::MatchWithLvasgn(m) => {
                // `/(?<x>..)/ =~ s` also assigns named groups: evaluate as =~ only.
                let recv = self.boxed(&m.re)?;
                let arg = self.node(&m.value)?;
                mk(K::Call(Box::new(Call {
                    recv: Some(*recv),
                    name: "=~".into(),
                    args: vec![arg],
                    block: None,
                    safe: false,
                })))
            }
            other => err(
                format!("unsupported Ruby construct '{}'", other.str_type()),
                at,
            ),
        }
    }

    fn op_asgn(&mut self, recv: &P, op: AsgnOp, value: &P, at: usize) -> R {
        let value = self.boxed(value)?;
        match recv {
            P::Lvasgn(l) => {
                let slot = self.declare(&l.name);
                Ok(Node {
                    kind: K::OpAsgnLocal(slot, op, value),
                    at,
                })
            }
            P::IndexAsgn(i) => {
                let r = self.boxed(&i.recv)?;
                let idx = self.nodes(&i.indexes)?;
                Ok(Node {
                    kind: K::OpAsgnIndex(r, idx, op, value),
                    at,
                })
            }
            other => err("unsupported assignment target", other.expression().begin),
        }
    }
}
