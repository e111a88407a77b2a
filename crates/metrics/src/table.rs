//! A table of metrics read from one snapshot, and the prometheus-client [`Collector`] that
//! takes the snapshot at scrape time and encodes the table from it.
//!
//! A table is a `&'static [Metric<S>]`: each entry names a metric and says how to read it
//! from a snapshot `S` (the engine's `Stats`, the chat's `ChatStats`, the process's
//! usage). Nothing is copied into prometheus-client's own counters: every scrape takes one
//! fresh snapshot from the servers' atomic counters and writes each entry from it.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::fmt;

/// A counter (only goes up) or a gauge (goes up and down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

/// A sample's value: a count, or a real number (seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value {
    Count(u64),
    Real(f64),
}

impl From<u64> for Value {
    fn from(count: u64) -> Value {
        Value::Count(count)
    }
}

impl From<f64> for Value {
    fn from(real: f64) -> Value {
        Value::Real(real)
    }
}

/// How a metric's samples are read from a snapshot.
enum Read<S> {
    /// One sample, no label of its own.
    One(fn(&S) -> u64),
    /// Any number of samples, each with its own labels (a family), or none (a value the
    /// system would not give).
    Many(fn(&S, &mut Samples<'_, '_>)),
}

/// One metric of a table: its name (without the `iomodels_` prefix a registry adds, nor
/// the `_total` the encoder adds to counters), its help and how to read it.
pub(crate) struct Metric<S> {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    read: Read<S>,
}

impl<S> Metric<S> {
    /// A counter with one sample.
    pub(crate) const fn counter(
        name: &'static str,
        help: &'static str,
        read: fn(&S) -> u64,
    ) -> Self {
        Metric {
            name,
            help,
            kind: Kind::Counter,
            read: Read::One(read),
        }
    }

    /// A gauge with one sample.
    pub(crate) const fn gauge(name: &'static str, help: &'static str, read: fn(&S) -> u64) -> Self {
        Metric {
            name,
            help,
            kind: Kind::Gauge,
            read: Read::One(read),
        }
    }

    /// A counter whose samples `read` adds, each with its labels.
    pub(crate) const fn counters(
        name: &'static str,
        help: &'static str,
        read: fn(&S, &mut Samples<'_, '_>),
    ) -> Self {
        Metric {
            name,
            help,
            kind: Kind::Counter,
            read: Read::Many(read),
        }
    }

    /// A gauge whose samples `read` adds, each with its labels.
    pub(crate) const fn gauges(
        name: &'static str,
        help: &'static str,
        read: fn(&S, &mut Samples<'_, '_>),
    ) -> Self {
        Metric {
            name,
            help,
            kind: Kind::Gauge,
            read: Read::Many(read),
        }
    }

    /// The name, without prefix or suffix.
    #[cfg(test)]
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    fn encode(&self, snapshot: &S, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let metric_type = match self.kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
        };
        let mut family = encoder.encode_descriptor(self.name, self.help, None, metric_type)?;
        let mut samples = Samples {
            kind: self.kind,
            family: &mut family,
            result: Ok(()),
        };
        match self.read {
            Read::One(read) => samples.add(&[], read(snapshot)),
            Read::Many(read) => read(snapshot, &mut samples),
        }
        samples.result
    }
}

/// Where a family's reader adds its samples.
pub(crate) struct Samples<'a, 'e> {
    kind: Kind,
    family: &'a mut MetricEncoder<'e>,
    /// The first encoding error; later samples are skipped.
    result: fmt::Result,
}

impl Samples<'_, '_> {
    /// One sample with `labels` (beside the registry's constant ones).
    pub(crate) fn add(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) {
        if self.result.is_ok() {
            self.result = self.encode(labels, value.into());
        }
    }

    fn encode(&mut self, labels: &[(&str, &str)], value: Value) -> fmt::Result {
        let encoder = self.family.encode_family(&labels)?;
        match (self.kind, value) {
            (Kind::Counter, Value::Count(n)) => ConstCounter::new(n).encode(encoder),
            (Kind::Counter, Value::Real(x)) => ConstCounter::new(x).encode(encoder),
            (Kind::Gauge, Value::Count(n)) => ConstGauge::new(n).encode(encoder),
            (Kind::Gauge, Value::Real(x)) => ConstGauge::new(x).encode(encoder),
        }
    }
}

/// A [`Collector`] that takes a snapshot with `snapshot` at every scrape and encodes
/// `table` from it.
pub(crate) struct TableCollector<S: 'static> {
    what: &'static str,
    table: &'static [Metric<S>],
    snapshot: Box<dyn Fn() -> S + Send + Sync>,
}

impl<S: 'static> TableCollector<S> {
    /// A collector of `table`, named `what` in debug output.
    pub(crate) fn new(
        what: &'static str,
        table: &'static [Metric<S>],
        snapshot: impl Fn() -> S + Send + Sync + 'static,
    ) -> TableCollector<S> {
        TableCollector {
            what,
            table,
            snapshot: Box::new(snapshot),
        }
    }
}

impl<S: 'static> fmt::Debug for TableCollector<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableCollector")
            .field("what", &self.what)
            .field("metrics", &self.table.len())
            .finish()
    }
}

impl<S: 'static> Collector for TableCollector<S> {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let snapshot = (self.snapshot)();
        for metric in self.table {
            metric.encode(&snapshot, &mut encoder)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    struct Snapshot {
        hits: u64,
        open: u64,
        by_colour: [(&'static str, u64); 2],
        seconds: Option<f64>,
    }

    const TABLE: &[Metric<Snapshot>] = &[
        Metric::counter("hits", "Hits.", |s| s.hits),
        Metric::gauge("open", "Open now.", |s| s.open),
        Metric::counters("painted", "Painted, by colour.", |s, out| {
            for (colour, n) in s.by_colour {
                out.add(&[("colour", colour)], n);
            }
        }),
        Metric::counters("busy_seconds", "Busy time.", |s, out| {
            if let Some(seconds) = s.seconds {
                out.add(&[], seconds);
            }
        }),
    ];

    fn registry(seconds: Option<f64>) -> Registry {
        let mut registry = Registry::with_prefix_and_labels(
            "test",
            [("model".into(), "epoll".into())].into_iter(),
        );
        registry.register_collector(Box::new(TableCollector::new("test", TABLE, move || {
            Snapshot {
                hits: 3,
                open: 2,
                by_colour: [("red", 1), ("blue", 0)],
                seconds,
            }
        })));
        registry
    }

    #[test]
    fn encodes_the_table_in_the_classic_text_format() {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry(Some(1.5)))
            .unwrap();
        let expected = "\
# HELP test_hits_total Hits.
# TYPE test_hits_total counter
test_hits_total{model=\"epoll\"} 3
# HELP test_open Open now.
# TYPE test_open gauge
test_open{model=\"epoll\"} 2
# HELP test_painted_total Painted, by colour.
# TYPE test_painted_total counter
test_painted_total{model=\"epoll\",colour=\"red\"} 1
test_painted_total{model=\"epoll\",colour=\"blue\"} 0
# HELP test_busy_seconds_total Busy time.
# TYPE test_busy_seconds_total counter
test_busy_seconds_total{model=\"epoll\"} 1.5
";
        assert_eq!(text, expected);
    }

    #[test]
    fn encodes_the_table_in_openmetrics() {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry(None)).unwrap();
        assert!(
            text.contains("# TYPE test_hits counter\ntest_hits_total{model=\"epoll\"} 3\n"),
            "{text}"
        );
        // A value the system would not give has a descriptor but no sample.
        assert!(
            text.contains("# TYPE test_busy_seconds counter\n# EOF\n"),
            "{text}"
        );
    }
}
