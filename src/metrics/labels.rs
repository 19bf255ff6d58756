//! fluent-plugin-prometheus `<labels>`: static values, `${tag}`, `${hostname}`,
//! `${worker_id}`, `${tag_parts[N]}`, `${<record key>}` placeholders, and record accessors
//! (`$.a.b`, `$['a']`) where the plugin sees records.

use crate::config_parser::Element;
use crate::event::Record;
use crate::record_accessor::RecordAccessor;

#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Tag,
    TagPart(i64),
    Key(String),
}

#[derive(Debug, Clone)]
enum LabelValue {
    Fixed(String),
    Template(Vec<Piece>),
    Accessor(RecordAccessor),
}

/// Label names and how to compute their values, in declaration order.
#[derive(Debug, Clone, Default)]
pub struct Labels(Vec<(String, LabelValue)>);

fn template(value: &str, hostname: &str, worker_id: u32) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        if start > 0 {
            out.push(Piece::Lit(rest[..start].to_string()));
        }
        let name = &rest[start + 2..start + len];
        let piece = match name {
            "tag" => Piece::Tag,
            "hostname" => Piece::Lit(hostname.to_string()),
            "worker_id" => Piece::Lit(worker_id.to_string()),
            n if n.starts_with("tag_parts[") && n.ends_with(']') => {
                match n["tag_parts[".len()..n.len() - 1].parse::<i64>() {
                    Ok(i) => Piece::TagPart(i),
                    Err(_) => Piece::Lit(format!("${{{n}}}")),
                }
            }
            n => Piece::Key(n.to_string()),
        };
        out.push(piece);
        rest = &rest[start + len + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest.to_string()));
    }
    out
}

impl Labels {
    /// Reads a `<labels>` section (absent: none). `plugin` names the plugin in errors; without
    /// records (the monitors) accessors are refused and only host placeholders apply.
    pub fn parse(
        section: Option<&Element>,
        hostname: &str,
        worker_id: u32,
        records: bool,
        plugin: &str,
    ) -> Result<Labels, String> {
        let mut v = Vec::new();
        let Some(s) = section else {
            return Ok(Labels(v));
        };
        for p in &s.params {
            let key = p.key.clone();
            if !super::exposition::valid_name(&key) {
                return Err(format!("invalid label name '{key}'"));
            }
            let value = s.get(&key).unwrap_or_default();
            let lv = if value.starts_with("$.") || value.starts_with("$[") {
                if !records {
                    return Err(format!(
                        "record accessor syntax is not available in {plugin}"
                    ));
                }
                LabelValue::Accessor(RecordAccessor::new(value)?)
            } else {
                let t = template(value, hostname, worker_id);
                if !records && t.iter().any(|p| !matches!(p, Piece::Lit(_))) {
                    // Monitors expand only hostname/worker_id; the rest stays as written.
                    LabelValue::Fixed(value.to_string())
                } else if t.iter().all(|p| matches!(p, Piece::Lit(_))) {
                    LabelValue::Fixed(
                        t.iter()
                            .map(|p| match p {
                                Piece::Lit(s) => s.as_str(),
                                _ => "",
                            })
                            .collect(),
                    )
                } else {
                    LabelValue::Template(t)
                }
            };
            v.push((key, lv));
        }
        Ok(Labels(v))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// `self` then `other`; a name in both takes `other`'s value at its first position.
    pub fn merged(&self, other: &Labels) -> Labels {
        let mut v = self.0.clone();
        for (k, val) in &other.0 {
            match v.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = val.clone(),
                None => v.push((k.clone(), val.clone())),
            }
        }
        Labels(v)
    }

    /// Values without a record (monitors).
    pub fn fixed(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    LabelValue::Fixed(s) => s.clone(),
                    _ => String::new(),
                };
                (k.clone(), s)
            })
            .collect()
    }

    /// Values for one event.
    pub fn eval(&self, tag: &str, record: &Record) -> Vec<(String, String)> {
        let ruby_s = |v: Option<&crate::event::Value>| {
            v.map(|v| String::from_utf8_lossy(&v.to_ruby_s()).into_owned())
                .unwrap_or_default()
        };
        self.0
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    LabelValue::Fixed(s) => s.clone(),
                    LabelValue::Accessor(a) => ruby_s(a.get(record)),
                    LabelValue::Template(t) => {
                        let mut s = String::new();
                        for p in t {
                            match p {
                                Piece::Lit(l) => s.push_str(l),
                                Piece::Tag => s.push_str(tag),
                                Piece::TagPart(i) => {
                                    let parts: Vec<&str> = tag.split('.').collect();
                                    let idx = if *i < 0 { parts.len() as i64 + i } else { *i };
                                    if idx >= 0 {
                                        if let Some(p) = parts.get(idx as usize) {
                                            s.push_str(p);
                                        }
                                    }
                                }
                                Piece::Key(key) => s.push_str(&ruby_s(record.get(key))),
                            }
                        }
                        s
                    }
                };
                (k.clone(), s)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    #[test]
    fn placeholders_and_accessors() {
        let mut s = crate::test_util::section("labels", &[]);
        s.set("tag", "${tag}");
        s.set("host", "${hostname}");
        s.set("w", "w${worker_id}");
        s.set("part", "${tag_parts[-1]}");
        s.set("code", "$.res.code");
        s.set("method", "${method}");
        let l = Labels::parse(Some(&s), "h1", 0, true, "filter_prometheus").unwrap();
        let mut res = Record::new();
        res.insert("code", Value::Int(200));
        let mut r = Record::new();
        r.insert("res", Value::Map(res));
        r.insert("method", Value::str("GET"));
        let got = l.eval("app.web", &r);
        let want: Vec<(String, String)> = [
            ("tag", "app.web"),
            ("host", "h1"),
            ("w", "w0"),
            ("part", "web"),
            ("code", "200"),
            ("method", "GET"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
        let err = Labels::parse(Some(&s), "h1", 0, false, "prometheus_monitor").unwrap_err();
        assert_eq!(
            err,
            "record accessor syntax is not available in prometheus_monitor"
        );
    }
}
