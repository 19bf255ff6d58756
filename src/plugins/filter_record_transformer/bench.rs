//! Throughput of five `enable_ruby` expressions against five plain placeholders (not a timed
//! assertion: `cargo test --release --lib bench_ruby_vs_plain -- --ignored --nocapture`).

use super::*;
use crate::test_util::directive;

fn filter(conf: &str) -> Box<dyn Filter> {
    let elem = directive(&format!(
        "<filter **>\n  @type record_transformer\n{conf}\n</filter>\n"
    ));
    match create(&elem, &PluginContext::for_tests()) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    }
}

fn events_per_sec(f: &dyn Filter, n: usize) -> f64 {
    let rec = match crate::util::value_from_json(
        serde_json::from_str(
            r#"{"host": "web-1", "code": "503", "msg": "GET  /api/v1/users   took 12ms", "kubernetes": {"namespace_name": "prod", "labels": {"app": "shop"}}, "n": 7}"#,
        )
        .unwrap(),
    ) {
        Value::Map(m) => m,
        _ => unreachable!(),
    };
    let batch = 1000;
    let start = std::time::Instant::now();
    let mut done = 0;
    while done < n {
        let mut es = EventStream::with_capacity(batch);
        for _ in 0..batch {
            es.push(EventTime::new(1_700_000_000, 0), rec.clone());
        }
        let out = f.filter_stream("app.web.access", es);
        assert_eq!(out.len(), batch);
        done += batch;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

#[test]
#[ignore]
fn bench_ruby_vs_plain() {
    let plain = filter(
        "<record>\n a ${record[\"host\"]}\n b ${tag_parts[1]}\n c ${record[\"code\"]}\n d x-${tag}\n e ${hostname}\n</record>",
    );
    let ruby = filter(
        "enable_ruby true\n<record>\n a ${record[\"kubernetes\"][\"labels\"][\"app\"]}\n b ${record[\"host\"] || tag_parts[1]}\n c ${record[\"code\"].to_i >= 500 ? \"error\" : \"ok\"}\n d ${record[\"msg\"].gsub(/\\s+/, \" \")}\n e ${Time.at(time).utc.strftime(\"%Y-%m-%dT%H:%M:%S\")}\n</record>",
    );
    let n = 200_000;
    // Warm up, then measure.
    events_per_sec(&*plain, 10_000);
    events_per_sec(&*ruby, 10_000);
    let p = events_per_sec(&*plain, n);
    let r = events_per_sec(&*ruby, n);
    for e in [
        "${record[\"kubernetes\"][\"labels\"][\"app\"]}",
        "${record[\"host\"] || tag_parts[1]}",
        "${record[\"code\"].to_i >= 500 ? \"error\" : \"ok\"}",
        "${record[\"msg\"].gsub(/\\s+/, \" \")}",
        "${Time.at(time).utc.strftime(\"%Y-%m-%dT%H:%M:%S\")}",
        "${record[\"host\"]}",
    ] {
        let f = filter(&format!("enable_ruby true\n<record>\n a {e}\n</record>"));
        println!("  {e}: {:.0} events/s", events_per_sec(&*f, n));
    }
    println!(
        "record_transformer: plain placeholders {p:.0} events/s, enable_ruby {r:.0} events/s, ratio {:.2}x",
        p / r
    );
}
