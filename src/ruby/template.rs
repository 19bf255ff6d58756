//! A config string with `${...}` placeholders turned into one Ruby expression, as the plugins
//! that evaluate them do: a lone `${expr}` is `expr` itself (its value keeps its type), any
//! other string becomes an interpolated string literal with `${` read as `#{`.

use super::{Budget, CompileError, EvalError, Host, Program, V};

/// How a string with placeholders becomes a Ruby string literal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Wrap {
    /// record_transformer: `%Q[...]`.
    PercentQ,
    /// record_modifier: `"..."`.
    DoubleQuote,
}

#[derive(Debug)]
pub struct Template {
    /// The Ruby code evaluated (for messages).
    pub code: String,
    prog: Program,
    /// A string literal with nothing for Ruby to interpret evaluates to itself.
    constant: Option<Vec<u8>>,
}

/// Whether `s` is exactly one placeholder (`${` once, at the start, and a final `}`).
pub fn is_single(s: &str) -> bool {
    s.matches("${").count() == 1 && s.starts_with("${") && s.ends_with('}')
}

impl Template {
    /// `typed`: a lone placeholder is evaluated as its expression.
    pub fn new(
        s: &str,
        wrap: Wrap,
        typed: bool,
        locals: &[&str],
    ) -> Result<Template, CompileError> {
        let code = if typed && is_single(s) {
            s[2..s.len() - 1].to_string()
        } else {
            let body = s.replace("${", "#{");
            match wrap {
                Wrap::PercentQ => format!("%Q[{body}]"),
                Wrap::DoubleQuote => format!("\"{body}\""),
            }
        };
        let prog = Program::compile(&code, locals)?;
        let constant = if s.contains(['$', '#', '\\', '[', ']', '"']) {
            None
        } else {
            Some(s.as_bytes().to_vec())
        };
        Ok(Template {
            code,
            prog,
            constant,
        })
    }

    pub fn eval<'a>(
        &self,
        host: &Host,
        locals: impl IntoIterator<Item = V<'a>>,
    ) -> Result<V<'a>, EvalError> {
        if let Some(c) = &self.constant {
            return Ok(V::str(c.clone()));
        }
        self.prog.run(host, locals, Budget::EVENT)
    }

    /// The result as an event Value (see [`Program::run_value`]).
    pub fn eval_value<'a>(
        &self,
        host: &Host,
        locals: &[V<'a>],
    ) -> Result<crate::event::Value, EvalError> {
        if let Some(c) = &self.constant {
            return Ok(crate::event::Value::Str(c.clone()));
        }
        self.prog.run_value(host, locals, Budget::EVENT)
    }

    pub fn eval_with_ivars<'a>(
        &self,
        host: &Host,
        locals: impl IntoIterator<Item = V<'a>>,
        ivars: &mut Vec<(String, V<'a>)>,
    ) -> Result<V<'a>, EvalError> {
        if let Some(c) = &self.constant {
            return Ok(V::str(c.clone()));
        }
        self.prog.run_with_ivars(host, locals, Budget::EVENT, ivars)
    }

    /// The bytes of a template with nothing to evaluate.
    pub fn constant(&self) -> Option<&[u8]> {
        self.constant.as_deref()
    }

    /// Which predefined locals (by index) the expression reads.
    pub fn uses(&self, i: usize) -> bool {
        self.prog.uses_local(i)
    }
}
