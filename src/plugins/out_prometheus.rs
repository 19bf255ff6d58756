//! `@type prometheus` output (fluent-plugin-prometheus): counts events into the `<metric>`s and
//! drops them.

use super::filter_prometheus::PrometheusPluginConfig;
use super::prometheus::Instruments;
use super::{Output, OutputError, PluginContext};
use crate::config_parser::{ConfigError, Element};
use crate::event::EventStream;

pub struct PrometheusOutput {
    metrics: Instruments,
}

pub fn create(elem: &Element, ctx: &PluginContext) -> Result<Box<dyn Output>, ConfigError> {
    let _: PrometheusPluginConfig = ctx.configure(elem, "prometheus")?;
    Ok(Box::new(PrometheusOutput {
        metrics: Instruments::configure(elem, ctx, "out_prometheus")?,
    }))
}

impl Output for PrometheusOutput {
    fn emit(&self, tag: &str, es: EventStream) -> Result<(), OutputError> {
        self.metrics.instrument(tag, &es);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventTime, Record, Value};

    fn parse(conf: &str) -> Element {
        crate::config_parser::parse_str(conf, std::path::Path::new("t.conf"), &Default::default())
            .unwrap()
    }

    #[test]
    fn counts_and_observes_records() {
        let root = parse(
            r#"<match x>
  @type prometheus
  <labels>
    host ${hostname}
  </labels>
  <metric>
    name t_out_prom_records_total
    type counter
    desc The total number of records
    <labels>
      tag ${tag}
      code $.code
    </labels>
  </metric>
  <metric>
    name t_out_prom_size
    type histogram
    desc sizes
    key size
    buckets 10, 100
  </metric>
  <metric>
    name t_out_prom_bad
    type gauge
    desc needs key
    key nope
  </metric>
</match>
"#,
        );
        let m = &root.elements[0];
        let mut ctx = PluginContext::for_tests();
        ctx.hostname = "h".into();
        let o = create(m, &ctx).unwrap();
        let mut es = EventStream::new();
        for (code, size) in [(200, 5), (200, 50), (500, 500)] {
            let mut r = Record::new();
            r.insert("code", Value::Int(code));
            r.insert("size", Value::Int(size));
            es.push(EventTime::new(1, 0), r);
        }
        o.emit("app.web", es).unwrap();
        let out = crate::metrics::prom::render();
        assert!(out.contains("# TYPE t_out_prom_records_total counter\n"));
        assert!(
            out.contains("t_out_prom_records_total{host=\"h\",tag=\"app.web\",code=\"200\"} 2.0\n")
        );
        assert!(
            out.contains("t_out_prom_records_total{host=\"h\",tag=\"app.web\",code=\"500\"} 1.0\n")
        );
        assert!(out.contains("t_out_prom_size_bucket{host=\"h\",le=\"10.0\"} 1.0\n"));
        assert!(out.contains("t_out_prom_size_bucket{host=\"h\",le=\"100.0\"} 2.0\n"));
        assert!(out.contains("t_out_prom_size_count{host=\"h\"} 3.0\n"));
        // A gauge without a numeric value for its key has no series.
        assert!(!out.contains("t_out_prom_bad{"));

        let bad = parse("<match x>\n@type prometheus\n<metric>\nname g\ntype gauge\ndesc d\n</metric>\n</match>\n");
        assert!(create(&bad.elements[0], &ctx).is_err());
    }
}
