//! One scrape: a registry made for it, holding the instruments and the figures read at
//! that moment, encoded once. Figures read from elsewhere (/proc, the store, QUIC) are
//! registered as their values, so nothing keeps a copy between scrapes.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::{Registry, Unit};

/// What Prometheus asks for first; it reads this format since 2.0.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub type Labels = Vec<(&'static str, String)>;

/// A figure's name, help and unit (which the encoder appends to the name).
pub struct Describe {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<Unit>,
}

pub fn describe(name: &'static str, help: &'static str, unit: Option<Unit>) -> Describe {
    Describe { name, help, unit }
}

#[derive(Default)]
pub struct Scrape {
    registry: Registry,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

impl Scrape {
    pub fn new() -> Self {
        Scrape::default()
    }

    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    fn register(&mut self, what: Describe, metric: impl prometheus_client::registry::Metric) {
        match what.unit {
            Some(unit) => self
                .registry
                .register_with_unit(what.name, what.help, unit, metric),
            None => self.registry.register(what.name, what.help, metric),
        }
    }

    /// A value that goes up and down, read now.
    pub fn gauge(&mut self, what: Describe, value: f64) {
        let gauge = FloatGauge::default();
        gauge.set(value);
        self.register(what, gauge);
    }

    /// A gauge per label set.
    pub fn gauges(&mut self, what: Describe, values: impl IntoIterator<Item = (Labels, f64)>) {
        self.family(what, values, |g: &FloatGauge, v| {
            g.set(v);
        });
    }

    /// A total that only grows (but for a restart of what counts it), read now.
    pub fn counter(&mut self, what: Describe, value: f64) {
        let counter = FloatCounter::default();
        counter.inc_by(value);
        self.register(what, counter);
    }

    /// A counter per label set; values of one label set add up.
    pub fn counters(&mut self, what: Describe, values: impl IntoIterator<Item = (Labels, f64)>) {
        self.family(what, values, |c: &FloatCounter, v| {
            c.inc_by(v);
        });
    }

    /// A family of `M`, each label set's value `put` into its metric.
    fn family<M>(
        &mut self,
        what: Describe,
        values: impl IntoIterator<Item = (Labels, f64)>,
        put: impl Fn(&M, f64),
    ) where
        M: Default + EncodeMetric + TypedMetric + Send + Sync + std::fmt::Debug + 'static,
    {
        let family = Family::<Labels, M>::default();
        for (labels, value) in values {
            put(&family.get_or_create(&labels), value);
        }
        self.register(what, family);
    }

    /// The scrape in the OpenMetrics text format, `# EOF` last.
    pub fn finish(self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would leave it cut short,
        // which Prometheus refuses whole (no `# EOF`), so nothing half-read is taken.
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!("encoding the metrics: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_encode_with_their_units_and_suffixes() {
        let mut s = Scrape::new();
        s.gauge(
            describe("covey_x_memory", "Memory", Some(Unit::Bytes)),
            1024.0,
        );
        s.counters(
            describe("covey_x_cpu", "CPU", Some(Unit::Seconds)),
            [
                (vec![("task", "a".to_string())], 1.5),
                (vec![("task", "a".to_string())], 1.0),
                (vec![("task", "b\"q".to_string())], 2.0),
            ],
        );
        let text = s.finish();
        assert!(
            text.contains("# TYPE covey_x_memory_bytes gauge\n"),
            "{text}"
        );
        assert!(text.contains("covey_x_memory_bytes 1024.0\n"), "{text}");
        assert!(
            text.contains("covey_x_cpu_seconds_total{task=\"a\"} 2.5\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"task="b\"q""#),
            "label values escaped: {text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
