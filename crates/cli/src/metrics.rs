//! `--metrics-addr` of `serve` and `chat-server`: the Prometheus exporter beside the server.

use iomodels_metrics::{Error, Exporter, Source};
use std::net::SocketAddr;

/// Start the exporter on `addr` if one was given.
pub fn start(
    addr: Option<SocketAddr>,
    source: impl FnOnce() -> Source,
) -> Result<Option<Exporter>, Error> {
    addr.map(|addr| Exporter::start(addr, source())).transpose()
}

/// The banner's words on the exporter: `; metrics on http://ADDR/metrics`, or nothing.
pub fn banner(exporter: Option<&Exporter>) -> String {
    exporter.map_or_else(String::new, |exporter| {
        format!("; metrics on http://{}/metrics", exporter.local_addr())
    })
}
