//! Embedded Ruby: the `"#{...}"` of config values and record_transformer's / record_modifier's
//! `${...}` with `enable_ruby`. Expressions are parsed with a complete Ruby 3.1 grammar
//! (lib-ruby-parser), compiled once into a tree with resolved locals, and evaluated over the
//! core-library subset configs use (see docs/ruby.md). Every evaluation runs under a step and
//! a memory budget, so runaway code stops with an error instead of hanging.

pub mod compile;
pub mod fast;
pub mod interp;
pub mod methods;
pub mod regexp;
pub mod template;
pub mod value;

pub use compile::CompileError;
pub use value::V;

use interp::{Ctl, Interp};

/// What an expression can see of its host.
#[derive(Clone, Debug)]
pub struct Host {
    pub hostname: String,
    pub worker_id: String,
    /// Config-load context: `use_nil` / `use_default` are defined.
    pub config: bool,
}

/// Limits of one evaluation.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub steps: u64,
    pub bytes: usize,
}

impl Budget {
    /// Config-load expressions (run once).
    pub const CONFIG: Budget = Budget {
        steps: 10_000_000,
        bytes: 256 * 1024 * 1024,
    };
    /// Per-event expressions.
    pub const EVENT: Budget = Budget {
        steps: 200_000,
        bytes: 32 * 1024 * 1024,
    };
}

/// A Ruby exception that escaped, or a budget that ran out; `at` is a byte offset in the
/// expression's source.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalError {
    pub class: String,
    pub message: String,
    pub at: usize,
    /// A budget stop rather than a Ruby exception.
    pub aborted: bool,
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.aborted {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{} ({})", self.message, self.class)
        }
    }
}

/// A compiled expression (immutable, shared between threads).
#[derive(Debug)]
pub struct Program {
    root: compile::Node,
    nslots: usize,
    npredefined: usize,
    used: Vec<bool>,
    /// The direct form, when the expression has one of the common shapes.
    fast: Option<fast::Fast>,
}

impl Program {
    /// Parses and compiles `src`; `locals` are the predefined local variables, given values in
    /// that order by [`Program::run`].
    pub fn compile(src: &str, locals: &[&str]) -> Result<Program, CompileError> {
        let c = compile::compile(src, locals)?;
        Ok(Program {
            fast: fast::Fast::build(&c.root, locals.len()),
            root: c.root,
            nslots: c.nslots,
            npredefined: locals.len(),
            used: c.used,
        })
    }

    /// Whether the expression reads predefined local `i`.
    pub fn uses_local(&self, i: usize) -> bool {
        self.used.get(i).copied().unwrap_or(false)
    }

    pub fn run<'a>(
        &self,
        host: &Host,
        locals: impl IntoIterator<Item = V<'a>>,
        budget: Budget,
    ) -> Result<V<'a>, EvalError> {
        self.run_with_ivars(host, locals, budget, &mut Vec::new())
    }

    /// The result as an event Value: [`Program::run`] then `to_event`, with the common shapes
    /// evaluated directly on the event.
    pub fn run_value<'a>(
        &self,
        host: &Host,
        locals: &[V<'a>],
        budget: Budget,
    ) -> Result<crate::event::Value, EvalError> {
        if let Some(v) = self.fast.as_ref().and_then(|f| f.run(locals)) {
            return Ok(v);
        }
        self.run(host, locals.iter().cloned(), budget)
            .map(value::into_event)
    }

    /// Whether the expression has a direct form.
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// [`Program::run`] with instance variables shared between runs.
    pub fn run_with_ivars<'a>(
        &self,
        host: &Host,
        locals: impl IntoIterator<Item = V<'a>>,
        budget: Budget,
        ivars: &mut Vec<(String, V<'a>)>,
    ) -> Result<V<'a>, EvalError> {
        let mut it = Interp::new(
            host,
            self.nslots.max(self.npredefined),
            budget.steps,
            budget.bytes,
        );
        for (slot, v) in it.locals.iter_mut().zip(locals) {
            *slot = v;
        }
        it.ivars = std::mem::take(ivars);
        let r = it.eval(&self.root);
        *ivars = std::mem::take(&mut it.ivars);
        match r {
            Ok(v) => Ok(v),
            Err(Ctl::Raise(e, at)) => Err(EvalError {
                class: e.class.clone(),
                message: e.msg.clone(),
                at: if at == interp::NO_AT { 0 } else { at },
                aborted: false,
            }),
            Err(Ctl::Abort(m, at)) => Err(EvalError {
                class: String::new(),
                message: m,
                at: if at == interp::NO_AT { 0 } else { at },
                aborted: true,
            }),
            Err(Ctl::Next(v)) | Err(Ctl::Break(v)) => Ok(v),
        }
    }
}

/// The result of a config value's `"#{...}"`.
#[derive(Debug, PartialEq)]
pub enum Evaluated {
    Str(String),
    Nil,
    Default,
}

/// Evaluates a config value's embedded code once, as Fluentd's config parser does: with the
/// locals `hostname` and `worker_id`, and `use_nil` / `use_default`. The error carries the
/// byte offset in `code` it refers to.
pub fn eval_config(
    code: &str,
    hostname: &str,
    worker_id: &str,
) -> Result<Evaluated, (String, usize)> {
    let prog = Program::compile(code, &["hostname", "worker_id"]).map_err(|e| (e.message, e.at))?;
    let host = Host {
        hostname: hostname.to_string(),
        worker_id: worker_id.to_string(),
        config: true,
    };
    let locals = [V::str(hostname.to_string()), V::str(worker_id.to_string())];
    match prog.run(&host, locals, Budget::CONFIG) {
        Ok(V::UseNil) => Ok(Evaluated::Nil),
        Ok(V::UseDefault) => Ok(Evaluated::Default),
        Ok(v) => Ok(Evaluated::Str(
            String::from_utf8_lossy(&value::to_s(&v)).into_owned(),
        )),
        Err(e) if e.aborted => Err((format!("embedded Ruby stopped: {}", e.message), e.at)),
        Err(e) => Err((
            format!("embedded Ruby raised {}: {}", e.class, e.message),
            e.at,
        )),
    }
}

#[cfg(test)]
mod tests;
