//! flood: one member of a room writes chats back to back and never reads, while the
//! readers chat among themselves and read everything (see [`super::member`] for what they
//! check).
//!
//! The flooder writes batches of chats with a short write timeout, so that it notices the
//! end of the flood even when the server has stopped reading it, and counts the bytes that
//! went out per 10 ms. A write that fails means the server cut it. After the flood a
//! flooder still connected sends its FIN and reads (and drops) whatever the server still
//! sends until the server closes: the server then handles what it had read, and tells the
//! room that the flooder left, which is the readers' sign that no chat of it can follow.

use super::member::{self, MemberReport, Room};
use super::sample::Sampler;
use super::{join, mib, spawn, ChaosConfig, ChaosDetails, Outcome};
use crate::client::{ClientError, Connection};
use crate::error::Error;
use iomodels_proto::Request;
use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// Chats per write of the flooder.
const BATCH: usize = 64;

/// The size of one chat request on the wire.
const CHAT_SIZE: u64 = 262;

/// The width of the flooder's write-rate buckets.
const BUCKET: Duration = Duration::from_millis(10);

/// What became of the flooder.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FlooderFate {
    /// Bytes it wrote.
    pub bytes_written: u64,
    /// Whole chats it wrote.
    pub chats_written: u64,
    /// Seconds after the flood began that a write failed: the server had closed or reset
    /// the connection. `None`: every write went through (or waited) until the end.
    pub cut_after_secs: Option<f64>,
    /// Why that write failed.
    pub cut_how: Option<String>,
    /// Seconds after the flood began that the first reader was told the flooder left the
    /// room (its 217).
    pub left_room_after_secs: Option<f64>,
    /// Bytes per second it wrote in the flood's first second.
    pub first_second_bytes_per_sec: f64,
    /// Bytes per second it wrote in its last second of writing (before the cut, or before
    /// the end).
    pub last_second_bytes_per_sec: f64,
    /// Its last second's rate fell under a quarter of its first's: the server slowed it
    /// (by not reading it).
    pub slowed: bool,
    /// Not cut: seconds from its FIN after the flood to the server's close. `None` if cut,
    /// or if the server had not closed it within the drain timeout.
    pub closed_after_fin_secs: Option<f64>,
}

impl fmt::Display for FlooderFate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {} chats ({:.1} MiB); {:.1} MiB/s in its first second, {:.1} MiB/s in its last{}",
            self.chats_written,
            mib(self.bytes_written as f64),
            mib(self.first_second_bytes_per_sec),
            mib(self.last_second_bytes_per_sec),
            if self.slowed { " (slowed)" } else { "" }
        )?;
        match (self.cut_after_secs, &self.cut_how) {
            (Some(after), Some(how)) => write!(f, "; cut after {after:.2} s ({how})")?,
            _ => f.write_str("; never cut")?,
        }
        if let Some(after) = self.left_room_after_secs {
            write!(f, "; the room saw it leave after {after:.2} s")?;
        }
        if let Some(after) = self.closed_after_fin_secs {
            write!(f, "; closed {after:.2} s after its FIN")?;
        }
        Ok(())
    }
}

/// What a flood found.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FloodReport {
    /// Seconds the flood lasted.
    pub duration_secs: f64,
    /// Chats per second of each reader.
    pub rate: f64,
    /// The flooder.
    pub flooder: FlooderFate,
    /// The flooder's chats each reader saw as the gap-free prefix 0..k: every reader's k
    /// (they must agree).
    pub accepted: Vec<u64>,
    /// The readers.
    pub readers: Vec<MemberReport>,
}

impl fmt::Display for FloodReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "flood:        {:.1} s, {} readers chatting {} times a second each",
            self.duration_secs,
            self.readers.len(),
            self.rate
        )?;
        writeln!(f, "flooder:      {}", self.flooder)?;
        let same = self.accepted.windows(2).all(|w| w[0] == w[1]);
        match (same, self.accepted.first()) {
            (true, Some(k)) => writeln!(f, "accepted:     {k} flooder chats, at every reader")?,
            _ => writeln!(
                f,
                "accepted:     {:?} flooder chats, reader by reader",
                self.accepted
            )?,
        }
        for reader in &self.readers {
            writeln!(f, "reader        {reader}")?;
        }
        Ok(())
    }
}

pub(super) fn run(config: &ChaosConfig, tag: &str) -> Result<Outcome, Error> {
    let names: Vec<Vec<u8>> = (0..config.readers)
        .map(|i| format!("{}{tag}r{i}", config.user_prefix).into_bytes())
        .collect();
    let flooder_name = format!("{}{tag}flood", config.user_prefix).into_bytes();
    // The readers first, then the flooder: every reader is told of the flooder by a 208.
    let mut joined = Vec::with_capacity(names.len());
    for name in &names {
        joined.push(join(config, name)?);
    }
    let flooder = join(config, &flooder_name)?.connection;
    let sampler = config
        .server_pid
        .map(|pid| Sampler::start(pid, config.scenario))
        .transpose()?;
    let epoch = Instant::now();
    let room = Room {
        epoch,
        sent: names.iter().map(|_| AtomicU64::new(0)).collect(),
        names,
        flooder: Some(flooder_name),
        rate: config.rate,
        start: epoch,
        stop: epoch + config.duration,
        drain_timeout: config.drain_timeout,
    };
    let room = &room;
    let (mut fate, readers) = std::thread::scope(|scope| -> Result<_, Error> {
        // The readers first: they are reading when the flood begins.
        let mut threads = Vec::with_capacity(joined.len());
        for (i, joined) in joined.into_iter().enumerate() {
            threads.push(spawn(scope, format!("chaos-reader-{i}"), move || {
                member::run(room, i, joined)
            })?);
        }
        let flooding = spawn(scope, "chaos-flooder".into(), move || {
            flood(room, flooder, config.drain_timeout)
        })?;
        let panicked = || Error::Chaos {
            scenario: config.scenario,
            what: "a thread of the scenario panicked".into(),
            source: None,
        };
        let readers = threads
            .into_iter()
            .map(|t| t.join().map_err(|_| panicked()))
            .collect::<Result<Vec<_>, _>>()?;
        let fate = flooding.join().map_err(|_| panicked())?;
        Ok((fate, readers))
    })?;
    let server = sampler.map(Sampler::finish);
    fate.left_room_after_secs = readers
        .iter()
        .filter_map(|r| r.flooder_left_secs)
        .min_by(f64::total_cmp);

    let mut problems = Vec::new();
    for (i, reader) in readers.iter().enumerate() {
        problems.extend(reader.problems(&format!("reader {i}"), config.drain_timeout, true));
    }
    let whole: Vec<&MemberReport> = readers
        .iter()
        .filter(|r| r.closed.is_none() && r.drained)
        .collect();
    if whole
        .windows(2)
        .any(|w| w[0].flooder_chats != w[1].flooder_chats)
    {
        problems.push(format!(
            "the readers disagree on the flooder's accepted chats (k = {})",
            whole
                .iter()
                .map(|r| r.flooder_chats.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !member::orders_agree(&readers) {
        problems.push("the readers saw the room's chats in different orders".into());
    }
    if let Some(server) = &server {
        if server.peak_growth() > config.rss_bound {
            problems.push(format!(
                "the server's resident memory grew by {:.1} MiB during the flood (bound {:.1} MiB)",
                mib(server.peak_growth() as f64),
                mib(config.rss_bound as f64)
            ));
        }
        if let Some(error) = &server.error {
            problems.push(format!(
                "the server could not be sampled to the end: {error}"
            ));
        }
    }
    Ok(Outcome {
        details: ChaosDetails::Flood(FloodReport {
            duration_secs: config.duration.as_secs_f64(),
            rate: config.rate,
            flooder: fate,
            accepted: readers.iter().map(|r| r.flooder_chats).collect(),
            readers,
        }),
        problems,
        server,
    })
}

/// The flooder: chats `x 0`, `x 1`, ... back to back until the room's stop or a failed
/// write; then, if still connected, its FIN, and reading until the server closes.
fn flood(room: &Room, mut connection: Connection, drain: Duration) -> FlooderFate {
    let start = room.start;
    let mut writer = connection.stream();
    // Short, so that a flooder the server no longer reads still sees the end of the flood.
    let _ = writer.set_write_timeout(Some(Duration::from_millis(50)));
    let mut buckets: Vec<u64> = Vec::new();
    let mut batch = Vec::with_capacity(BATCH * CHAT_SIZE as usize);
    let mut seq = 0u64;
    let mut written = 0u64;
    let mut cut: Option<(Instant, String)> = None;
    'flood: loop {
        batch.clear();
        for _ in 0..BATCH {
            let message = format!("x {seq}").into_bytes();
            Request::RoomChat { message }.encode(&mut batch);
            seq += 1;
        }
        let mut offset = 0;
        while offset < batch.len() {
            let now = Instant::now();
            if now >= room.stop {
                break 'flood;
            }
            match writer.write(&batch[offset..]) {
                Ok(0) => {
                    cut = Some((now, "the connection was closed".into()));
                    break 'flood;
                }
                Ok(n) => {
                    offset += n;
                    written += n as u64;
                    let bucket = (now.saturating_duration_since(start).as_millis()
                        / BUCKET.as_millis()) as usize;
                    if buckets.len() <= bucket {
                        buckets.resize(bucket + 1, 0);
                    }
                    buckets[bucket] += n as u64;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    cut = Some((now, e.to_string()));
                    break 'flood;
                }
            }
        }
    }
    let ended = match &cut {
        Some((at, _)) => *at,
        None => Instant::now(),
    };
    // Rates over the first and the last second of writing (or over all of it, if it
    // lasted less than a second).
    let span = ended.saturating_duration_since(start).max(BUCKET);
    let second = Duration::from_secs(1).min(span);
    let bucket_of = |at: Duration| (at.as_nanos() / BUCKET.as_nanos()) as usize;
    let rate = |from: Duration| -> f64 {
        let to = bucket_of(from + second) + 1;
        let bytes: u64 = buckets.iter().take(to).skip(bucket_of(from)).sum();
        bytes as f64 / second.as_secs_f64()
    };
    let first_rate = rate(Duration::ZERO);
    let last_rate = rate(span - second);
    let mut fate = FlooderFate {
        bytes_written: written,
        chats_written: written / CHAT_SIZE,
        cut_after_secs: None,
        cut_how: None,
        left_room_after_secs: None,
        first_second_bytes_per_sec: first_rate,
        last_second_bytes_per_sec: last_rate,
        slowed: last_rate < first_rate / 4.0,
        closed_after_fin_secs: None,
    };
    match cut {
        Some((at, how)) => {
            fate.cut_after_secs = Some(at.saturating_duration_since(start).as_secs_f64());
            fate.cut_how = Some(how);
        }
        None => {
            // Let the server handle what it holds, and wait for its close.
            let fin = Instant::now();
            if connection.shutdown_write().is_ok() {
                match connection.wait_closed(drain) {
                    Ok(_) | Err(ClientError::Io { .. } | ClientError::Closed) => {
                        fate.closed_after_fin_secs = Some(fin.elapsed().as_secs_f64());
                    }
                    Err(ClientError::Timeout(_) | ClientError::Protocol(_)) => {}
                }
            }
        }
    }
    fate
}
