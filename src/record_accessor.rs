//! record_accessor syntax (`plugin_helper/record_accessor.rb`): `key`, `$.a.b`, `$['a']['b']`,
//! `$.arr[0]`, `$['key.with.dot']`. The parameter is parsed once into a list of steps; access
//! follows Ruby's `Hash#dig`, including its errors (digging into a string or indexing an array
//! with a string), which some plugins treat differently from a missing key.

use std::fmt;

use crate::event::{Record, Value};

/// One step of a path: a hash key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(Vec<u8>),
    Index(i64),
}

/// What `Hash#dig` raises: a `TypeError` on an intermediate that cannot be dug into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigError(pub String);

impl fmt::Display for DigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DigError {}

/// A compiled accessor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordAccessor {
    source: String,
    steps: Vec<Step>,
}

impl RecordAccessor {
    /// Parses a parameter; the error text is Fluentd's `ConfigError` message.
    pub fn new(param: &str) -> Result<RecordAccessor, String> {
        let steps = if param.starts_with("$.") {
            parse_dot_notation(param)?
        } else if param.starts_with("$[") {
            parse_bracket_notation(param)?
        } else {
            vec![Step::Key(param.as_bytes().to_vec())]
        };
        Ok(RecordAccessor {
            source: param.to_string(),
            steps,
        })
    }

    /// The parameter as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn is_nested(&self) -> bool {
        self.steps.len() > 1
    }

    /// The value at the path; `None` when absent or when the path cannot be followed.
    pub fn get<'a>(&self, record: &'a Record) -> Option<&'a Value> {
        self.dig(record).ok().flatten()
    }

    /// `record.dig(*keys)` with Ruby's errors kept apart from "not found".
    pub fn dig<'a>(&self, record: &'a Record) -> Result<Option<&'a Value>, DigError> {
        let (first, rest) = match self.steps.split_first() {
            Some(x) => x,
            None => return Ok(None),
        };
        let mut cur = match first {
            Step::Key(k) => record.get(k),
            // A record is a Hash: an Integer key is never present.
            Step::Index(_) => None,
        };
        for step in rest {
            let v = match cur {
                None | Some(Value::Nil) => return Ok(None),
                Some(v) => v,
            };
            cur = dig_step(v, step)?;
        }
        Ok(cur)
    }

    /// Removes the value at the path and returns it. A path that cannot be followed is a no-op.
    pub fn delete(&self, record: &mut Record) -> Option<Value> {
        let (last, parents) = self.steps.split_last()?;
        if parents.is_empty() {
            return match last {
                Step::Key(k) => record.remove(k),
                Step::Index(_) => None,
            };
        }
        match dig_mut(record, parents)? {
            Value::Map(m) => match last {
                Step::Key(k) => m.remove(k),
                Step::Index(_) => None,
            },
            Value::Array(a) => match last {
                Step::Index(i) => {
                    let i = array_index(*i, a.len())?;
                    Some(a.remove(i))
                }
                Step::Key(_) => None,
            },
            _ => None,
        }
    }

    /// Sets the value at the path. Like Fluentd, intermediate containers are never created:
    /// when the parent does not exist, nothing happens.
    pub fn set(&self, record: &mut Record, value: Value) {
        let Some((last, parents)) = self.steps.split_last() else {
            return;
        };
        if parents.is_empty() {
            if let Step::Key(k) = last {
                record.insert(k.clone(), value);
            }
            return;
        }
        match dig_mut(record, parents) {
            Some(Value::Map(m)) => {
                if let Step::Key(k) = last {
                    m.insert(k.clone(), value);
                }
            }
            Some(Value::Array(a)) => {
                if let Step::Index(i) = *last {
                    if i >= 0 {
                        let i = i as usize;
                        if i < a.len() {
                            a[i] = value;
                        } else if i - a.len() < MAX_ARRAY_PAD {
                            // Ruby pads with nil up to the index.
                            a.resize(i, Value::Nil);
                            a.push(value);
                        }
                    } else if let Some(i) = array_index(i, a.len()) {
                        a[i] = value;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Guards `arr[huge] = v` against allocating without bound.
const MAX_ARRAY_PAD: usize = 1 << 16;

fn array_index(i: i64, len: usize) -> Option<usize> {
    if i >= 0 {
        let i = usize::try_from(i).ok()?;
        (i < len).then_some(i)
    } else {
        let back = usize::try_from(i.unsigned_abs()).ok()?;
        len.checked_sub(back)
    }
}

fn ruby_class(v: &Value) -> &'static str {
    match v {
        Value::Nil => "NilClass",
        Value::Bool(true) => "TrueClass",
        Value::Bool(false) => "FalseClass",
        Value::Int(_) | Value::UInt(_) | Value::BigInt(_) => "Integer",
        Value::Float(_) => "Float",
        Value::Str(_) | Value::Bin(_) => "String",
        Value::Array(_) => "Array",
        Value::Map(_) => "Hash",
        Value::Ext(..) => "MessagePack::ExtensionValue",
    }
}

fn dig_step<'a>(v: &'a Value, step: &Step) -> Result<Option<&'a Value>, DigError> {
    match (v, step) {
        (Value::Map(m), Step::Key(k)) => Ok(m.get(k)),
        (Value::Map(_), Step::Index(_)) => Ok(None),
        (Value::Array(a), Step::Index(i)) => Ok(array_index(*i, a.len()).and_then(|i| a.get(i))),
        (Value::Array(_), Step::Key(_)) => Err(DigError(
            "no implicit conversion of String into Integer".to_string(),
        )),
        (other, _) => Err(DigError(format!(
            "{} does not have #dig method",
            ruby_class(other)
        ))),
    }
}

fn dig_mut<'a>(record: &'a mut Record, steps: &[Step]) -> Option<&'a mut Value> {
    let (first, rest) = steps.split_first()?;
    let mut cur = match first {
        Step::Key(k) => record.get_mut(k)?,
        Step::Index(_) => return None,
    };
    for step in rest {
        cur = match (cur, step) {
            (Value::Map(m), Step::Key(k)) => m.get_mut(k)?,
            (Value::Array(a), Step::Index(i)) => {
                let i = array_index(*i, a.len())?;
                a.get_mut(i)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// Ruby's `String#split('.')`: trailing empty fields are dropped.
fn ruby_split_dot(s: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = s.split('.').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

fn parse_index(s: &str) -> i64 {
    // Ruby's to_i on an all-digit string; saturate instead of growing a Bignum.
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let v = digits.bytes().fold(0i64, |acc, b| {
        acc.saturating_mul(10).saturating_add((b - b'0') as i64)
    });
    if neg {
        -v
    } else {
        v
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_dot_notation(param: &str) -> Result<Vec<Step>, String> {
    let mut result = Vec::new();
    for key in ruby_split_dot(&param[2..]) {
        if key.contains('[') {
            result.extend(parse_dot_array_op(key, param)?);
        } else {
            result.push(Step::Key(key.as_bytes().to_vec()));
        }
    }
    if result.is_empty() {
        return Err("empty keys in dot notation".to_string());
    }
    for step in &result {
        if let Step::Key(k) = step {
            if k.iter()
                .any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c))
            {
                return Err(format!(
                    "whitespace character is not allowed in dot notation. Use bracket notation: {}",
                    String::from_utf8_lossy(k)
                ));
            }
        }
    }
    Ok(result)
}

fn parse_dot_array_op(key: &str, param: &str) -> Result<Vec<Step>, String> {
    let mut result = Vec::new();
    let start = key.find('[').unwrap_or(0);
    if start > 0 {
        result.push(Step::Key(key.as_bytes()[..start].to_vec()));
    }
    let mut key = &key[start + 1..];
    let mut in_bracket = true;
    while !key.is_empty() {
        if in_bracket {
            match key.find(']') {
                Some(i) => {
                    let index_value = &key[..i];
                    if !all_digits(index_value) {
                        return Err(format!(
                            "missing array index in '[]'. Invalid syntax: {param}"
                        ));
                    }
                    result.push(Step::Index(parse_index(index_value)));
                    key = &key[i + 1..];
                    in_bracket = false;
                }
                None => {
                    return Err(format!(
                        "'[' found but ']' not found. Invalid syntax: {param}"
                    ))
                }
            }
        } else {
            match key.find('[') {
                Some(i) => {
                    key = &key[i + 1..];
                    in_bracket = true;
                }
                None => {
                    return Err(format!(
                        "found more characters after ']'. Invalid syntax: {param}"
                    ))
                }
            }
        }
    }
    Ok(result)
}

fn parse_bracket_notation(orig: &str) -> Result<Vec<Step>, String> {
    let mut result = Vec::new();
    let mut param = &orig[1..];
    let mut in_bracket = false;
    while !param.is_empty() {
        if in_bracket {
            let b = param.as_bytes();
            if b[0] == b'\'' || b[0] == b'"' {
                // Fluentd looks for `']` first, then `"]`, anywhere in the rest.
                let Some(i) = param.find("']").or_else(|| param.find("\"]")) else {
                    return Err(format!("Incomplete bracket. Invalid syntax: {orig}"));
                };
                if b[0] != b[i] {
                    return Err(format!("Mismatched quotes. Invalid syntax: {orig}"));
                }
                // Ruby's param[1..i-1]: with i == 0 that is param[1..-1].
                let k = if i == 0 { &param[1..] } else { &param[1..i] };
                result.push(Step::Key(k.as_bytes().to_vec()));
                param = param.get(i + 2..).unwrap_or("");
                in_bracket = false;
            } else {
                let Some(i) = param.find(']') else {
                    return Err(format!(
                        "'[' found but ']' not found. Invalid syntax: {orig}"
                    ));
                };
                let index_value = &param[..i];
                let digits = index_value.strip_prefix('-').unwrap_or(index_value);
                if !all_digits(digits) {
                    return Err(format!(
                        "missing array index in '[]'. Invalid syntax: {param}"
                    ));
                }
                result.push(Step::Index(parse_index(index_value)));
                param = &param[i + 1..];
                in_bracket = false;
            }
        } else if let Some(rest) = param.strip_prefix('[') {
            param = rest;
            in_bracket = true;
        } else {
            return Err(format!(
                "found more characters after ']'. Invalid syntax: {orig}"
            ));
        }
    }
    if result.is_empty() {
        return Err("empty keys in bracket notation".to_string());
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Step {
        Step::Key(s.as_bytes().to_vec())
    }

    fn steps(p: &str) -> Vec<Step> {
        RecordAccessor::new(p).unwrap().steps().to_vec()
    }

    fn rec() -> Record {
        let mut inner = Record::new();
        inner.insert("ns", Value::from("prod-1"));
        let mut r = Record::new();
        r.insert("k8s", Value::Map(inner));
        r.insert(
            "arr",
            Value::Array(vec![Value::Int(10), Value::Int(20), Value::Int(30)]),
        );
        r.insert("key.with.dot", Value::from("d"));
        r.insert("s", Value::from("str"));
        r
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(steps("key"), vec![key("key")]);
        assert_eq!(steps("$.a.b.c"), vec![key("a"), key("b"), key("c")]);
        assert_eq!(steps("$['a']['b']"), vec![key("a"), key("b")]);
        assert_eq!(steps("$[\"a\"][\"b\"]"), vec![key("a"), key("b")]);
        assert_eq!(steps("$.arr[0]"), vec![key("arr"), Step::Index(0)]);
        assert_eq!(
            steps("$.arr[0][12]"),
            vec![key("arr"), Step::Index(0), Step::Index(12)]
        );
        assert_eq!(steps("$['key.with.dot']"), vec![key("key.with.dot")]);
        assert_eq!(steps("$['arr'][-1]"), vec![key("arr"), Step::Index(-1)]);
        assert_eq!(steps("$.a..b"), vec![key("a"), key(""), key("b")]);
        assert_eq!(steps("$.a."), vec![key("a")]);
        // a plain key is never parsed, whatever it contains
        assert_eq!(steps("a.b"), vec![key("a.b")]);
        // Fluentd's quirk: `$["]` names the key `]`
        assert_eq!(steps("$[']"), vec![key("]")]);
    }

    #[test]
    fn invalid_syntax_is_a_config_error_text() {
        let err = |p: &str| RecordAccessor::new(p).unwrap_err();
        assert_eq!(err("$."), "empty keys in dot notation");
        assert_eq!(
            err("$.a[x]"),
            "missing array index in '[]'. Invalid syntax: $.a[x]"
        );
        assert_eq!(
            err("$.a[-1]"),
            "missing array index in '[]'. Invalid syntax: $.a[-1]"
        );
        assert_eq!(
            err("$.a[1"),
            "'[' found but ']' not found. Invalid syntax: $.a[1"
        );
        assert_eq!(
            err("$.a[1]x"),
            "found more characters after ']'. Invalid syntax: $.a[1]x"
        );
        assert_eq!(
            err("$.a b"),
            "whitespace character is not allowed in dot notation. Use bracket notation: a b"
        );
        assert_eq!(err("$['a"), "Incomplete bracket. Invalid syntax: $['a");
        assert_eq!(
            err("$[\"a']\"]"),
            "Mismatched quotes. Invalid syntax: $[\"a']\"]"
        );
        assert_eq!(
            err("$['a']x"),
            "found more characters after ']'. Invalid syntax: $['a']x"
        );
        assert_eq!(
            err("$[x]"),
            "missing array index in '[]'. Invalid syntax: x]"
        );
        assert_eq!(
            err("$[1"),
            "'[' found but ']' not found. Invalid syntax: $[1"
        );
    }

    #[test]
    fn get_follows_dig() {
        let r = rec();
        let get = |p: &str| RecordAccessor::new(p).unwrap().get(&r).cloned();
        assert_eq!(get("$.k8s.ns"), Some(Value::from("prod-1")));
        assert_eq!(get("$['k8s']['ns']"), Some(Value::from("prod-1")));
        assert_eq!(get("$.arr[1]"), Some(Value::Int(20)));
        assert_eq!(get("$['arr'][-1]"), Some(Value::Int(30)));
        assert_eq!(get("$.arr[3]"), None);
        assert_eq!(get("$['key.with.dot']"), Some(Value::from("d")));
        assert_eq!(get("$.key.with.dot"), None);
        assert_eq!(
            get("k8s").and_then(|v| v.as_map().map(|m| m.len())),
            Some(1)
        );
        assert_eq!(get("$.nope.x"), None);
        // digging into a string raises in Ruby; `get` sees it as absent, `dig` tells
        assert_eq!(get("$.s.x"), None);
        let a = RecordAccessor::new("$.s.x").unwrap();
        assert_eq!(
            a.dig(&r),
            Err(DigError("String does not have #dig method".to_string()))
        );
        let a = RecordAccessor::new("$.arr.x").unwrap();
        assert!(a.dig(&r).is_err());
    }

    #[test]
    fn delete_top_level_and_nested() {
        let mut r = rec();
        assert_eq!(
            RecordAccessor::new("s").unwrap().delete(&mut r),
            Some(Value::from("str"))
        );
        assert!(!r.contains_key("s"));
        assert_eq!(
            RecordAccessor::new("$.k8s.ns").unwrap().delete(&mut r),
            Some(Value::from("prod-1"))
        );
        assert_eq!(r.get("k8s"), Some(&Value::Map(Record::new())));
        assert_eq!(
            RecordAccessor::new("$.arr[0]").unwrap().delete(&mut r),
            Some(Value::Int(10))
        );
        assert_eq!(
            r.get("arr"),
            Some(&Value::Array(vec![Value::Int(20), Value::Int(30)]))
        );
        // missing paths are no-ops
        assert_eq!(RecordAccessor::new("$.x.y").unwrap().delete(&mut r), None);
        assert_eq!(RecordAccessor::new("$.arr.y").unwrap().delete(&mut r), None);
        assert_eq!(
            RecordAccessor::new("$.arr[9]").unwrap().delete(&mut r),
            None
        );
    }

    #[test]
    fn set_never_creates_parents() {
        let mut r = rec();
        RecordAccessor::new("new")
            .unwrap()
            .set(&mut r, Value::Int(1));
        assert_eq!(r.get("new"), Some(&Value::Int(1)));
        RecordAccessor::new("$.k8s.ns")
            .unwrap()
            .set(&mut r, Value::Int(2));
        assert_eq!(
            RecordAccessor::new("$.k8s.ns").unwrap().get(&r),
            Some(&Value::Int(2))
        );
        RecordAccessor::new("$.missing.x")
            .unwrap()
            .set(&mut r, Value::Int(3));
        assert!(!r.contains_key("missing"));
        RecordAccessor::new("$.arr[4]")
            .unwrap()
            .set(&mut r, Value::Int(50));
        assert_eq!(
            r.get("arr"),
            Some(&Value::Array(vec![
                Value::Int(10),
                Value::Int(20),
                Value::Int(30),
                Value::Nil,
                Value::Int(50)
            ]))
        );
        RecordAccessor::new("$['arr'][-1]")
            .unwrap()
            .set(&mut r, Value::Int(5));
        RecordAccessor::new("$['arr'][-9]")
            .unwrap()
            .set(&mut r, Value::Int(5));
        assert_eq!(
            RecordAccessor::new("$.arr[4]").unwrap().get(&r),
            Some(&Value::Int(5))
        );
    }
}
