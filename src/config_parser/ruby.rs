//! Embedded Ruby in double-quoted config values, `"#{...}"`. Fluentd evaluates arbitrary Ruby;
//! ferrentd evaluates the subset that configs use: `ENV['X']`, `ENV.fetch('X', 'd')` (also with a
//! block), `||`, `Socket.gethostname`, `hostname`, `worker_id`, `use_nil`, `use_default`, string
//! and number literals, `+ - * / %`, comparisons with `? :`, `File.read`, and common string
//! methods. Anything else is a config error that names the expression. Hand-written because no
//! crate evaluates this Ruby subset.

use super::ParseOptions;

/// The result of an embedded expression.
#[derive(Debug, PartialEq)]
pub enum Evaluated {
    Str(String),
    Nil,
    Default,
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    UseNil,
    UseDefault,
    /// The `ENV`, `Socket`, `File` constants.
    Const(&'static str),
}

impl Val {
    fn truthy(&self) -> bool {
        !matches!(self, Val::Nil | Val::Bool(false))
    }

    fn to_s(&self) -> String {
        match self {
            Val::Nil | Val::UseNil | Val::UseDefault => String::new(),
            Val::Bool(b) => b.to_string(),
            Val::Int(i) => i.to_string(),
            Val::Float(f) => float_to_s(*f),
            Val::Str(s) => s.clone(),
            Val::Const(c) => c.to_string(),
        }
    }
}

pub fn eval(code: &str, opts: &ParseOptions) -> Result<Evaluated, String> {
    let unsupported = || format!("unsupported embedded Ruby expression \"#{{{code}}}\"");
    let tokens = tokenize(code).map_err(|_| unsupported())?;
    let mut p = Eval {
        tokens,
        pos: 0,
        opts,
    };
    let v = p.expr().map_err(|e| match e {
        Fail::Unsupported => unsupported(),
        Fail::Message(m) => format!("{m} in \"#{{{code}}}\""),
    })?;
    if p.pos != p.tokens.len() {
        return Err(unsupported());
    }
    Ok(match v {
        Val::UseNil => Evaluated::Nil,
        Val::UseDefault => Evaluated::Default,
        other => Evaluated::Str(other.to_s()),
    })
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Const(String),
    Str(String),
    Int(i64),
    Float(f64),
    Sym(&'static str),
}

const SYMBOLS: &[&str] = &[
    "||", "&&", "==", "!=", "<=", ">=", "::", "(", ")", "[", "]", "{", "}", ",", ".", "+", "-",
    "*", "/", "%", "?", ":", "<", ">", "!",
];

fn tokenize(code: &str) -> Result<Vec<Tok>, ()> {
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let q = c;
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&c) = chars.get(i) else { return Err(()) };
                i += 1;
                if c == q {
                    break;
                }
                if c == '\\' {
                    let Some(&n) = chars.get(i) else { return Err(()) };
                    i += 1;
                    match (q, n) {
                        ('"', 'n') => s.push('\n'),
                        ('"', 't') => s.push('\t'),
                        (_, n) if n == q || n == '\\' => s.push(n),
                        (_, n) => {
                            s.push('\\');
                            s.push(n);
                        }
                    }
                } else if q == '"' && c == '#' && chars.get(i) == Some(&'{') {
                    // nested interpolation is beyond the subset
                    return Err(());
                } else {
                    s.push(c);
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
                i += 1;
            }
            let is_float =
                i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit();
            if is_float {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let s: String = chars[start..i].iter().filter(|c| **c != '_').collect();
                out.push(Tok::Float(s.parse().map_err(|_| ())?));
            } else {
                let s: String = chars[start..i].iter().filter(|c| **c != '_').collect();
                out.push(Tok::Int(s.parse().map_err(|_| ())?));
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '?' || chars[i] == '!')
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            if c.is_uppercase() {
                out.push(Tok::Const(s));
            } else {
                out.push(Tok::Ident(s));
            }
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let sym = SYMBOLS
                .iter()
                .find(|s| rest.starts_with(**s))
                .ok_or(())?;
            out.push(Tok::Sym(sym));
            i += sym.chars().count();
        }
    }
    Ok(out)
}

enum Fail {
    Unsupported,
    Message(String),
}

type R = Result<Val, Fail>;

struct Eval<'o> {
    tokens: Vec<Tok>,
    pos: usize,
    opts: &'o ParseOptions,
}

impl Eval<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, sym: &str) -> bool {
        if let Some(Tok::Sym(s)) = self.peek() {
            if *s == sym {
                self.pos += 1;
                return true;
            }
        }
        false
    }

    fn expect(&mut self, sym: &str) -> Result<(), Fail> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(Fail::Unsupported)
        }
    }

    fn expr(&mut self) -> R {
        let cond = self.or()?;
        if self.eat("?") {
            let a = self.expr()?;
            self.expect(":")?;
            let b = self.expr()?;
            return Ok(if cond.truthy() { a } else { b });
        }
        Ok(cond)
    }

    fn or(&mut self) -> R {
        let mut v = self.and()?;
        while self.eat("||") {
            let r = self.and()?;
            if !v.truthy() {
                v = r;
            }
        }
        Ok(v)
    }

    fn and(&mut self) -> R {
        let mut v = self.cmp()?;
        while self.eat("&&") {
            let r = self.cmp()?;
            if v.truthy() {
                v = r;
            }
        }
        Ok(v)
    }

    fn cmp(&mut self) -> R {
        let l = self.add()?;
        for op in ["==", "!="] {
            if self.eat(op) {
                let r = self.add()?;
                let eq = l == r;
                return Ok(Val::Bool(if op == "==" { eq } else { !eq }));
            }
        }
        Ok(l)
    }

    fn add(&mut self) -> R {
        let mut v = self.mul()?;
        loop {
            if self.eat("+") {
                let r = self.mul()?;
                v = match (v, r) {
                    (Val::Str(a), Val::Str(b)) => Val::Str(a + &b),
                    (Val::Int(a), Val::Int(b)) => Val::Int(a.wrapping_add(b)),
                    (a, b) => Val::Float(num(&a)? + num(&b)?),
                };
            } else if self.eat("-") {
                let r = self.mul()?;
                v = match (v, r) {
                    (Val::Int(a), Val::Int(b)) => Val::Int(a.wrapping_sub(b)),
                    (a, b) => Val::Float(num(&a)? - num(&b)?),
                };
            } else {
                return Ok(v);
            }
        }
    }

    fn mul(&mut self) -> R {
        let mut v = self.unary()?;
        loop {
            if self.eat("*") {
                let r = self.unary()?;
                v = match (v, r) {
                    (Val::Int(a), Val::Int(b)) => Val::Int(a.wrapping_mul(b)),
                    (Val::Str(s), Val::Int(n)) if n >= 0 => Val::Str(s.repeat(n as usize)),
                    (a, b) => Val::Float(num(&a)? * num(&b)?),
                };
            } else if self.eat("/") {
                let r = self.unary()?;
                v = match (v, r) {
                    (Val::Int(_), Val::Int(0)) => {
                        return Err(Fail::Message("divided by 0".into()))
                    }
                    (Val::Int(a), Val::Int(b)) => Val::Int(a.div_euclid(b)),
                    (a, b) => Val::Float(num(&a)? / num(&b)?),
                };
            } else if self.eat("%") {
                let r = self.unary()?;
                v = match (v, r) {
                    (Val::Int(_), Val::Int(0)) => {
                        return Err(Fail::Message("divided by 0".into()))
                    }
                    (Val::Int(a), Val::Int(b)) => Val::Int(a.rem_euclid(b)),
                    _ => return Err(Fail::Unsupported),
                };
            } else {
                return Ok(v);
            }
        }
    }

    fn unary(&mut self) -> R {
        if self.eat("-") {
            return match self.unary()? {
                Val::Int(i) => Ok(Val::Int(-i)),
                Val::Float(f) => Ok(Val::Float(-f)),
                _ => Err(Fail::Unsupported),
            };
        }
        if self.eat("!") {
            let v = self.unary()?;
            return Ok(Val::Bool(!v.truthy()));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> R {
        let mut v = self.primary()?;
        loop {
            if self.eat("[") {
                let key = self.expr()?;
                self.expect("]")?;
                v = match (&v, key) {
                    (Val::Const("ENV"), k) => env(&k.to_s()),
                    (Val::Str(s), Val::Int(i)) => {
                        let chars: Vec<char> = s.chars().collect();
                        let idx = if i < 0 { chars.len() as i64 + i } else { i };
                        chars
                            .get(idx as usize)
                            .map(|c| Val::Str(c.to_string()))
                            .unwrap_or(Val::Nil)
                    }
                    _ => return Err(Fail::Unsupported),
                };
            } else if self.eat(".") || self.eat("::") {
                let Some(Tok::Ident(m)) = self.peek().cloned() else {
                    return Err(Fail::Unsupported);
                };
                self.pos += 1;
                let args = self.args()?;
                v = self.call(v, &m, args)?;
            } else {
                return Ok(v);
            }
        }
    }

    fn args(&mut self) -> Result<Vec<Val>, Fail> {
        let mut args = Vec::new();
        if self.eat("(") {
            if !self.eat(")") {
                loop {
                    args.push(self.expr()?);
                    if self.eat(")") {
                        break;
                    }
                    self.expect(",")?;
                }
            }
        }
        // `ENV.fetch('X') { 'default' }`: the block's value is the default.
        if self.eat("{") {
            let v = self.expr()?;
            self.expect("}")?;
            args.push(v);
        }
        Ok(args)
    }

    fn call(&mut self, recv: Val, method: &str, args: Vec<Val>) -> R {
        match (&recv, method) {
            (Val::Const("ENV"), "fetch") => {
                let key = args.first().ok_or(Fail::Unsupported)?.to_s();
                match std::env::var(&key) {
                    Ok(v) => Ok(Val::Str(v)),
                    Err(_) => args.get(1).cloned().ok_or_else(|| {
                        Fail::Message(format!("key not found: \"{key}\""))
                    }),
                }
            }
            (Val::Const("ENV"), "key?" | "has_key?" | "include?") => {
                let key = args.first().ok_or(Fail::Unsupported)?.to_s();
                Ok(Val::Bool(std::env::var_os(key).is_some()))
            }
            (Val::Const("Socket"), "gethostname") => Ok(Val::Str(self.opts.hostname.clone())),
            (Val::Const("File"), "read") => {
                let path = args.first().ok_or(Fail::Unsupported)?.to_s();
                std::fs::read_to_string(&path)
                    .map(Val::Str)
                    .map_err(|e| Fail::Message(format!("{path}: {e}")))
            }
            (Val::Const("File"), "exist?") => {
                let path = args.first().ok_or(Fail::Unsupported)?.to_s();
                Ok(Val::Bool(std::path::Path::new(&path).exists()))
            }
            (_, "to_s") => Ok(Val::Str(recv.to_s())),
            (Val::Str(s), "to_i") => Ok(Val::Int(super::types::ruby_to_i(s))),
            (Val::Float(f), "to_i") => Ok(Val::Int(*f as i64)),
            (Val::Int(i), "to_i") => Ok(Val::Int(*i)),
            (Val::Nil, "to_i") => Ok(Val::Int(0)),
            (Val::Str(s), "to_f") => Ok(Val::Float(super::types::ruby_to_f(s))),
            (Val::Int(i), "to_f") => Ok(Val::Float(*i as f64)),
            (Val::Str(s), "upcase") => Ok(Val::Str(s.to_uppercase())),
            (Val::Str(s), "downcase") => Ok(Val::Str(s.to_lowercase())),
            (Val::Str(s), "strip") => Ok(Val::Str(s.trim().to_string())),
            (Val::Str(s), "chomp") => Ok(Val::Str(
                s.strip_suffix("\r\n")
                    .or_else(|| s.strip_suffix('\n'))
                    .unwrap_or(s)
                    .to_string(),
            )),
            (Val::Str(s), "capitalize") => {
                let mut c = s.chars();
                Ok(Val::Str(match c.next() {
                    Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase(),
                    None => String::new(),
                }))
            }
            (Val::Str(s), "length" | "size") => Ok(Val::Int(s.chars().count() as i64)),
            (Val::Str(s), "empty?") => Ok(Val::Bool(s.is_empty())),
            (Val::Nil, "nil?") => Ok(Val::Bool(true)),
            (_, "nil?") => Ok(Val::Bool(false)),
            (Val::Str(s), "gsub" | "sub") if args.len() == 2 => {
                let (from, to) = (args[0].to_s(), args[1].to_s());
                Ok(Val::Str(if method == "gsub" {
                    s.replace(&from, &to)
                } else {
                    s.replacen(&from, &to, 1)
                }))
            }
            _ => Err(Fail::Unsupported),
        }
    }

    fn primary(&mut self) -> R {
        let Some(tok) = self.peek().cloned() else {
            return Err(Fail::Unsupported);
        };
        self.pos += 1;
        match tok {
            Tok::Str(s) => Ok(Val::Str(s)),
            Tok::Int(i) => Ok(Val::Int(i)),
            Tok::Float(f) => Ok(Val::Float(f)),
            Tok::Sym("(") => {
                let v = self.expr()?;
                self.expect(")")?;
                Ok(v)
            }
            Tok::Const(c) => match c.as_str() {
                "ENV" => Ok(Val::Const("ENV")),
                "Socket" => Ok(Val::Const("Socket")),
                "File" => Ok(Val::Const("File")),
                _ => Err(Fail::Unsupported),
            },
            Tok::Ident(id) => match id.as_str() {
                "nil" => Ok(Val::Nil),
                "true" => Ok(Val::Bool(true)),
                "false" => Ok(Val::Bool(false)),
                "hostname" => Ok(Val::Str(self.opts.hostname.clone())),
                "worker_id" => Ok(Val::Str(self.opts.worker_id.clone())),
                "use_nil" => Ok(Val::UseNil),
                "use_default" => Ok(Val::UseDefault),
                _ => Err(Fail::Unsupported),
            },
            Tok::Sym(_) => Err(Fail::Unsupported),
        }
    }
}

/// Ruby's `Float#to_s` for the plain magnitudes configs use.
fn float_to_s(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

fn env(key: &str) -> Val {
    std::env::var(key).map(Val::Str).unwrap_or(Val::Nil)
}

fn num(v: &Val) -> Result<f64, Fail> {
    match v {
        Val::Int(i) => Ok(*i as f64),
        Val::Float(f) => Ok(*f),
        _ => Err(Fail::Unsupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: &str) -> Result<Evaluated, String> {
        let opts = ParseOptions {
            hostname: "host1".into(),
            worker_id: "0".into(),
        };
        eval(code, &opts)
    }

    fn s(v: &str) -> Result<Evaluated, String> {
        Ok(Evaluated::Str(v.into()))
    }

    #[test]
    fn env_forms() {
        std::env::set_var("FERRENTD_RUBY_T", "set");
        std::env::remove_var("FERRENTD_RUBY_UNSET");
        assert_eq!(ev("ENV['FERRENTD_RUBY_T']"), s("set"));
        assert_eq!(ev("ENV[\"FERRENTD_RUBY_T\"]"), s("set"));
        assert_eq!(ev("ENV['FERRENTD_RUBY_UNSET']"), s(""));
        assert_eq!(ev("ENV.fetch('FERRENTD_RUBY_UNSET', 'dflt')"), s("dflt"));
        assert_eq!(ev("ENV.fetch('FERRENTD_RUBY_T', 'dflt')"), s("set"));
        assert_eq!(ev("ENV.fetch('FERRENTD_RUBY_UNSET') { 'blk' }"), s("blk"));
        assert_eq!(ev("ENV['FERRENTD_RUBY_UNSET'] || 'd'"), s("d"));
        assert!(ev("ENV.fetch('FERRENTD_RUBY_UNSET')").is_err());
    }

    #[test]
    fn hostname_worker_and_specials() {
        assert_eq!(ev("Socket.gethostname"), s("host1"));
        assert_eq!(ev("hostname"), s("host1"));
        assert_eq!(ev("worker_id"), s("0"));
        assert_eq!(ev("use_nil"), Ok(Evaluated::Nil));
        assert_eq!(ev("use_default"), Ok(Evaluated::Default));
    }

    #[test]
    fn arithmetic_strings_and_methods() {
        assert_eq!(ev("1 + 2"), s("3"));
        assert_eq!(ev("2 * (3 + 4) - 1"), s("13"));
        assert_eq!(ev("7 / 2"), s("3"));
        assert_eq!(ev("'abc'.upcase"), s("ABC"));
        assert_eq!(ev("'a' + 'b'"), s("ab"));
        assert_eq!(ev("'42'.to_i + 1"), s("43"));
        assert_eq!(ev("1 == 1 ? 'y' : 'n'"), s("y"));
        assert_eq!(ev("1.5 + 1"), s("2.5"));
    }

    #[test]
    fn unsupported_expressions_name_themselves() {
        let e = ev("system('rm -rf /')").unwrap_err();
        assert!(e.contains("system('rm -rf /')"), "{e}");
        assert!(ev("Foo.bar").is_err());
        assert!(ev("1 +").is_err());
        assert!(ev("1 / 0").is_err());
    }
}
