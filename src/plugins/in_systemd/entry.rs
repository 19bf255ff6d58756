//! What a journal entry becomes: `matches` terms, `<entry>` field mapping and the record.

use super::*;

/// One `sd_journal_add_match` term, or the disjunction between two hashes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum MatchTerm {
    Match(Vec<u8>),
    Or,
}

/// `matches`: hashes OR-ed, keys within one hash AND-ed, array values OR-ed (libsystemd ORs
/// matches on the same field). Field names are upper-cased as the plugin does.
pub(super) fn parse_matches(items: &[String]) -> Result<Vec<MatchTerm>, String> {
    let mut terms = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(item)
            .map_err(|_| format!("matches: each element must be a hash, got {item}"))?;
        let serde_json::Value::Object(map) = v else {
            return Err(format!("matches: each element must be a hash, got {item}"));
        };
        if i > 0 {
            terms.push(MatchTerm::Or);
        }
        for (field, value) in map {
            let field = field.to_uppercase();
            let values = match value {
                serde_json::Value::Array(a) => a,
                serde_json::Value::Null => Vec::new(),
                other => vec![other],
            };
            for v in values {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                terms.push(MatchTerm::Match(format!("{field}={text}").into_bytes()));
            }
        }
    }
    Ok(terms)
}

/// A `field_map` value: one destination name, or an array of them.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Dest {
    Name(String),
    Names(Vec<String>),
}

impl Dest {
    pub(super) fn names(&self) -> &[String] {
        match self {
            Dest::Name(n) => std::slice::from_ref(n),
            Dest::Names(v) => v,
        }
    }
}

/// `field_map`: a JSON object whose values are a name or an array of names, or `SRC:dst,...`.
pub(super) fn parse_field_map(text: &str) -> Result<Vec<(String, Dest)>, String> {
    let t = text.trim();
    if !t.starts_with('{') {
        let pairs = crate::config_parser::types::hash(t)?;
        return Ok(pairs.into_iter().map(|(k, v)| (k, Dest::Name(v))).collect());
    }
    let v: serde_json::Value = serde_json::from_str(t)
        .map_err(|e| format!("got incomplete JSON hash configuration: {e}"))?;
    let serde_json::Value::Object(map) = v else {
        return Err("hash required".into());
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let dsts = match v {
            serde_json::Value::String(s) => Dest::Name(s),
            serde_json::Value::Array(a) => {
                let mut names = Vec::new();
                for x in a {
                    match x {
                        serde_json::Value::String(s) => names.push(s),
                        _ => {
                            return Err(
                                "`field_map` values must be strings or array of strings".into()
                            )
                        }
                    }
                }
                Dest::Names(names)
            }
            _ => return Err("`field_map` values must be strings or array of strings".into()),
        };
        out.push((k, dsts));
    }
    Ok(out)
}

/// The plugin's `SystemdEntryMutator`: field mapping, then renaming of the other fields.
#[derive(Debug, Clone)]
pub(super) struct EntryMutator {
    /// Destination → sources, in the order destinations first appear in `field_map`.
    pub(super) map: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    pub(super) sources: Vec<Vec<u8>>,
    pub(super) strict: bool,
    pub(super) strip_underscores: bool,
    pub(super) lowercase: bool,
}

impl EntryMutator {
    pub(super) fn new(
        field_map: Vec<(String, Dest)>,
        strict: bool,
        strip_underscores: bool,
        lowercase: bool,
    ) -> Self {
        let mut dsts: Vec<&String> = Vec::new();
        for (_, v) in &field_map {
            for d in v.names() {
                if !dsts.contains(&d) {
                    dsts.push(d);
                }
            }
        }
        // As the plugin inverts the map: a one-name value matches by equality or by substring.
        let map = dsts
            .iter()
            .map(|d| {
                let srcs = field_map
                    .iter()
                    .filter(|(_, v)| match v {
                        Dest::Name(one) => one.contains(d.as_str()),
                        Dest::Names(many) => many.contains(d),
                    })
                    .map(|(s, _)| s.clone().into_bytes())
                    .collect();
                (d.as_bytes().to_vec(), srcs)
            })
            .collect();
        EntryMutator {
            map,
            sources: field_map
                .iter()
                .map(|(s, _)| s.clone().into_bytes())
                .collect(),
            strict,
            strip_underscores,
            lowercase,
        }
    }

    pub(super) fn no_transform(&self) -> bool {
        self.map.is_empty() && !self.strict && !self.strip_underscores && !self.lowercase
    }

    pub(super) fn run(&self, entry: Record) -> Record {
        if self.no_transform() {
            return entry;
        }
        let mut mapped = self.map_fields(&entry);
        if self.strict {
            return mapped;
        }
        for (k, v) in entry {
            if self.sources.contains(&k) {
                continue;
            }
            let mut k: &[u8] = &k;
            if self.strip_underscores {
                while let Some(rest) = k.strip_prefix(b"_") {
                    k = rest;
                }
            }
            let k = if self.lowercase {
                k.to_ascii_lowercase()
            } else {
                k.to_vec()
            };
            let v = match mapped.get(&k) {
                Some(existing) => {
                    let mut joined = v.to_ruby_s();
                    joined.push(b' ');
                    joined.extend_from_slice(&existing.to_ruby_s());
                    Value::Str(joined)
                }
                None => v,
            };
            mapped.insert(k, v);
        }
        mapped
    }

    pub(super) fn map_fields(&self, entry: &Record) -> Record {
        let mut out = Record::new();
        for (dst, srcs) in &self.map {
            let vals: Vec<&Value> = srcs.iter().filter_map(|s| lookup(entry, s)).collect();
            match vals.as_slice() {
                [] => {}
                [one] => out.insert(dst.clone(), (*one).clone()),
                many => {
                    let mut joined = Vec::new();
                    for (i, v) in many.iter().enumerate() {
                        if i > 0 {
                            joined.push(b' ');
                        }
                        joined.extend_from_slice(&v.to_ruby_s());
                    }
                    out.insert(dst.clone(), Value::Str(joined));
                }
            }
        }
        out
    }
}

/// The entry's value for `key`, else for its upper-cased form; missing values count as absent.
pub(super) fn lookup<'a>(entry: &'a Record, key: &[u8]) -> Option<&'a Value> {
    match entry.get(key) {
        Some(v) if !v.is_nil() => Some(v),
        _ => entry.get(key.to_ascii_uppercase()).filter(|v| !v.is_nil()),
    }
}

/// Splits one `FIELD=value` data item as the plugin does; an item without `=` is a field with no
/// value.
pub(super) fn split_item(data: &[u8]) -> (Vec<u8>, Value) {
    match memchr::memchr(b'=', data) {
        Some(i) => (data[..i].to_vec(), Value::Str(data[i + 1..].to_vec())),
        None => (data.to_vec(), Value::Nil),
    }
}

pub(super) fn record_from_items(items: Vec<Vec<u8>>) -> Record {
    let mut r = Record::with_capacity(items.len());
    for item in items {
        let (k, v) = split_item(&item);
        r.insert(k, v);
    }
    r
}

pub(super) fn event_time(usec: u64) -> EventTime {
    EventTime::new(
        (usec / 1_000_000) as i64,
        ((usec % 1_000_000) * 1000) as u32,
    )
}
