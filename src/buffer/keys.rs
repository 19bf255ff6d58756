//! Chunk keys (`<buffer tag,time,KEY>`): the metadata each event is chunked by, and the
//! placeholders (`${tag}`, `${tag[N]}`, `${KEY}`, `${chunk_id}`, strftime of the timekey) that
//! outputs expand per chunk, validated at configuration time with Fluentd's messages.

use super::Metadata;
use crate::event::{EventStream, EventTime};
use crate::record_accessor::RecordAccessor;
use crate::timefmt::{strftime, TimeZoneSpec};

/// The configured chunk keys and the time settings that go with the `time` key.
#[derive(Clone)]
pub struct ChunkKeys {
    pub time: bool,
    pub tag: bool,
    /// Record keys in declaration order (plain names or `$.a.b`).
    pub keys: Vec<(String, RecordAccessor)>,
    /// Slot width in seconds when `time` is a chunk key.
    pub timekey: i64,
    pub timekey_use_utc: bool,
    /// The zone slots are aligned to and strftime placeholders are shown in.
    pub zone: TimeZoneSpec,
    /// `timekey` as configured, whether or not `time` is a chunk key.
    pub configured_timekey: Option<i64>,
}

impl std::fmt::Debug for ChunkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkKeys")
            .field("time", &self.time)
            .field("tag", &self.tag)
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("timekey", &self.timekey)
            .finish()
    }
}

/// Fluentd's `CHUNK_KEY_PATTERN` for plain record keys.
fn plain_key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

/// Parses the `<buffer>` argument (`tag,time,key`, `["tag"]`, `[]`) into key names.
pub fn parse_chunk_key_list(arg: &str) -> Result<Vec<String>, String> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Ok(Vec::new());
    }
    crate::config_parser::types::array(arg).map(|v| {
        v.into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

impl ChunkKeys {
    /// Builds the keys from their names. `timekey` is required when `time` is among them.
    pub fn new(
        names: &[String],
        timekey: Option<f64>,
        timekey_use_utc: bool,
        timekey_zone: Option<&str>,
    ) -> Result<ChunkKeys, String> {
        let mut time = false;
        let mut tag = false;
        let mut keys = Vec::new();
        for n in names {
            match n.as_str() {
                "time" => time = true,
                "tag" => tag = true,
                k if k.starts_with("$[") => {
                    return Err("in chunk_keys: bracket notation is not allowed".into())
                }
                k if k.starts_with("$.") => {
                    let acc = RecordAccessor::new(k).map_err(|e| format!("in chunk_keys: {e}"))?;
                    keys.push((k.to_string(), acc));
                }
                k => {
                    if !plain_key_ok(k) {
                        return Err("chunk_keys specification includes invalid char".into());
                    }
                    let acc = RecordAccessor::new(k).map_err(|e| format!("in chunk_keys: {e}"))?;
                    keys.push((k.to_string(), acc));
                }
            }
        }
        let mut tk = 0;
        let mut zone = TimeZoneSpec::Local;
        if time {
            let t = timekey.ok_or_else(|| {
                "<buffer ...> argument includes 'time', but timekey is not configured".to_string()
            })?;
            tk = (t as i64).max(1);
            if let Some(z) = timekey_zone {
                zone = crate::timefmt::parse_timezone(z)
                    .ok_or_else(|| format!("Unsupported timezone '{z}'"))?;
            }
            if timekey_use_utc {
                zone = TimeZoneSpec::Utc;
            }
        }
        Ok(ChunkKeys {
            time,
            tag,
            keys,
            timekey: tk,
            timekey_use_utc,
            zone,
            configured_timekey: timekey.map(|t| (t as i64).max(1)),
        })
    }

    /// No chunk keys at all: the metadata is the same for every event.
    pub fn is_empty(&self) -> bool {
        !self.time && !self.tag && self.keys.is_empty()
    }

    /// Fluentd's `calculate_timekey`: the slot start, aligned in the timekey zone.
    pub fn timekey_of(&self, t: EventTime) -> i64 {
        let s = t.sec;
        if self.timekey_use_utc {
            s - s.rem_euclid(self.timekey)
        } else {
            let off = self.zone.offset_at(s) as i64;
            s - (s + off).rem_euclid(self.timekey)
        }
    }

    fn metadata_of(&self, tag: &str, ev: &crate::event::Event) -> Metadata {
        Metadata {
            timekey: self.time.then(|| self.timekey_of(ev.time)),
            tag: self.tag.then(|| tag.to_string()),
            variables: self
                .keys
                .iter()
                .map(|(k, acc)| {
                    let v = acc
                        .get(&ev.record)
                        .map(|v| String::from_utf8_lossy(&v.to_ruby_s()).into_owned())
                        .unwrap_or_default();
                    (k.clone(), v)
                })
                .collect(),
        }
    }

    /// Splits a stream into sub-streams of equal metadata, in first-seen order.
    pub fn group(&self, tag: &str, es: EventStream) -> Vec<(Metadata, EventStream)> {
        if !self.time && self.keys.is_empty() {
            let m = Metadata {
                tag: self.tag.then(|| tag.to_string()),
                ..Default::default()
            };
            return vec![(m, es)];
        }
        let mut groups: Vec<(Metadata, EventStream)> = Vec::new();
        let mut last = 0usize;
        for ev in es {
            let m = self.metadata_of(tag, &ev);
            let idx = if groups.get(last).is_some_and(|g| g.0 == m) {
                last
            } else if let Some(i) = groups.iter().position(|g| g.0 == m) {
                i
            } else {
                groups.push((m, EventStream::new()));
                groups.len() - 1
            };
            last = idx;
            groups[idx].1.events.push(ev);
        }
        groups
    }

    /// The placeholder context outputs use to expand and validate their templates.
    pub fn placeholders(&self) -> Placeholders {
        Placeholders {
            time: self.time,
            tag: self.tag,
            keys: self.keys.iter().map(|(k, _)| k.clone()).collect(),
            timekey: self.time.then_some(self.timekey),
            zone: self.zone,
            configured_timekey: self.configured_timekey,
        }
    }
}

/// What an output needs to expand `${tag}`, `${tag[N]}`, `${KEY}`, `${chunk_id}` and strftime
/// placeholders in its parameters (Fluentd's `extract_placeholders` / `placeholder_validate!`).
#[derive(Clone, Debug, Default)]
pub struct Placeholders {
    pub time: bool,
    pub tag: bool,
    pub keys: Vec<String>,
    pub timekey: Option<i64>,
    pub zone: TimeZoneSpec,
    /// The `timekey` parameter even when `time` is not a chunk key (out_file names files by it).
    pub configured_timekey: Option<i64>,
}

/// `${...}` names in `s` (Fluentd's `CHUNK_KEY_PLACEHOLDER_PATTERN` plus `tag[N]`).
fn placeholder_names(s: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'$' && b[i + 1] == b'{' {
            if let Some(end) = s[i + 2..].find('}') {
                let name = &s[i + 2..i + 2 + end];
                let ok = !name.is_empty()
                    && name.bytes().all(|c| {
                        c.is_ascii_alphanumeric()
                            || matches!(c, b'-' | b'_' | b'.' | b'@' | b'$' | b'[' | b']')
                    });
                if ok {
                    out.push((i, i + 3 + end, name));
                    i += 3 + end;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

fn tag_index(name: &str) -> Option<i64> {
    name.strip_prefix("tag[")?.strip_suffix(']')?.parse().ok()
}

const CHECK_BASE: i64 = 1_451_606_400; // 2016-01-01 00:00:00 UTC

/// Fluentd's `get_placeholders_time`: the finest strftime unit the template shows.
pub fn time_placeholder_unit(s: &str) -> Option<(i64, &'static str, &'static str)> {
    let z = TimeZoneSpec::Utc;
    let base = strftime(EventTime::new(CHECK_BASE, 0), s, &z);
    for (sec, title, ex) in [
        (1, "second", "%S"),
        (60, "minute", "%M"),
        (3600, "hour", "%H"),
        (86400, "day", "%d"),
    ] {
        if strftime(EventTime::new(CHECK_BASE + sec, 0), s, &z) != base {
            return Some((sec, title, ex));
        }
    }
    None
}

impl Placeholders {
    /// Fluentd's `placeholder_validate!(name, template)`.
    pub fn validate(&self, name: &str, s: &str) -> Result<(), String> {
        let unit = time_placeholder_unit(s);
        if unit.is_some() || self.timekey.is_some() {
            match (unit, self.timekey) {
                (None, Some(tk)) => {
                    return Err(format!(
                        "Parameter '{name}: {s}' doesn't have timestamp placeholders for timekey {tk}"
                    ))
                }
                (Some(_), None) => {
                    return Err(format!(
                        "Parameter '{name}: {s}' has timestamp placeholders, but chunk key 'time' is not configured"
                    ))
                }
                (Some((sec, title, ex)), Some(tk)) if tk < sec => {
                    return Err(format!(
                        "Parameter '{name}: {s}' doesn't have timestamp placeholder for {title}('{ex}') for timekey {tk}"
                    ))
                }
                _ => {}
            }
        }
        let names = placeholder_names(s);
        let has_tag = names
            .iter()
            .any(|(_, _, n)| *n == "tag" || tag_index(n).is_some());
        if self.tag && !has_tag {
            return Err(format!(
                "Parameter '{name}: {s}' doesn't have tag placeholder"
            ));
        }
        if !self.tag && has_tag {
            return Err(format!(
                "Parameter '{name}: {s}' has tag placeholders, but chunk key 'tag' is not configured"
            ));
        }
        let mut keys: Vec<&str> = names
            .iter()
            .map(|(_, _, n)| *n)
            .filter(|n| *n != "tag" && *n != "chunk_id" && tag_index(n).is_none())
            .collect();
        keys.sort();
        let mut missing: Vec<&str> = self
            .keys
            .iter()
            .map(String::as_str)
            .filter(|k| !keys.contains(k))
            .collect();
        missing.sort();
        if !missing.is_empty() {
            return Err(format!(
                "Parameter '{name}: {s}' doesn't have enough placeholders for keys {}",
                missing.join(",")
            ));
        }
        let mut extra: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !self.keys.iter().any(|c| c == k))
            .collect();
        extra.dedup();
        if !extra.is_empty() {
            return Err(format!(
                "Parameter '{name}: {s}' has placeholders, but chunk keys doesn't have keys {}",
                extra.join(",")
            ));
        }
        Ok(())
    }

    /// Fluentd's `extract_placeholders(template, chunk)`.
    pub fn expand(&self, template: &str, metadata: &Metadata, chunk_id_hex: &str) -> String {
        let empty =
            metadata.timekey.is_none() && metadata.tag.is_none() && metadata.variables.is_empty();
        let mut s = template.to_string();
        if !empty {
            if self.time {
                if let Some(tk) = metadata.timekey {
                    s = strftime(EventTime::new(tk, 0), &s, &self.zone);
                }
            }
            let tag = metadata.tag.as_deref();
            let parts: Vec<&str> = tag.map(|t| t.split('.').collect()).unwrap_or_default();
            let mut out = String::with_capacity(s.len());
            let mut pos = 0;
            for (start, end, name) in placeholder_names(&s) {
                let rep: Option<String> = if name == "tag" && self.tag {
                    tag.map(str::to_string)
                } else if let (Some(i), true) = (tag_index(name), self.tag) {
                    let n = parts.len() as i64;
                    let j = if i < 0 { n + i } else { i };
                    (0..n).contains(&j).then(|| parts[j as usize].to_string())
                } else if name == "chunk_id" || name == "tag" || tag_index(name).is_some() {
                    None
                } else if self.keys.iter().any(|k| k == name) {
                    metadata
                        .variables
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .or(Some(String::new()))
                } else {
                    None
                };
                if let Some(r) = rep {
                    out.push_str(&s[pos..start]);
                    out.push_str(&r);
                    pos = end;
                }
            }
            out.push_str(&s[pos..]);
            s = out;
        }
        s.replacen("${chunk_id}", chunk_id_hex, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Record, Value};

    fn keys(names: &[&str], timekey: Option<f64>) -> ChunkKeys {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        ChunkKeys::new(&names, timekey, true, None).unwrap()
    }

    #[test]
    fn chunk_key_argument_forms() {
        assert_eq!(
            parse_chunk_key_list("tag, time").unwrap(),
            vec!["tag", "time"]
        );
        assert_eq!(parse_chunk_key_list("[]").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_chunk_key_list("[\"tag\",\"$.a.b\"]").unwrap(),
            vec!["tag", "$.a.b"]
        );
        assert_eq!(parse_chunk_key_list("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn invalid_chunk_keys_are_rejected_with_fluentds_words() {
        let e = ChunkKeys::new(&["time".into()], None, false, None).unwrap_err();
        assert_eq!(
            e,
            "<buffer ...> argument includes 'time', but timekey is not configured"
        );
        let e = ChunkKeys::new(&["a b".into()], None, false, None).unwrap_err();
        assert_eq!(e, "chunk_keys specification includes invalid char");
        let e = ChunkKeys::new(&["$['a']".into()], None, false, None).unwrap_err();
        assert_eq!(e, "in chunk_keys: bracket notation is not allowed");
    }

    #[test]
    fn metadata_per_event_with_time_tag_and_nested_key() {
        let k = keys(&["tag", "time", "$.k.n", "lvl"], Some(3600.0));
        let mut es = EventStream::new();
        let rec = |n: i64, lvl: &str| {
            let mut inner = Record::new();
            inner.insert("n", Value::Int(n));
            let mut r = Record::new();
            r.insert("k", Value::Map(inner));
            r.insert("lvl", Value::str(lvl));
            r
        };
        es.push(EventTime::new(1_700_000_000, 0), rec(1, "info"));
        es.push(EventTime::new(1_700_000_100, 0), rec(1, "info"));
        es.push(EventTime::new(1_700_003_600, 0), rec(1, "info"));
        es.push(EventTime::new(1_700_000_000, 0), rec(2, "warn"));
        let g = k.group("app.web", es);
        assert_eq!(g.len(), 3);
        assert_eq!(
            g[0].0,
            Metadata {
                timekey: Some(1_699_999_200),
                tag: Some("app.web".into()),
                variables: vec![("$.k.n".into(), "1".into()), ("lvl".into(), "info".into())],
            }
        );
        assert_eq!(g[0].1.len(), 2);
        assert_eq!(g[1].0.timekey, Some(1_700_002_800));
        assert_eq!(g[2].0.variables[0].1, "2");
    }

    #[test]
    fn timekey_aligned_in_zone() {
        let k = ChunkKeys::new(&["time".into()], Some(86400.0), false, Some("+09:00")).unwrap();
        // 2023-11-14T22:13:20Z is 2023-11-15T07:13:20+09:00: the slot starts at 15th 00:00 +09.
        assert_eq!(
            k.timekey_of(EventTime::new(1_699_999_200 + 800, 0)),
            1_699_974_000
        );
        let k = keys(&["time"], Some(18000.0));
        // Case 186: timekey 5h → 2023-11-14 20:00 UTC.
        assert_eq!(
            k.timekey_of(EventTime::new(1_699_992_800, 0)),
            1_699_992_000
        );
    }

    #[test]
    fn placeholders_expand() {
        let p = keys(&["tag", "time", "host"], Some(86400.0)).placeholders();
        let m = Metadata {
            timekey: Some(1_699_920_000),
            tag: Some("app.web.x".into()),
            variables: vec![("host".into(), "h1".into())],
        };
        assert_eq!(
            p.expand(
                "/o/${tag}/${tag[1]}/${tag[-1]}/%Y-%m-%d/${host}-${chunk_id}.log",
                &m,
                "abc"
            ),
            "/o/app.web.x/web/x/2023-11-14/h1-abc.log"
        );
        let none = ChunkKeys::new(&[], None, false, None)
            .unwrap()
            .placeholders();
        assert_eq!(
            none.expand("/o/${chunk_id}/%Y", &Metadata::default(), "id"),
            "/o/id/%Y"
        );
    }

    #[test]
    fn placeholders_validate_like_fluentd() {
        let p = keys(&["time"], Some(86400.0)).placeholders();
        assert!(p.validate("path", "/o/%Y%m%d.log").is_ok());
        assert_eq!(
            p.validate("path", "/o/x.log").unwrap_err(),
            "Parameter 'path: /o/x.log' doesn't have timestamp placeholders for timekey 86400"
        );
        let p = keys(&["time"], Some(60.0)).placeholders();
        assert_eq!(
            p.validate("path", "/o/%Y%m%d%H").unwrap_err(),
            "Parameter 'path: /o/%Y%m%d%H' doesn't have timestamp placeholder for hour('%H') for timekey 60"
        );
        let p = keys(&[], None).placeholders();
        assert_eq!(
            p.validate("path", "/o/${tag}").unwrap_err(),
            "Parameter 'path: /o/${tag}' has tag placeholders, but chunk key 'tag' is not configured"
        );
        assert_eq!(
            p.validate("path", "/o/${host}").unwrap_err(),
            "Parameter 'path: /o/${host}' has placeholders, but chunk keys doesn't have keys host"
        );
        assert_eq!(
            p.validate("path", "/o/%d").unwrap_err(),
            "Parameter 'path: /o/%d' has timestamp placeholders, but chunk key 'time' is not configured"
        );
        let p = keys(&["tag", "host"], None).placeholders();
        assert_eq!(
            p.validate("path", "/o/${tag}").unwrap_err(),
            "Parameter 'path: /o/${tag}' doesn't have enough placeholders for keys host"
        );
        assert!(p.validate("path", "/o/${tag[0]}/${host}").is_ok());
    }
}
