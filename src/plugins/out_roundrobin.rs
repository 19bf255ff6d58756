//! `@type roundrobin`: each emitted stream goes to the next `<store>`, starting with the first.
//! `weight N` (default 1) repeats a store N/gcd times in the rotation; when any weight is above
//! 1 the rotation is shuffled once at start, as in Fluentd.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use super::{Output, OutputError, PluginContext};
use crate::config_parser::{ConfigError, Element, Nested};
use crate::event::EventStream;

#[derive(Deserialize)]
#[allow(dead_code)]
struct RoundRobinConf {
    store: Vec<Nested>,
}

#[derive(Deserialize)]
struct StoreWeight {
    #[serde(default = "one")]
    weight: i64,
}

fn one() -> i64 {
    1
}

pub struct RoundRobinOutput {
    stores: Vec<std::sync::Arc<dyn Output>>,
    /// Store indexes in rotation order.
    rotation: Vec<usize>,
    next: AtomicUsize,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

/// Fluentd's `rebuild_weight_array`.
fn rotation(weights: &[i64], shuffle: &mut dyn FnMut(&mut Vec<usize>)) -> Vec<usize> {
    let g = weights.iter().fold(0, |r, w| gcd(r, *w));
    let mut v = Vec::new();
    if g == 0 {
        return v;
    }
    for (i, w) in weights.iter().enumerate() {
        for _ in 0..(w / g).max(0) {
            v.push(i);
        }
    }
    if weights.iter().any(|w| *w > 1) {
        shuffle(&mut v);
    }
    v
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let c: Result<RoundRobinConf, ConfigError> = ctx.configure(elem, "roundrobin");
    c.map_err(|e| {
        if e.message.contains("'store' parameter is required") {
            elem.error("Missing <store> sections in roundrobin plugin")
        } else {
            e
        }
    })?;
    let mut stores = Vec::new();
    let mut weights = Vec::new();
    for s in elem.children("store") {
        let mut s = s.clone();
        let w: StoreWeight = {
            let mut only = Element::new("store", "", s.span.clone());
            only.params = s
                .params
                .iter()
                .filter(|p| p.key == "weight")
                .cloned()
                .collect();
            ctx.configure(&only, "roundrobin")?
        };
        s.remove("weight");
        tracing::debug!(
            "adding store type={:?}, weight={}",
            s.plugin_type().unwrap_or(""),
            w.weight
        );
        stores.push(super::new_store(&s, ctx)?);
        weights.push(w.weight);
    }
    let rotation = rotation(&weights, &mut |v| {
        use rand::seq::SliceRandom;
        v.shuffle(&mut rand::thread_rng());
    });
    if rotation.is_empty() {
        return Err(elem.error("roundrobin: every <store> has weight 0"));
    }
    Ok(Box::new(RoundRobinOutput {
        stores,
        rotation,
        next: AtomicUsize::new(0),
    }))
}

impl Output for RoundRobinOutput {
    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.rotation.len();
        self.stores[self.rotation[i]].emit(tag, es)
    }

    fn start(&self) -> anyhow::Result<()> {
        for s in &self.stores {
            s.start()?;
        }
        Ok(())
    }

    fn flush(&self) {
        for s in &self.stores {
            s.flush();
        }
    }

    fn shutdown(&self) {
        for s in &self.stores {
            s.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventTime, Record};
    use crate::router::{Emitter, LabelTable};
    use crate::test_util::directive;
    use std::collections::HashMap;

    #[test]
    fn weights_make_the_rotation() {
        let mut no_shuffle = |_: &mut Vec<usize>| {};
        assert_eq!(rotation(&[1, 1], &mut no_shuffle), vec![0, 1]);
        assert_eq!(rotation(&[2, 4], &mut no_shuffle), vec![0, 1, 1]);
        assert_eq!(rotation(&[3, 0], &mut no_shuffle), vec![0]);
        assert!(rotation(&[0, 0], &mut no_shuffle).is_empty());
        let mut shuffled = false;
        rotation(&[1, 2], &mut |_| shuffled = true);
        assert!(shuffled);
    }

    #[test]
    fn alternates_streams_starting_with_the_first_case_417() {
        let a = Emitter::collector("@A");
        let b = Emitter::collector("@B");
        let mut labels = HashMap::new();
        labels.insert("@A".to_string(), a.clone());
        labels.insert("@B".to_string(), b.clone());
        let ctx = PluginContext {
            labels: LabelTable::new(labels),
            ..PluginContext::for_tests()
        };
        let o = create(
            &directive("<match rr.**>\n@type roundrobin\n<store>\n@type relabel\n@label @A\n</store>\n<store>\n@type relabel\n@label @B\n</store>\n</match>"),
            &ctx,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for n in 1..=3 {
            let mut es = EventStream::new();
            for _ in 0..n {
                es.push(EventTime::new(0, 0), Record::new());
            }
            o.emit("rr.x", es).unwrap();
        }
        let sizes = |e: &Emitter| {
            e.collected()
                .iter()
                .map(|(_, es)| es.len())
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(&a), vec![1, 3]);
        assert_eq!(sizes(&b), vec![2]);
    }
}
