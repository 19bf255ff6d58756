//! `@type sample` (alias `dummy`): emits a fixed record (or cycles through several) `rate` times a
//! second, `size` events each time, with an optional auto-incremented key.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Input, InputContext, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::{EventStream, EventTime, Record, Value};

#[derive(Debug, Deserialize)]
struct SampleConfig {
    tag: String,
    #[serde(default = "one")]
    size: i64,
    #[serde(default = "one")]
    rate: i64,
    auto_increment_key: Option<String>,
    #[serde(alias = "dummy")]
    sample: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    reuse_record: bool,
    #[serde(default)]
    #[allow(dead_code)]
    suspend: bool,
    #[allow(dead_code)]
    storage: Option<crate::config_parser::Nested>,
}

fn one() -> i64 {
    1
}

pub struct SampleInput {
    tag: String,
    size: usize,
    rate: u64,
    auto_increment_key: Option<Vec<u8>>,
    samples: Vec<Record>,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Input>, ConfigError> {
    let cfg: SampleConfig = ctx.configure(elem, "sample")?;
    super::check_section_type(elem, "storage", &["local"])?;
    let text = cfg
        .sample
        .unwrap_or_else(|| r#"[{"message":"sample"}]"#.to_string());
    let at = || {
        elem.param("sample")
            .or_else(|| elem.param("dummy"))
            .map(|p| p.span.clone())
    };
    let bad = |msg: String| match at() {
        Some(span) => ConfigError::at(msg, &span),
        None => elem.error(msg),
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("sample: invalid JSON: {e}")))?;
    let items = match json {
        serde_json::Value::Array(a) => a,
        other => vec![other],
    };
    let mut samples = Vec::new();
    for item in items {
        match crate::util::value_from_json(item) {
            Value::Map(r) => samples.push(r),
            _ => return Err(bad("sample: must be a hash or an array of hashes".into())),
        }
    }
    if samples.is_empty() {
        return Err(bad("sample: the array is empty".into()));
    }
    Ok(Box::new(SampleInput {
        tag: cfg.tag,
        size: cfg.size.max(1) as usize,
        rate: cfg.rate.max(0) as u64,
        auto_increment_key: cfg.auto_increment_key.map(String::into_bytes),
        samples,
    }))
}

impl SampleInput {
    fn generate(&self, index: &mut usize, counter: &mut i64) -> Record {
        let mut r = self.samples[*index % self.samples.len()].clone();
        *index = (*index + 1) % self.samples.len();
        if let Some(k) = &self.auto_increment_key {
            r.insert(k.clone(), Value::Int(*counter));
            *counter += 1;
        }
        r
    }
}

impl Input for SampleInput {
    fn run(self: Box<Self>, ctx: InputContext) -> anyhow::Result<()> {
        let mut index = 0usize;
        let mut counter = 0i64;
        let mut next = Instant::now();
        loop {
            if ctx.shutdown.is_set() {
                return Ok(());
            }
            // `rate` emits a second, each of `size` events, spread evenly over the second.
            for _ in 0..self.rate {
                let mut es = EventStream::with_capacity(self.size);
                for _ in 0..self.size {
                    es.push(EventTime::now(), self.generate(&mut index, &mut counter));
                }
                ctx.router.emit(&self.tag, es);
            }
            next += Duration::from_secs(1);
            let now = Instant::now();
            if next > now && ctx.shutdown.wait_timeout(next - now) {
                return Ok(());
            }
            if next < now {
                next = now;
            }
        }
    }
}
