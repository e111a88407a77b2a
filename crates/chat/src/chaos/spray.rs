//! spray: connections that send random bytes while two members chat (see
//! [`super::member`] for what the members check).
//!
//! Each of `connections` sprayers writes a chunk every 50 ms and reads (and drops) what the
//! server answers in between; when the server closes it, the sprayer notes how long after
//! its first byte, and connects again. The chunks come from a SplitMix64 generator seeded
//! from the run's seed and the sprayer's number, so one seed gives one spray. A chunk is
//! one of: random bytes; a valid header of a request with a random body; a header with a
//! declared length past the protocol's maximum; a random id and length; a partial header;
//! a login with a random user id (which may well succeed, and the sprayer go on to send
//! garbage as a logged-in user).

use super::member::{self, MemberReport, Room};
use super::sample::Sampler;
use super::{join, mib, spawn, ChaosConfig, ChaosDetails, Outcome, Spread};
use crate::error::Error;
use iomodels_proto::{id, Request, HEADER_SIZE, MAX_PACKET_SIZE};
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// How often a sprayer writes.
const EVERY: Duration = Duration::from_millis(50);

/// What spray found.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SprayReport {
    /// Sprayers at a time.
    pub sprayers: usize,
    /// The seed.
    pub seed: u64,
    /// Seconds the spray lasted.
    pub duration_secs: f64,
    /// Spray connections opened.
    pub opened: u64,
    /// Spray connections the server closed.
    pub closed_by_server: u64,
    /// Spray connections still open at the end.
    pub open_at_end: u64,
    /// Connects that failed.
    pub connect_failures: u64,
    /// Seconds from a spray connection's first byte to the server's close.
    pub close_latency: Option<Spread>,
    /// Chunks written.
    pub writes: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The two members.
    pub members: Vec<MemberReport>,
}

impl fmt::Display for SprayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "spray:        {} sprayers for {:.1} s, seed {}: {} connections, {} closed by the server, {} open at the end, {} connects failed; {} writes, {:.2} MiB",
            self.sprayers,
            self.duration_secs,
            self.seed,
            self.opened,
            self.closed_by_server,
            self.open_at_end,
            self.connect_failures,
            self.writes,
            mib(self.bytes as f64)
        )?;
        if let Some(latency) = &self.close_latency {
            writeln!(f, "closed:       {latency} after the first byte")?;
        }
        for member in &self.members {
            writeln!(f, "member        {member}")?;
        }
        Ok(())
    }
}

/// What one sprayer did.
#[derive(Default)]
struct Tally {
    opened: u64,
    closed: u64,
    open_at_end: u64,
    connect_failures: u64,
    latencies: Vec<f64>,
    writes: u64,
    bytes: u64,
}

pub(super) fn run(config: &ChaosConfig, tag: &str) -> Result<Outcome, Error> {
    let names: Vec<Vec<u8>> = ["a", "b"]
        .iter()
        .map(|m| format!("{}{tag}{m}", config.user_prefix).into_bytes())
        .collect();
    let mut joined = Vec::with_capacity(names.len());
    for name in &names {
        joined.push(join(config, name)?);
    }
    let sampler = config
        .server_pid
        .map(|pid| Sampler::start(pid, config.scenario))
        .transpose()?;
    let epoch = Instant::now();
    let room = Room {
        epoch,
        sent: names.iter().map(|_| AtomicU64::new(0)).collect(),
        names,
        flooder: None,
        rate: config.rate,
        start: epoch,
        stop: epoch + config.duration,
        drain_timeout: config.drain_timeout,
    };
    let room = &room;
    let (members, tallies) = std::thread::scope(|scope| -> Result<_, Error> {
        let mut sprayers = Vec::with_capacity(config.connections);
        for slot in 0..config.connections {
            sprayers.push(spawn(scope, format!("chaos-sprayer-{slot}"), move || {
                spray(config, room, slot)
            })?);
        }
        let mut threads = Vec::with_capacity(joined.len());
        for (i, joined) in joined.into_iter().enumerate() {
            threads.push(spawn(scope, format!("chaos-member-{i}"), move || {
                member::run(room, i, joined)
            })?);
        }
        let panicked = || Error::Chaos {
            scenario: config.scenario,
            what: "a thread of the scenario panicked".into(),
            source: None,
        };
        let members = threads
            .into_iter()
            .map(|t| t.join().map_err(|_| panicked()))
            .collect::<Result<Vec<_>, _>>()?;
        let tallies = sprayers
            .into_iter()
            .map(|t| t.join().map_err(|_| panicked()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((members, tallies))
    })?;

    let server = sampler.map(Sampler::finish);
    let mut report = SprayReport {
        sprayers: config.connections,
        seed: config.seed,
        duration_secs: config.duration.as_secs_f64(),
        opened: 0,
        closed_by_server: 0,
        open_at_end: 0,
        connect_failures: 0,
        close_latency: None,
        writes: 0,
        bytes: 0,
        members,
    };
    let mut latencies = Vec::new();
    for tally in tallies {
        report.opened += tally.opened;
        report.closed_by_server += tally.closed;
        report.open_at_end += tally.open_at_end;
        report.connect_failures += tally.connect_failures;
        report.writes += tally.writes;
        report.bytes += tally.bytes;
        latencies.extend(tally.latencies);
    }
    report.close_latency = Spread::of(latencies);
    let mut problems = Vec::new();
    for (member, who) in report.members.iter().zip(["member a", "member b"]) {
        problems.extend(member.problems(who, config.drain_timeout, false));
    }
    if !member::orders_agree(&report.members) {
        problems.push("the members saw the room's chats in different orders".into());
    }
    if report.opened == 0 {
        problems.push("no spray connection could connect".into());
    }
    Ok(Outcome {
        details: ChaosDetails::Spray(report),
        problems,
        server,
    })
}

/// Sprayer `slot`: connect, spray until the server closes the connection, again, until
/// the room's stop.
fn spray(config: &ChaosConfig, room: &Room, slot: usize) -> Tally {
    let mut random = SplitMix64::new(config.seed ^ (slot as u64 + 1).wrapping_mul(GOLDEN));
    let mut tally = Tally::default();
    let mut next = room.start + EVERY.mul_f64(slot as f64 / config.connections as f64);
    let mut scratch = [0u8; 4096];
    while Instant::now() < room.stop {
        let opened = Instant::now();
        let mut stream = match TcpStream::connect_timeout(&config.addr, config.response_timeout) {
            Ok(stream) => stream,
            Err(_) => {
                tally.connect_failures += 1;
                pace(next.min(room.stop));
                next += EVERY;
                continue;
            }
        };
        tally.opened += 1;
        let _ = stream.set_write_timeout(Some(EVERY));
        let mut first_byte: Option<Instant> = None;
        let closed = loop {
            let now = Instant::now();
            if now >= room.stop {
                tally.open_at_end += 1;
                break None;
            }
            if now >= next {
                let chunk = garbage(&mut random);
                first_byte.get_or_insert(now);
                next += EVERY;
                match stream.write_all(&chunk) {
                    Ok(()) => {
                        tally.writes += 1;
                        tally.bytes += chunk.len() as u64;
                    }
                    // The server is not reading it now: not a close.
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break Some(Instant::now()),
                }
                continue;
            }
            let wait = (next.min(room.stop) - now).max(Duration::from_millis(1));
            if stream.set_read_timeout(Some(wait)).is_err() {
                break Some(Instant::now());
            }
            match stream.read(&mut scratch) {
                Ok(0) => break Some(Instant::now()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => break Some(Instant::now()),
            }
        };
        if let Some(at) = closed {
            tally.closed += 1;
            let from = first_byte.unwrap_or(opened);
            tally
                .latencies
                .push(at.saturating_duration_since(from).as_secs_f64());
        }
    }
    tally
}

/// Wait until `at` (pacing the next attempt, not synchronisation).
fn pace(at: Instant) {
    let left = at.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        std::thread::sleep(left);
    }
}

/// The golden ratio's 64-bit fraction, SplitMix64's increment.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast and good enough for garbage; the
/// same seed gives the same bytes on every platform and in every version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: usize, high: usize) -> usize {
        low + (self.next() % (high - low + 1) as u64) as usize
    }

    /// Append `n` random bytes to `out`.
    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        out.extend((0..n).map(|_| self.next() as u8));
    }
}

/// A 5-byte header: `length` and `id`, little-endian, flags 0.
fn header(out: &mut Vec<u8>, length: u16, id: u16) {
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.push(0);
}

/// One chunk of garbage.
fn garbage(random: &mut SplitMix64) -> Vec<u8> {
    // The requests a client may send, with their sizes.
    const REQUESTS: [(u16, usize); 4] = [
        (id::LOGIN_REQUEST, 71),
        (id::ROOM_ENTER_REQUEST, 9),
        (id::ROOM_LEAVE_REQUEST, 5),
        (id::ROOM_CHAT_REQUEST, 262),
    ];
    let mut out = Vec::new();
    match random.next() % 6 {
        0 => {
            let n = random.between(1, 512);
            random.fill(&mut out, n);
        }
        1 => {
            let (id, size) = REQUESTS[random.between(0, REQUESTS.len() - 1)];
            header(&mut out, size as u16, id);
            random.fill(&mut out, size - HEADER_SIZE);
        }
        2 => {
            let (id, _) = REQUESTS[random.between(0, REQUESTS.len() - 1)];
            let length = random.between(MAX_PACKET_SIZE + 1, u16::MAX as usize);
            header(&mut out, length as u16, id);
            let n = random.between(0, 256);
            random.fill(&mut out, n);
        }
        3 => {
            header(&mut out, random.next() as u16, random.next() as u16);
            let n = random.between(0, 64);
            random.fill(&mut out, n);
        }
        4 => {
            let n = random.between(1, HEADER_SIZE - 1);
            random.fill(&mut out, n);
        }
        _ => {
            let n = random.between(1, 32);
            let user_id = (0..n).map(|_| b'a' + (random.next() % 26) as u8).collect();
            Request::Login {
                user_id,
                password: b"spray".to_vec(),
            }
            .encode(&mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_one_spray() {
        let chunks = |seed| {
            let mut random = SplitMix64::new(seed);
            (0..50).map(|_| garbage(&mut random)).collect::<Vec<_>>()
        };
        assert_eq!(chunks(7), chunks(7));
        assert_ne!(chunks(7), chunks(8));
        // SplitMix64's published first output for seed 0.
        assert_eq!(SplitMix64::new(0).next(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn every_kind_of_garbage_comes() {
        let mut random = SplitMix64::new(1);
        let chunks: Vec<Vec<u8>> = (0..600).map(|_| garbage(&mut random)).collect();
        let huge = |c: &Vec<u8>| {
            c.len() >= HEADER_SIZE
                && usize::from(u16::from_le_bytes([c[0], c[1]])) > MAX_PACKET_SIZE
        };
        assert!(chunks.iter().any(huge));
        assert!(chunks.iter().any(|c| c.len() < HEADER_SIZE));
        assert!(chunks
            .iter()
            .any(|c| c.len() == 71 && c[2..4] == id::LOGIN_REQUEST.to_le_bytes()));
    }
}
