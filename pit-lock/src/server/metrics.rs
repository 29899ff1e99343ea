//! The service's Prometheus metrics.

#[allow(clippy::wildcard_imports)] // the service's shared imports
use super::*;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AcquireLabels {
    api: &'static str,
    outcome: &'static str,
}

pub(super) struct Metrics {
    pub(super) registry: Registry,
    acquisitions: Family<AcquireLabels, Counter>,
    pub(super) waits: Counter,
    pub(super) wait_seconds: Histogram,
    pub(super) held: Gauge,
    pub(super) renewals_lost: Counter,
}

impl Metrics {
    pub(super) fn new() -> Self {
        let mut registry = Registry::with_prefix("pit_lock");
        let acquisitions = Family::<AcquireLabels, Counter>::default();
        let waits = Counter::default();
        let wait_seconds = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0]);
        let held = Gauge::default();
        let renewals_lost = Counter::default();
        registry.register(
            "acquisitions",
            "Acquire requests by API and outcome",
            acquisitions.clone(),
        );
        registry.register("waits", "Acquire requests that had to wait", waits.clone());
        registry.register(
            "wait_seconds",
            "Time from request to lease for requests that waited",
            wait_seconds.clone(),
        );
        registry.register("held", "Lock ids held now", held.clone());
        registry.register(
            "renewals_lost",
            "Renewals refused because the lease was lost",
            renewals_lost.clone(),
        );
        Self {
            registry,
            acquisitions,
            waits,
            wait_seconds,
            held,
            renewals_lost,
        }
    }

    pub(super) fn acquired(&self, api: &'static str, outcome: &'static str) {
        self.acquisitions.get_or_create(&AcquireLabels { api, outcome }).inc();
    }
}
