//! `@type record_modifier` (filter, fluent-plugin-record-modifier): sets fields from
//! `<record>` values with `${...}` Ruby expressions, then `remove_keys` or `whitelist_keys`
//! (`keep_keys`), `<replace>` rules and `char_encoding`.
//!
//! Unlike record_transformer, each `<record>` value is evaluated against the record as modified
//! so far (the plugin assigns `record[k]` in order), a lone `${expr}` keeps its Ruby type, any
//! other string with placeholders is a `"..."` literal, and `time` is the event time
//! (`Fluent::EventTime`, shown as its seconds). `prepare_value` runs before the expressions of
//! each event; the instance variables it sets (`@x`) are visible to them.

use serde::Deserialize;

use super::{Filter, PluginContext};
use crate::config_parser::{ConfigError, Element, ParamValue};
use crate::event::{EventStream, EventTime, Record, Value};
use crate::router::ErrorSink;
use crate::ruby::regexp::Re;
use crate::ruby::template::{Template, Wrap};
use crate::ruby::value::{to_event, V};
use crate::ruby::{Budget, Host, Program};

#[derive(Deserialize)]
struct ReplaceConf {
    key: String,
    expression: String,
    replace: String,
}

#[derive(Deserialize)]
struct RecordModifierConf {
    char_encoding: Option<String>,
    remove_keys: Option<String>,
    whitelist_keys: Option<String>,
    keep_keys: Option<String>,
    prepare_value: Option<String>,
    #[serde(default)]
    replace: Vec<ReplaceConf>,
    /// Read from the element directly (order and raw values).
    #[serde(default)]
    #[allow(dead_code)]
    record: Vec<crate::config_parser::Nested>,
}

const BUILTIN: &[&str] = &[
    "type",
    "@type",
    "log_level",
    "@log_level",
    "id",
    "@id",
    "@label",
    "char_encoding",
    "remove_keys",
    "whitelist_keys",
    "keep_keys",
    "prepare_value",
];

const LOCALS: &[&str] = &["tag", "time", "record", "tag_parts"];

enum Expander {
    Fixed(Value),
    Ruby(Template),
}

struct Replace {
    key: String,
    re: Re,
    replace: String,
}

/// `char_encoding from:to` (convert) or `to` (label only: the bytes stay).
struct Encoding {
    from: &'static encoding_rs::Encoding,
    to: Option<&'static encoding_rs::Encoding>,
    /// The target is ASCII-8BIT / US-ASCII: anything non-ASCII becomes `?`.
    to_ascii: bool,
}

pub struct RecordModifier {
    map: Vec<(String, Expander)>,
    prepare: Option<Program>,
    remove_keys: Option<Vec<String>>,
    whitelist_keys: Option<Vec<String>>,
    replaces: Vec<Replace>,
    encoding: Option<Encoding>,
    has_tag_parts: bool,
    host: Host,
    errors: ErrorSink,
}

fn find_encoding(name: &str) -> Option<(&'static encoding_rs::Encoding, bool)> {
    match name.to_ascii_lowercase().as_str() {
        "ascii-8bit" | "binary" | "us-ascii" | "ascii" => Some((encoding_rs::WINDOWS_1252, true)),
        other => encoding_rs::Encoding::for_label(other.as_bytes()).map(|e| (e, false)),
    }
}

fn split_keys(s: &str) -> Vec<String> {
    s.split(',').map(|k| k.trim().to_string()).collect()
}

impl RecordModifier {
    fn configure(elem: &Element, ctx: &PluginContext) -> Result<Self, ConfigError> {
        let conf: RecordModifierConf = ctx.configure(elem, "record_modifier")?;
        if elem.param("include_tag_key").is_some() {
            return Err(elem.error(
                "include_tag_key and tag_key parameters are removed. Use 'tag ${tag}' in <record> section",
            ));
        }
        let mut params: Vec<&crate::config_parser::Param> = Vec::new();
        for p in &elem.params {
            if !BUILTIN.contains(&p.key.as_str()) && p.key != "include_tag_key" {
                tracing::warn!(
                    "top level definition is deprecated. Please put parameters inside <record>: '{} {}'",
                    p.key,
                    match &p.value {
                        ParamValue::Str(s) => s.as_str(),
                        _ => "",
                    }
                );
                params.push(p);
            }
        }
        for section in elem.children("record") {
            params.extend(section.params.iter());
        }
        let mut map: Vec<(String, Expander)> = Vec::new();
        let mut has_tag_parts = false;
        for p in params {
            let v = match &p.value {
                ParamValue::Str(s) => s.clone(),
                ParamValue::Nil | ParamValue::Default => String::new(),
            };
            for ph in ["__HOSTNAME__", "${hostname}"] {
                if v.contains(ph) {
                    return Err(ConfigError::at(
                        format!(
                            "{ph} placeholder in {} is removed. Use \"#{{Socket.gethostname}}\" instead.",
                            p.key
                        ),
                        &p.span,
                    ));
                }
            }
            has_tag_parts |= v.contains("tag_parts");
            let exp = if v.contains("${") {
                Expander::Ruby(
                    Template::new(&v, Wrap::DoubleQuote, true, LOCALS).map_err(|e| {
                        ConfigError::at(
                            format!(
                                "Pass invalid syntax parameter : key = {}, value = {} ({})",
                                p.key, v, e.message
                            ),
                            &p.span,
                        )
                    })?,
                )
            } else {
                Expander::Fixed(Value::Str(v.into_bytes()))
            };
            match map.iter_mut().find(|(k, _)| *k == p.key) {
                Some(slot) => slot.1 = exp,
                None => map.push((p.key.clone(), exp)),
            }
        }

        let prepare = match &conf.prepare_value {
            Some(code) => Some(Program::compile(code, LOCALS).map_err(|e| {
                elem.error(format!(
                    "Pass invalid syntax parameter : key = prepare_value, value = {code} ({})",
                    e.message
                ))
            })?),
            None => None,
        };

        let whitelist = conf.whitelist_keys.or(conf.keep_keys);
        if conf.remove_keys.is_some() && whitelist.is_some() {
            return Err(elem.error("remove_keys and whitelist_keys are exclusive with each other."));
        }

        let mut replaces = Vec::new();
        for r in &conf.replace {
            // A `/.../` value is a regexp literal; anything else is the pattern itself.
            let (src, flags) = match r
                .expression
                .strip_prefix('/')
                .and_then(|x| x.rsplit_once('/'))
            {
                Some((body, opts)) if opts.chars().all(|c| "imx".contains(c)) => {
                    let mut f = 0;
                    for c in opts.chars() {
                        f |= match c {
                            'i' => crate::ruby::regexp::IGNORECASE,
                            'x' => crate::ruby::regexp::EXTENDED,
                            _ => crate::ruby::regexp::MULTILINE,
                        };
                    }
                    (body.to_string(), f)
                }
                _ => (r.expression.clone(), 0),
            };
            let re = Re::new(&src, flags)
                .map_err(|e| elem.error(format!("replace: invalid expression: {e}")))?;
            replaces.push(Replace {
                key: r.key.clone(),
                re,
                replace: r.replace.clone(),
            });
        }

        let encoding = match &conf.char_encoding {
            Some(spec) => {
                let (from, to) = match spec.split_once(':') {
                    Some((f, t)) => (f, Some(t)),
                    None => (spec.as_str(), None),
                };
                let unknown = |n: &str| elem.error(format!("unknown encoding name - {n}"));
                let (from_enc, _) = find_encoding(from).ok_or_else(|| unknown(from))?;
                let (to_enc, to_ascii) = match to {
                    Some(t) => {
                        let (e, a) = find_encoding(t).ok_or_else(|| unknown(t))?;
                        (Some(e), a)
                    }
                    None => (None, false),
                };
                Some(Encoding {
                    from: from_enc,
                    to: to_enc,
                    to_ascii,
                })
            }
            None => None,
        };

        Ok(RecordModifier {
            map,
            prepare,
            remove_keys: conf.remove_keys.as_deref().map(split_keys),
            whitelist_keys: whitelist.as_deref().map(split_keys),
            replaces,
            encoding,
            has_tag_parts,
            host: Host {
                hostname: ctx.hostname.clone(),
                worker_id: ctx.worker_id.to_string(),
                config: false,
            },
            errors: ctx.errors.clone(),
        })
    }

    fn modify(
        &self,
        tag: &str,
        time: EventTime,
        mut record: Record,
    ) -> Result<Record, (Record, String)> {
        let tag_parts: Vec<Vec<u8>> = if self.has_tag_parts {
            tag.split('.').map(|p| p.as_bytes().to_vec()).collect()
        } else {
            Vec::new()
        };
        let mut ivars_store: Vec<(String, Value)> = Vec::new();
        for (k, exp) in &self.map {
            let value = match exp {
                Expander::Fixed(v) => v.clone(),
                Expander::Ruby(t) => {
                    let result = (|| -> Result<Value, String> {
                        let locals = [
                            V::str(tag.as_bytes().to_vec()),
                            V::Int(time.sec),
                            V::Rec(&record),
                            if self.has_tag_parts {
                                V::array(tag_parts.iter().map(|p| V::str(p.clone())).collect())
                            } else {
                                V::Nil
                            },
                        ];
                        let mut ivars: Vec<(String, V<'_>)> = Vec::new();
                        if let Some(p) = &self.prepare {
                            if ivars_store.is_empty() {
                                p.run_with_ivars(
                                    &self.host,
                                    locals.iter().cloned(),
                                    Budget::EVENT,
                                    &mut ivars,
                                )
                                .map_err(|e| e.to_string())?;
                                ivars_store = ivars
                                    .iter()
                                    .map(|(n, v)| (n.clone(), to_event(v)))
                                    .collect();
                            } else {
                                ivars = ivars_store
                                    .iter()
                                    .map(|(n, v)| (n.clone(), V::from_event(v).owned()))
                                    .collect();
                            }
                        }
                        t.eval_with_ivars(&self.host, locals, &mut ivars)
                            .map(|v| to_event(&v))
                            .map_err(|e| e.to_string())
                    })();
                    match result {
                        Ok(v) => v,
                        Err(e) => return Err((record, e)),
                    }
                }
            };
            record.insert(k.as_bytes().to_vec(), value);
        }
        if let Some(keys) = &self.remove_keys {
            for k in keys {
                record.remove(k.as_bytes());
            }
        } else if let Some(keys) = &self.whitelist_keys {
            record.retain(|k, _| keys.iter().any(|w| w.as_bytes() == k));
        }
        for r in &self.replaces {
            let Some(Value::Str(cur)) = record.get(r.key.as_bytes()) else {
                continue;
            };
            let text = String::from_utf8_lossy(cur).into_owned();
            let matches = match r.re.all(&text, 1_000_000) {
                Ok(m) => m,
                Err(e) => return Err((record, e)),
            };
            if matches.is_empty() {
                continue;
            }
            let mut out = String::with_capacity(text.len());
            let mut last = 0;
            for m in &matches {
                let (s, e) = m.groups[0].unwrap_or((last, last));
                out.push_str(&text[last..s]);
                m.expand(&r.replace, &mut out);
                last = e;
            }
            out.push_str(&text[last..]);
            record.insert(r.key.as_bytes().to_vec(), Value::Str(out.into_bytes()));
        }
        if let Some(enc) = &self.encoding {
            if enc.to.is_some() {
                for (_, v) in record.iter_mut() {
                    convert(enc, v);
                }
            }
        }
        Ok(record)
    }
}

/// `value.encode!(to, from, invalid: :replace, undef: :replace)`, through nested values.
fn convert(enc: &Encoding, v: &mut Value) {
    match v {
        Value::Str(s) | Value::Bin(s) => {
            let (text, _) = enc.from.decode_without_bom_handling(s);
            let out: Vec<u8> = if enc.to_ascii {
                text.chars()
                    .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                    .collect()
            } else {
                match enc.to {
                    Some(to) if to != encoding_rs::UTF_8 => {
                        let (bytes, _, _) = to.encode(&text);
                        bytes.into_owned()
                    }
                    _ => text.into_owned().into_bytes(),
                }
            };
            *s = out;
        }
        Value::Array(a) => a.iter_mut().for_each(|x| convert(enc, x)),
        Value::Map(m) => {
            for (_, x) in m.iter_mut() {
                convert(enc, x);
            }
        }
        _ => {}
    }
}

impl Filter for RecordModifier {
    fn filter_stream(&self, tag: &str, es: EventStream) -> EventStream {
        let mut out = EventStream::with_capacity(es.len());
        for ev in es {
            match self.modify(tag, ev.time, ev.record) {
                Ok(r) => out.push(ev.time, r),
                Err((record, e)) => self.errors.emit_error_event(tag, ev.time, record, &e),
            }
        }
        out
    }
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Filter>, ConfigError> {
    Ok(Box::new(RecordModifier::configure(elem, ctx)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::filter_record_transformer::record_to_json;
    use crate::router::Emitter;
    use crate::test_util::directive;

    fn make(conf: &str) -> Result<Box<dyn Filter>, ConfigError> {
        let mut c = PluginContext::for_tests();
        c.hostname = "myhost".into();
        create(
            &directive(&format!(
                "<filter **>\n  @type record_modifier\n{conf}\n</filter>\n"
            )),
            &c,
        )
    }

    fn run(conf: &str, input: &str) -> String {
        let f = match make(conf) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        let rec = match crate::util::value_from_json(serde_json::from_str(input).unwrap()) {
            Value::Map(m) => m,
            _ => panic!("not an object"),
        };
        let out = f.filter_stream(
            "app.web.prod",
            EventStream::one(EventTime::new(1_700_000_000, 0), rec),
        );
        out.iter()
            .map(|e| record_to_json(&e.record))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn record_values_see_earlier_ones_and_keep_types() {
        let got = run(
            "<record>\n  gen_host \"#{Socket.gethostname}\"\n  foo bar\n  up ${record['name'].upcase}\n  up2 x-${record['up']}\n  n ${record['n'] * 2}\n  part ${tag_parts[1]}\n  t ${time}\n</record>",
            r#"{"name": "alice", "n": 21}"#,
        );
        let host = crate::util::hostname();
        assert_eq!(
            got,
            format!(
                r#"{{"name":"alice","n":42,"gen_host":"{host}","foo":"bar","up":"ALICE","up2":"x-ALICE","part":"web","t":1700000000}}"#
            )
        );
    }

    #[test]
    fn remove_whitelist_replace_and_encoding() {
        assert_eq!(
            run(
                "remove_keys a, b\n<record>\n c 1\n</record>",
                r#"{"a": 1, "b": 2, "d": 3}"#
            ),
            r#"{"d":3,"c":"1"}"#
        );
        assert_eq!(
            run("whitelist_keys a,c", r#"{"a": 1, "b": 2, "c": 3}"#),
            r#"{"a":1,"c":3}"#
        );
        assert_eq!(run("keep_keys b", r#"{"a": 1, "b": 2}"#), r#"{"b":2}"#);
        assert_eq!(
            run(
                "<replace>\n  key msg\n  expression /^(?<a>[a-z]+)-(\\d+)$/\n  replace \\k<a> \\2\n</replace>",
                r#"{"msg": "abc-12"}"#
            ),
            r#"{"msg":"abc 12"}"#
        );
        assert_eq!(
            run("char_encoding utf-8:us-ascii", r#"{"m": "héllo"}"#),
            r#"{"m":"h?llo"}"#
        );
        assert!(make("remove_keys a\nwhitelist_keys b").is_err());
        assert!(make("<record>\n h ${hostname}\n</record>").is_err());
        assert!(make("<record>\n h ${record[}\n</record>").is_err());
        assert!(make("char_encoding nope").is_err());
    }

    #[test]
    fn prepare_value_sets_instance_variables() {
        assert_eq!(
            run(
                "prepare_value @prefix = 'p-'; @n = 2\n<record>\n  a ${@prefix + record['x']}\n  b ${@n * 3}\n</record>",
                r#"{"x": "y"}"#
            ),
            r#"{"x":"y","a":"p-y","b":6}"#
        );
    }

    #[test]
    fn a_ruby_error_makes_an_error_event() {
        let err = Emitter::collector("@ERROR");
        let mut c = PluginContext::for_tests();
        c.errors = ErrorSink::to_label(err.clone());
        let f = create(
            &directive("<filter **>\n  @type record_modifier\n  <record>\n    x ${record['missing'].upcase}\n  </record>\n</filter>\n"),
            &c,
        )
        .unwrap();
        let out = f.filter_stream("t", EventStream::one(EventTime::new(1, 0), Record::new()));
        assert!(out.is_empty());
        assert_eq!(err.collected().len(), 1);
    }
}
