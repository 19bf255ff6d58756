//! record_transformer throughput: five typical `enable_ruby` expressions against five plain
//! placeholders, with the allocator the binary uses. Run `cargo bench --bench ruby`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrentd::config_parser::{parse_str, ParseOptions};
use ferrentd::event::{EventStream, EventTime, Value};
use ferrentd::plugins::{Filter, PluginContext};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn filter(conf: &str) -> Box<dyn Filter> {
    let text = format!("<filter **>\n  @type record_transformer\n{conf}\n</filter>\n");
    let root = parse_str(
        &text,
        std::path::Path::new("bench.conf"),
        &ParseOptions::default(),
    )
    .expect("config parses");
    ferrentd::plugins::filter_record_transformer::create(
        &root.elements[0],
        &PluginContext::for_tests(),
    )
    .expect("filter configures")
}

const BATCH: usize = 1000;

fn batch() -> EventStream {
    let rec = match ferrentd::util::value_from_json(
        serde_json::from_str(
            r#"{"host": "web-1", "code": "503", "msg": "GET  /api/v1/users   took 12ms", "kubernetes": {"namespace_name": "prod", "labels": {"app": "shop"}}, "n": 7}"#,
        )
        .expect("valid JSON"),
    ) {
        Value::Map(m) => m,
        _ => unreachable!(),
    };
    let mut es = EventStream::with_capacity(BATCH);
    for _ in 0..BATCH {
        es.push(EventTime::new(1_700_000_000, 0), rec.clone());
    }
    es
}

fn bench(c: &mut Criterion) {
    let plain = filter(
        "<record>\n a ${record[\"host\"]}\n b ${tag_parts[1]}\n c ${record[\"code\"]}\n d x-${tag}\n e ${hostname}\n</record>",
    );
    let ruby = filter(
        "enable_ruby true\n<record>\n a ${record[\"kubernetes\"][\"labels\"][\"app\"]}\n b ${record[\"host\"] || tag_parts[1]}\n c ${record[\"code\"].to_i >= 500 ? \"error\" : \"ok\"}\n d ${record[\"msg\"].gsub(/\\s+/, \" \")}\n e ${Time.at(time).utc.strftime(\"%Y-%m-%dT%H:%M:%S\")}\n</record>",
    );
    let mut g = c.benchmark_group("record_transformer");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("plain_placeholders_x5", |b| {
        b.iter_batched(
            batch,
            |es| plain.filter_stream("app.web.access", es),
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("enable_ruby_x5", |b| {
        b.iter_batched(
            batch,
            |es| ruby.filter_stream("app.web.access", es),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
