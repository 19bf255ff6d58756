//! The old (v0) forms Fluentd still accepts in v1 files (`plugin_helper/compat_parameters.rb`):
//! `type`/`id`/`log_level` without `@`, flat `format …` parser and formatter parameters, and flat
//! buffer parameters. They are rewritten into their v1 sections before plugins read the config.

use super::{types, ConfigError, Element, Param, ParamValue};

/// Inputs and filters whose flat `format` becomes a `<parse>` section.
const PARSER_USERS: &[&str] = &["tail", "parser", "tcp", "udp", "syslog", "exec", "http"];

/// Flat parser parameters moved into `<parse>` (Fluentd's `PARSER_PARAMS`, plus the time ones).
const PARSER_PARAMS: &[&str] = &[
    "types",
    "keys",
    "time_key",
    "time_format",
    "time_type",
    "localtime",
    "utc",
    "timezone",
    "delimiter",
    "keep_time_key",
    "null_empty_string",
    "null_value_pattern",
    "estimate_current_event",
    "json_parser",
    "label_delimiter",
    "format_firstline",
    "message_key",
    "with_priority",
    "message_format",
    "rfc5424_time_format",
];

/// Flat output parameters moved into `<inject>` when a flat `format` is rewritten.
const INJECT_PARAMS: &[(&str, &str)] = &[
    ("tag_key", "tag_key"),
    ("time_key", "time_key"),
    ("time_format", "time_format"),
    ("localtime", "localtime"),
    ("utc", "utc"),
    ("timezone", "timezone"),
];

/// Plugins that read flat formatter and inject parameters (they call
/// `compat_parameters_convert(conf, :inject, :formatter)` in Fluentd).
const FORMATTER_USERS: &[&str] = &["stdout", "file", "exec", "exec_filter"];

/// Flat formatter parameters and their `<format>` names (Fluentd's `FORMATTER_PARAMS`).
const FORMATTER_PARAMS: &[(&str, &str)] = &[
    ("format", "@type"),
    ("delimiter", "delimiter"),
    ("force_quotes", "force_quotes"),
    ("fields", "fields"),
    ("json_parser", "json_parser"),
    ("label_delimiter", "label_delimiter"),
    ("output_time", "output_time"),
    ("output_tag", "output_tag"),
    ("localtime", "localtime"),
    ("utc", "utc"),
    ("timezone", "timezone"),
    ("message_key", "message_key"),
    ("add_newline", "add_newline"),
    ("output_type", "output_type"),
];

/// Flat parameters Fluentd's inject compat reads (`INJECT_PARAMS` and the ones it interprets).
const FLAT_INJECT_PARAMS: &[&str] = &[
    "include_time_key",
    "time_key",
    "time_format",
    "timezone",
    "include_tag_key",
    "tag_key",
    "localtime",
    "utc",
    "time_as_epoch",
];

/// Flat buffer parameters and their `<buffer>` names.
const BUFFER_PARAMS: &[(&str, &str)] = &[
    ("buffer_type", "@type"),
    ("buffer_path", "path"),
    ("buffer_chunk_limit", "chunk_limit_size"),
    ("buffer_queue_limit", "queue_limit_length"),
    ("num_threads", "flush_thread_count"),
    ("retry_limit", "retry_max_times"),
    ("max_retry_wait", "retry_max_interval"),
    ("retry_wait", "retry_wait"),
    ("flush_at_shutdown", "flush_at_shutdown"),
    ("time_slice_wait", "timekey_wait"),
];

/// Rewrites the whole tree in place. Fails only where Fluentd's compat layer does.
pub fn apply(root: &mut Element) -> Result<(), ConfigError> {
    for e in &mut root.elements {
        rename_legacy_keys(e);
    }
    for e in &mut root.elements {
        apply_directive(e)?;
    }
    Ok(())
}

fn apply_directive(e: &mut Element) -> Result<(), ConfigError> {
    match e.name.as_str() {
        "source" => parser_section(e),
        "filter" => {
            parser_section(e);
            formatter_sections(e)?;
        }
        "match" => {
            output_sections(e)?;
            for store in e.elements.iter_mut().filter(|c| c.name == "store") {
                output_sections(store)?;
            }
        }
        "label" | "worker" => {
            for c in &mut e.elements {
                apply_directive(c)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Sections that name a plugin and so may use the legacy `type`.
const PLUGIN_SECTIONS: &[&str] = &[
    "source",
    "match",
    "filter",
    "store",
    "parse",
    "format",
    "buffer",
    "secondary",
    "storage",
];

fn rename_legacy_keys(e: &mut Element) {
    if e.name == "label" || e.name == "worker" {
        for c in &mut e.elements {
            rename_legacy_keys(c);
        }
        return;
    }
    if !PLUGIN_SECTIONS.contains(&e.name.as_str()) {
        return;
    }
    let has_new = |e: &Element, k: &str| e.params.iter().any(|p| p.key == k);
    let (has_type, has_id, has_level) = (
        has_new(e, "@type"),
        has_new(e, "@id"),
        has_new(e, "@log_level"),
    );
    for p in &mut e.params {
        // The legacy name counts only when the new one is absent.
        let new = match p.key.as_str() {
            "type" if !has_type => "@type",
            "id" if !has_id => "@id",
            "log_level" if !has_level => "@log_level",
            _ => continue,
        };
        tracing::warn!(
            "'{}' is deprecated parameter name. use '{}' instead.",
            p.key,
            new
        );
        p.key = new.to_string();
    }
    for c in &mut e.elements {
        rename_legacy_keys(c);
    }
}

fn take(e: &mut Element, key: &str) -> Option<Param> {
    e.remove(key)
}

fn parser_section(e: &mut Element) {
    let Some(ty) = e.plugin_type() else { return };
    if !PARSER_USERS.contains(&ty) || e.child("parse").is_some() || !e.has("format") {
        return;
    }
    let Some(format) = take(e, "format") else {
        return;
    };
    let mut parse = Element::new("parse", "", format.span.clone());
    let fmt = format.value.as_str().unwrap_or("").to_string();
    if fmt.len() >= 2 && fmt.starts_with('/') && fmt.ends_with('/') {
        push(&mut parse, "@type", "regexp", &format);
        push(&mut parse, "expression", &fmt, &format);
    } else {
        push(&mut parse, "@type", &fmt, &format);
    }
    let mut moved: Vec<String> = PARSER_PARAMS.iter().map(|s| s.to_string()).collect();
    moved.extend((1..=20).map(|i| format!("format{i}")));
    for key in moved {
        if let Some(p) = take(e, &key) {
            parse.params.push(p);
        }
    }
    e.elements.push(parse);
}

fn push(e: &mut Element, key: &str, value: &str, like: &Param) {
    e.params.push(Param {
        key: key.to_string(),
        value: ParamValue::Str(value.to_string()),
        span: like.span.clone(),
    });
}

/// For [`FORMATTER_USERS`]: flat formatter parameters → `<format>`, flat inject parameters →
/// `<inject>`, each only when the section is absent (as Fluentd's compat layer).
fn formatter_sections(e: &mut Element) -> Result<(), ConfigError> {
    if !e
        .plugin_type()
        .is_some_and(|t| FORMATTER_USERS.contains(&t))
    {
        return Ok(());
    }
    let mut moved: Vec<&str> = Vec::new();
    if e.child("format").is_none() && FORMATTER_PARAMS.iter().any(|(k, _)| e.has(k)) {
        let mut f = Element::new("format", "", e.span.clone());
        for (flat, key) in FORMATTER_PARAMS {
            if let Some(p) = e.param(flat) {
                f.params.push(Param {
                    key: key.to_string(),
                    ..p.clone()
                });
                moved.push(flat);
            }
        }
        e.elements.push(f);
    }
    if e.child("inject").is_none() {
        if let Some(i) = flat_inject(e)? {
            e.elements.push(i);
            moved.extend(FLAT_INJECT_PARAMS.iter().copied());
        }
    }
    for k in moved {
        e.remove(k);
    }
    Ok(())
}

fn flat_bool(owner: &Element, key: &str) -> Option<bool> {
    owner
        .get(key)
        .and_then(|v| types::bool(v, false).ok().flatten())
}

/// The `<inject>` section Fluentd's `compat_parameters_inject` builds, or None.
fn flat_inject(owner: &Element) -> Result<Option<Element>, ConfigError> {
    if !FLAT_INJECT_PARAMS.iter().any(|k| owner.has(k)) {
        return Ok(None);
    }
    let mut e = Element::new("inject", "", owner.span.clone());
    for k in ["time_key", "time_format", "timezone", "tag_key"] {
        if let Some(v) = owner.get(k) {
            e.set(k, v);
        }
    }
    if flat_bool(owner, "include_time_key") == Some(true) {
        if !e.has("time_key") {
            e.set("time_key", "time");
        }
        if !e.has("time_type") {
            e.set("time_type", "string");
        }
    }
    if flat_bool(owner, "time_as_epoch") == Some(true) {
        if !e.has("time_key") {
            e.set("time_key", "time");
        }
        e.set("time_type", "unixtime");
    }
    match (owner.has("localtime"), owner.has("utc")) {
        (true, true) => {
            return Err(owner.error("both of utc and localtime are specified, use only one of them"))
        }
        (true, false) => {
            let b = flat_bool(owner, "localtime").unwrap_or(false);
            e.set("localtime", if b { "true" } else { "false" });
        }
        (false, true) => {
            let b = flat_bool(owner, "utc").unwrap_or(false);
            e.set("localtime", if b { "false" } else { "true" });
        }
        (false, false) => {}
    }
    if flat_bool(owner, "include_tag_key") == Some(true) && !e.has("tag_key") {
        e.set("tag_key", "tag");
    }
    Ok(Some(e))
}

fn output_sections(e: &mut Element) -> Result<(), ConfigError> {
    formatter_sections(e)?;
    let ty = e.plugin_type().unwrap_or("").to_string();
    // Outputs with their own `format`-like parameters keep them.
    if ty != "rewrite_tag_filter" && e.child("format").is_none() && e.has("format") {
        if let Some(format) = take(e, "format") {
            let mut f = Element::new("format", "", format.span.clone());
            f.params.push(Param {
                key: "@type".to_string(),
                ..format.clone()
            });
            e.elements.push(f);
            let include_tag = take(e, "include_tag_key");
            let include_time = take(e, "include_time_key");
            if include_tag.is_some() || include_time.is_some() {
                let mut inject = Element::new("inject", "", format.span.clone());
                let on = |p: &Option<Param>| {
                    p.as_ref()
                        .and_then(|p| p.value.as_str())
                        .map(|v| matches!(v, "true" | "yes" | ""))
                        .unwrap_or(false)
                };
                let (tag_on, time_on) = (on(&include_tag), on(&include_time));
                for (from, to) in INJECT_PARAMS {
                    if let Some(p) = take(e, from) {
                        inject.params.push(Param {
                            key: to.to_string(),
                            ..p
                        });
                    }
                }
                if tag_on && !inject.has("tag_key") {
                    push(&mut inject, "tag_key", "tag", &format);
                }
                if time_on && !inject.has("time_key") {
                    push(&mut inject, "time_key", "time", &format);
                }
                if !tag_on {
                    inject.remove("tag_key");
                }
                if !time_on {
                    inject.remove("time_key");
                }
                e.elements.push(inject);
            }
        }
    }
    if e.child("buffer").is_none() {
        let flat: Vec<&(&str, &str)> = BUFFER_PARAMS.iter().filter(|(k, _)| e.has(k)).collect();
        let has_slice = e.has("time_slice_format");
        let has_retry_forever = e.has("disable_retry_limit");
        if !flat.is_empty() || has_slice || has_retry_forever {
            let mut b = Element::new("buffer", "", e.span.clone());
            for (from, to) in BUFFER_PARAMS {
                if let Some(p) = take(e, from) {
                    b.params.push(Param {
                        key: to.to_string(),
                        ..p
                    });
                }
            }
            if let Some(p) = take(e, "disable_retry_limit") {
                b.params.push(Param {
                    key: "retry_forever".to_string(),
                    ..p
                });
            }
            if let Some(p) = take(e, "time_slice_format") {
                let fmt = p.value.as_str().unwrap_or("").to_string();
                let timekey = if fmt.contains("%S") {
                    "1"
                } else if fmt.contains("%M") {
                    "60"
                } else if fmt.contains("%H") {
                    "3600"
                } else {
                    "86400"
                };
                b.arg = "time".to_string();
                push(&mut b, "timekey", timekey, &p);
            }
            e.elements.push(b);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_parser::parse_str;
    use std::path::Path;

    fn rewritten(text: &str) -> Element {
        let mut root = parse_str(text, Path::new("t.conf"), &Default::default()).unwrap();
        apply(&mut root).unwrap();
        root
    }

    #[test]
    fn v0_type_and_format_json() {
        let root = rewritten(
            "<source>\n  type tail\n  path x\n  format json\n  time_format %iso8601\n</source>\n",
        );
        let src = &root.elements[0];
        assert_eq!(src.get("@type"), Some("tail"));
        assert!(!src.has("format"));
        let parse = src.child("parse").unwrap();
        assert_eq!(parse.get("@type"), Some("json"));
        assert_eq!(parse.get("time_format"), Some("%iso8601"));
    }

    #[test]
    fn v0_format_regexp() {
        let root = rewritten("<source>\n  @type tail\n  format /^(?<a>.)$/\n</source>\n");
        let parse = root.elements[0].child("parse").unwrap();
        assert_eq!(parse.get("@type"), Some("regexp"));
        assert_eq!(parse.get("expression"), Some("/^(?<a>.)$/"));
    }

    #[test]
    fn filter_parser_flat_format() {
        let root = rewritten("<filter k>\n  @type parser\n  key_name MESSAGE\n  format logfmt\n  reserve_data true\n</filter>\n");
        let f = &root.elements[0];
        assert_eq!(f.child("parse").unwrap().get("@type"), Some("logfmt"));
        assert_eq!(f.get("reserve_data"), Some("true"));
    }

    #[test]
    fn flat_buffer_params() {
        let root = rewritten("<match x>\n  @type file\n  buffer_type file\n  buffer_path /tmp/b\n  buffer_chunk_limit 1m\n  time_slice_format %Y%m%d%H\n</match>\n");
        let b = root.elements[0].child("buffer").unwrap();
        assert_eq!(b.get("@type"), Some("file"));
        assert_eq!(b.get("path"), Some("/tmp/b"));
        assert_eq!(b.get("chunk_limit_size"), Some("1m"));
        assert_eq!(b.get("timekey"), Some("3600"));
        assert_eq!(b.arg, "time");
    }

    #[test]
    fn flat_output_format_and_inject() {
        let root =
            rewritten("<match x>\n  @type file\n  format json\n  include_tag_key true\n</match>\n");
        let m = &root.elements[0];
        assert_eq!(m.child("format").unwrap().get("@type"), Some("json"));
        assert_eq!(m.child("inject").unwrap().get("tag_key"), Some("tag"));
    }

    #[test]
    fn stdout_flat_formatter_params() {
        let root = rewritten("<match x>\n  @type stdout\n  output_type hash\n</match>\n");
        let m = &root.elements[0];
        assert_eq!(m.child("format").unwrap().get("output_type"), Some("hash"));
        assert!(!m.has("output_type"));
        assert!(m.child("inject").is_none());
        let root =
            rewritten("<filter x>\n  @type stdout\n  format ltsv\n  delimiter |\n</filter>\n");
        let f = root.elements[0].child("format").unwrap();
        assert_eq!(
            (f.get("@type"), f.get("delimiter")),
            (Some("ltsv"), Some("|"))
        );
        // An explicit <format> wins; the flat parameter is left to warn as unused.
        let root = rewritten(
            "<match x>\n  @type stdout\n  delimiter |\n  <format>\n    @type json\n  </format>\n</match>\n",
        );
        assert_eq!(root.elements[0].get("delimiter"), Some("|"));
    }

    #[test]
    fn flat_inject_params() {
        let root = rewritten(
            "<match x>\n  @type stdout\n  include_time_key true\n  include_tag_key yes\n  utc\n</match>\n",
        );
        let m = &root.elements[0];
        let i = m.child("inject").unwrap();
        assert_eq!(i.get("time_key"), Some("time"));
        assert_eq!(i.get("time_type"), Some("string"));
        assert_eq!(i.get("tag_key"), Some("tag"));
        assert_eq!(i.get("localtime"), Some("false"));
        assert_eq!(m.child("format").unwrap().get("utc"), Some(""));
        assert!(!m.has("utc") && !m.has("include_tag_key"));
        let root = rewritten("<match x>\n  @type file\n  time_as_epoch true\n</match>\n");
        let i = root.elements[0].child("inject").unwrap();
        assert_eq!(i.get("time_type"), Some("unixtime"));
        let mut root = parse_str(
            "<match x>\n  @type stdout\n  utc true\n  localtime true\n</match>\n",
            Path::new("t.conf"),
            &Default::default(),
        )
        .unwrap();
        let err = apply(&mut root).err().map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some("both of utc and localtime are specified, use only one of them")
        );
        // Outputs that do not take a formatter keep their own parameters.
        let root = rewritten("<match x>\n  @type null\n  tag_key k\n</match>\n");
        assert_eq!(root.elements[0].get("tag_key"), Some("k"));
    }
}
