//! The exporter: a listener thread that hands each connection to a thread of its own, up
//! to [`MAX_CONNECTIONS`] at once, and stops when dropped.

use crate::error::Error;
use crate::http::{self, Response};
use crate::source::Source;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at once; one more is answered `503` and closed. Each is cut off after
/// at most 5 s for its request head and a few seconds for its answer, so a slow or silent
/// client holds its slot for seconds, never for ever.
pub const MAX_CONNECTIONS: usize = 16;

/// Serves `GET /metrics` on an address until dropped or [stopped](Exporter::stop).
///
/// ```no_run
/// use iomodels_engine::{echo::Echo, Config, Model, Server};
/// use iomodels_metrics::{Exporter, Source};
///
/// let config = Config::new(Model::SCALABLE[0], "127.0.0.1:7000".parse().unwrap());
/// let server = Server::start(config, Echo).unwrap();
/// let exporter = Exporter::start("127.0.0.1:9100".parse().unwrap(), Source::engine(&server))?;
/// println!("metrics on http://{}/metrics", exporter.local_addr());
/// // ... later:
/// exporter.stop();
/// server.stop().unwrap();
/// # Ok::<(), iomodels_metrics::Error>(())
/// ```
#[derive(Debug)]
pub struct Exporter {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    /// The listener thread; `None` once stopped.
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Listen on `addr` and serve the metrics of `source` there, from a thread of its own.
    pub fn start(addr: SocketAddr, source: Source) -> Result<Exporter, Error> {
        let listener = TcpListener::bind(addr).map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => Error::AddrInUse { addr },
            _ => Error::Listen { addr, source },
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| Error::Listen { addr, source })?;
        let shared = Arc::new(Shared {
            registry: source.registry(),
            stopping: AtomicBool::new(false),
        });
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn({
                let shared = shared.clone();
                move || accept_loop(&listener, &shared)
            })
            .map_err(Error::Thread)?;
        tracing::info!(addr = %local_addr, "serving metrics");
        Ok(Exporter {
            local_addr,
            shared,
            thread: Some(thread),
        })
    }

    /// The address it listens on (with the port resolved if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop listening, end the connections being served and wait for every thread of the
    /// exporter. Dropping the exporter does the same.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The listener thread is blocked in accept: a connection wakes it to see the flag.
        match TcpStream::connect_timeout(&wake_addr(self.local_addr), Duration::from_secs(5)) {
            Ok(_) => {
                if thread.join().is_err() {
                    tracing::error!("the metrics thread panicked");
                }
            }
            // Left running rather than waited for for ever; it ends with the process.
            Err(e) => tracing::warn!(error = %e, "cannot wake the metrics thread to stop it"),
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// What the exporter's threads share.
struct Shared {
    /// What a scrape encodes.
    registry: Registry,
    /// Set by [`Exporter::stop`]: every thread ends.
    stopping: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

/// Where to connect to reach a listener on `addr`: the loopback address of its family if
/// it listens on every address.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// The connections being served, each by its number: a handle on its socket to cut it
/// short when the exporter stops. A connection's thread takes its entry out when it ends,
/// so that its socket closes then.
#[derive(Default)]
struct Live {
    sockets: Mutex<HashMap<u64, TcpStream>>,
}

impl Live {
    fn sockets(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Accept until `stopping`, serving each connection on a thread of its own; then cut the
/// connections still open short and wait for their threads.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let live = Arc::new(Live::default());
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait a moment rather than spin.
                tracing::warn!(error = %e, "metrics: accept failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        threads.retain(|thread| !thread.is_finished());
        if live.sockets().len() >= MAX_CONNECTIONS {
            tracing::debug!("metrics: too many connections, answering 503");
            refuse(stream);
            continue;
        }
        next_id += 1;
        match start_connection(next_id, stream, shared, &live) {
            Ok(thread) => threads.push(thread),
            Err(e) => tracing::warn!(error = %e, "metrics: cannot serve a connection"),
        }
    }
    // Where it wakes a blocked read (Linux); elsewhere the threads see `stopping` within
    // a read slice.
    for socket in live.sockets().values() {
        let _ = socket.shutdown(Shutdown::Both);
    }
    for thread in threads {
        let _ = thread.join();
    }
}

/// Serve `stream` on a thread of its own, known to `live` as `id` until it ends.
fn start_connection(
    id: u64,
    stream: TcpStream,
    shared: &Arc<Shared>,
    live: &Arc<Live>,
) -> io::Result<JoinHandle<()>> {
    live.sockets().insert(id, stream.try_clone()?);
    let shared = shared.clone();
    let thread_live = live.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-connection".into())
        .spawn(move || {
            http::serve(stream, &shared.registry, &shared.stopping);
            thread_live.sockets().remove(&id);
        });
    if spawned.is_err() {
        live.sockets().remove(&id);
    }
    spawned
}

/// Answer `503` without reading the request; the write is small enough for any socket
/// buffer, and bounded by a short timeout anyway.
fn refuse(mut stream: TcpStream) {
    if stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .and_then(|()| Response::busy().write_to(&mut stream))
        .is_ok()
    {
        // Without lingering here: the listener thread must not wait on a client.
        let _ = stream.shutdown(Shutdown::Write);
    }
}
