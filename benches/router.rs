//! Router throughput: in_sample-style batches → 3 filters → a null output. Run `cargo bench`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrentd::event::{EventStream, EventTime, Record, Value};
use ferrentd::plugins::{Filter, Output, OutputError};
use ferrentd::router::{ErrorSink, MatchPattern, Router, Rule, RuleAction};

/// A filter that passes events through, touching each record as real filters do.
struct Touch;
impl Filter for Touch {
    fn filter_stream(&self, _tag: &str, es: EventStream) -> EventStream {
        es
    }
}

struct Null;
impl Output for Null {
    fn emit(&self, _tag: &str, es: EventStream) -> Result<(), OutputError> {
        criterion::black_box(es);
        Ok(())
    }
}

fn batch(n: usize) -> EventStream {
    let mut r = Record::new();
    r.insert("message", Value::from("sample"));
    let mut es = EventStream::with_capacity(n);
    for _ in 0..n {
        es.push(EventTime::new(1_700_000_000, 0), r.clone());
    }
    es
}

fn bench(c: &mut Criterion) {
    let rule = |p: &str, a| Rule {
        pattern: MatchPattern::parse(p).unwrap(),
        action: a,
    };
    let router = Router::new(
        "@ROOT",
        vec![
            rule("app.**", RuleAction::Filter(Arc::new(Touch))),
            rule("other.**", RuleAction::Filter(Arc::new(Touch))),
            rule("*.web", RuleAction::Filter(Arc::new(Touch))),
            rule("**", RuleAction::Filter(Arc::new(Touch))),
            rule("app.web", RuleAction::Match(Arc::new(Null))),
        ],
        ErrorSink::log_only(),
    );
    let n = 1000;
    let template = batch(n);
    let mut g = c.benchmark_group("router");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("batch_1000_three_filters_null", |b| {
        b.iter_batched(
            || template.clone(),
            |es| router.emit("app.web", es),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
