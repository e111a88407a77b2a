//! Child processes: the servers under test and the load generator.
//!
//! Every server runs as its own process so its CPU time and memory can be read by pid
//! ([`iomodels_sys::process`]) and a crash or hang costs one row, not the comparison.
//!
//! A server is stopped as a user would stop it: SIGTERM on Linux, a stop request on Windows
//! (which has no SIGTERM; see [`iomodels_sys::process::request_stop`]); killed only when it
//! does not exit in time.

use crate::bench::BenchResult;
use crate::chat::BotsResult;
use std::env::consts::EXE_SUFFIX;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a server may take to accept its first connection.
const START_DEADLINE: Duration = Duration::from_secs(15);
/// How long a server may take to exit after SIGTERM (or a stop request) before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// How often a child is polled while waiting for it.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How much of a child's stderr is kept for an error message.
const STDERR_TAIL: usize = 4096;

/// Why one run (one row) failed. Recorded in the report, never fatal.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The server could not be spawned.
    #[error("cannot spawn `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The server exited before it accepted a connection.
    #[error("server exited before listening ({status}): {stderr}")]
    ExitedEarly {
        /// Its exit status.
        status: ExitStatus,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The server never said where it listens, or did not accept there.
    #[error("server did not announce its address and accept within {secs} s: {stderr}")]
    NotListening {
        /// The deadline.
        secs: u64,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The load generator ran too long and was killed.
    #[error("bench did not finish within {secs} s and was killed: {stderr}")]
    BenchTimeout {
        /// The deadline.
        secs: u64,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The load generator printed no result.
    #[error("bench gave no JSON result ({status}): {reason}; stderr: {stderr}")]
    BenchOutput {
        /// Its exit status.
        status: ExitStatus,
        /// Why its stdout did not parse.
        reason: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The bot swarm ran too long and was killed.
    #[error("chat-bots did not finish within {secs} s and was killed: {stderr}")]
    BotsTimeout {
        /// The deadline.
        secs: u64,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The bot swarm printed no report.
    #[error("chat-bots gave no JSON report ({status}): {reason}; stderr: {stderr}")]
    BotsOutput {
        /// Its exit status.
        status: ExitStatus,
        /// Why its stdout did not parse.
        reason: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// Waiting for a child failed.
    #[error("waiting for a child process: {0}")]
    Wait(#[source] io::Error),
}

/// The last line of `stdout` that holds a JSON object (a load process's report), or "".
pub fn last_json_line(stdout: &str) -> &str {
    stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('{'))
        .unwrap_or("")
}

/// Quote a command line for display, as a shell would need it.
pub fn command_line(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .map(|word| {
            if word.is_empty() || word.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", word.replace('\'', r"'\''"))
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parse a CPU list like `0`, `0-1` or `0,2-3`: sorted, without repeats, every CPU below
/// CPU_SETSIZE (the rules are [`iomodels_sys::parse_cpu_list`]'s).
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    iomodels_sys::parse_cpu_list(list).map_err(|error| error.to_string())
}

/// Where a server says it listens: the address in the first complete line of its stderr
/// that reads `... echo server on ADDR ...` or `... chat server on ADDR ...` (`iomodels
/// serve`, `iomodels chat-server` and `iomodels-peers` announce themselves that way once
/// they listen).
pub fn announced_addr(stderr: &str) -> Option<SocketAddr> {
    stderr
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .find_map(|line| {
            line.split_once(" echo server on ")
                .or_else(|| line.split_once(" chat server on "))
        })
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
}

/// The resident set (Windows: working set) of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    iomodels_sys::process::memory(pid)
        .ok()
        .map(|memory| memory.resident_kib)
}

/// What asks a server to stop, as the notes name it.
const STOP: &str = if cfg!(windows) {
    "the stop request"
} else {
    "SIGTERM"
};

/// Keeps the last [`STDERR_TAIL`] bytes a child writes to a pipe.
struct Tail {
    buffer: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Tail {
    fn new(mut pipe: impl Read + Send + 'static) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&buffer);
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 1024];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                let mut kept = shared.lock().unwrap_or_else(|e| e.into_inner());
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > STDERR_TAIL {
                    let excess = kept.len() - STDERR_TAIL;
                    kept.drain(..excess);
                }
            }
        });
        Tail {
            buffer,
            reader: Some(reader),
        }
    }

    /// What was kept so far, as written.
    fn raw(&self) -> String {
        let kept = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&kept).into_owned()
    }

    /// What was kept so far, on one line.
    fn text(&self) -> String {
        let kept = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        one_line(&String::from_utf8_lossy(&kept))
    }

    /// Wait for the pipe to close, then return what was kept.
    fn finish(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.text()
    }
}

/// Drop terminal colour codes and collapse whitespace runs (newlines included), so a
/// message fits a table cell.
pub fn one_line(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequence: ESC [ parameters, ended by a letter.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Poll `child` until it exits or `deadline` passes.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A server under test, started and listening.
pub struct ServerProcess {
    child: Child,
    stderr: Tail,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its resident set right after it started listening, KiB.
    pub baseline_rss_kib: Option<u64>,
}

impl ServerProcess {
    /// Spawn `program args` (listening on port 0: the kernel picks a port no one holds),
    /// optionally pinned from its start, and wait until it announces its address and
    /// accepts there.
    pub fn start(
        program: &Path,
        args: &[String],
        cpus: Option<&[usize]>,
    ) -> Result<Self, RunError> {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child =
            iomodels_sys::process::spawn(&mut command, cpus).map_err(|source| RunError::Spawn {
                command: command_line(program, args),
                source,
            })?;
        let stderr = Tail::new(child.stderr.take().expect("stderr is piped"));
        let mut server = ServerProcess {
            child,
            stderr,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            baseline_rss_kib: None,
        };
        server.wait_listening()?;
        server.baseline_rss_kib = rss_kib(server.pid());
        Ok(server)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_listening(&mut self) -> Result<(), RunError> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().map_err(RunError::Wait)? {
                return Err(RunError::ExitedEarly {
                    status,
                    stderr: self.stderr.text(),
                });
            }
            if let Some(addr) = announced_addr(&self.stderr.raw()) {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    self.addr = addr;
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                self.kill_now();
                return Err(RunError::NotListening {
                    secs: START_DEADLINE.as_secs(),
                    stderr: self.stderr.text(),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running (it should be, until [`ServerProcess::stop`]).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM (Windows: a stop request), wait, kill after a deadline. Returns a note when the
    /// exit was not clean.
    pub fn stop(mut self) -> Option<String> {
        if let Some(status) = self.exited() {
            let stderr = self.stderr.finish();
            return Some(format!("server exited during the run ({status}): {stderr}"));
        }
        if let Err(error) = iomodels_sys::process::request_stop(&mut self.child) {
            self.kill_now();
            let stderr = self.stderr.finish();
            return Some(format!(
                "server could not be sent {STOP} ({error}); killed: {stderr}"
            ));
        }
        let note = match wait_until(&mut self.child, Instant::now() + STOP_DEADLINE) {
            Ok(Some(status)) if status.success() => None,
            Ok(Some(status)) => Some(format!("server exited with {status} on {STOP}")),
            Ok(None) => {
                self.kill_now();
                Some(format!(
                    "server did not exit within {} s of {STOP}; killed",
                    STOP_DEADLINE.as_secs()
                ))
            }
            Err(error) => {
                self.kill_now();
                Some(format!("waiting for the server failed: {error}"))
            }
        };
        let stderr = self.stderr.finish();
        note.map(|note| format!("{note}: {stderr}"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill_now();
        }
    }
}

/// A load process that ran to its end.
struct Finished {
    /// Everything it printed on stdout.
    stdout: String,
    /// Its exit status.
    status: ExitStatus,
    /// The end of what it printed on stderr, on one line.
    stderr: String,
    /// From its spawn to its exit.
    wall: Duration,
}

/// How a load process ended.
enum Ended {
    /// It exited.
    Exited(Finished),
    /// It ran past its deadline and was killed; the end of its stderr.
    TimedOut(String),
}

/// Run a load process to completion (or `timeout`, then kill it), optionally pinned to
/// `cpus` from its start.
fn run_to_end(
    program: &Path,
    args: &[String],
    timeout: Duration,
    cpus: Option<&[usize]>,
) -> Result<Ended, RunError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let spawned = match cpus {
        Some(cpus) => iomodels_sys::process::spawn(&mut command, Some(cpus)),
        None => command.spawn(),
    };
    let mut child = spawned.map_err(|source| RunError::Spawn {
        command: command_line(program, args),
        source,
    })?;
    let mut stdout_pipe = child.stdout.take().expect("stdout is piped");
    let stdout_reader = std::thread::spawn(move || {
        let mut stdout = String::new();
        let _ = stdout_pipe.read_to_string(&mut stdout);
        stdout
    });
    let mut stderr = Tail::new(child.stderr.take().expect("stderr is piped"));
    let status = match wait_until(&mut child, started + timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Ended::TimedOut(stderr.text()));
        }
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::Wait(error));
        }
    };
    let wall = started.elapsed();
    let stdout = stdout_reader.join().unwrap_or_default();
    Ok(Ended::Exited(Finished {
        stdout,
        status,
        stderr: stderr.finish(),
        wall,
    }))
}

/// Run the load generator to completion (or `timeout`) and parse its JSON line.
pub fn run_bench(
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<BenchResult, RunError> {
    let finished = match run_to_end(program, args, timeout, None)? {
        Ended::Exited(finished) => finished,
        Ended::TimedOut(stderr) => {
            return Err(RunError::BenchTimeout {
                secs: timeout.as_secs(),
                stderr,
            })
        }
    };
    BenchResult::from_stdout(&finished.stdout).map_err(|error| RunError::BenchOutput {
        status: finished.status,
        reason: error.to_string(),
        stderr: finished.stderr,
    })
}

/// Run the bot swarm (`iomodels chat-bots --json`) to completion (or `timeout`), pinned to
/// `cpus` when given, and parse its JSON line; with it, the swarm's wall time from spawn to
/// exit. A swarm that saw problems exits 1 after printing its report: the report is the
/// result, its problems are in it.
pub fn run_bots(
    program: &Path,
    args: &[String],
    timeout: Duration,
    cpus: Option<&[usize]>,
) -> Result<(BotsResult, Duration), RunError> {
    let finished = match run_to_end(program, args, timeout, cpus)? {
        Ended::Exited(finished) => finished,
        Ended::TimedOut(stderr) => {
            return Err(RunError::BotsTimeout {
                secs: timeout.as_secs(),
                stderr,
            })
        }
    };
    BotsResult::from_stdout(&finished.stdout)
        .map(|bots| (bots, finished.wall))
        .map_err(|error| RunError::BotsOutput {
            status: finished.status,
            reason: error.to_string(),
            stderr: finished.stderr,
        })
}

/// The binaries `compare` drives.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `iomodels`: `serve`, `bench`, `chat-server` and `chat-bots`.
    pub iomodels: PathBuf,
    /// `iomodels-peers`, if any peer is wanted.
    pub peers: Option<PathBuf>,
}

impl Binaries {
    /// Find them in `dir` (with the platform's `.exe` on Windows); the peers binary only
    /// when `need_peers`.
    pub fn locate(dir: &Path, need_peers: bool) -> Result<Self, crate::Error> {
        let find = |name: &'static str| {
            let path = dir.join(format!("{name}{EXE_SUFFIX}"));
            if path.is_file() {
                Ok(path)
            } else {
                Err(crate::Error::MissingBinary { name, path })
            }
        };
        Ok(Binaries {
            iomodels: find("iomodels")?,
            peers: need_peers.then(|| find("iomodels-peers")).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announced_address_is_read_from_a_complete_line() {
        let ours = "iomodels: epoll echo server on 127.0.0.1:40123 (1 workers)\n";
        assert_eq!(
            announced_addr(ours),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        let peer = "noise\niomodels-peers: monoio echo server on [::1]:7000 (2 workers)\n";
        assert_eq!(announced_addr(peer), Some("[::1]:7000".parse().unwrap()));
        let chat = "iomodels: chat server on 127.0.0.1:7001 (epoll model, logic mode, ...)\n";
        assert_eq!(
            announced_addr(chat),
            Some("127.0.0.1:7001".parse().unwrap())
        );
        let chat_peer = "iomodels-peers: tokio-chat chat server on 127.0.0.1:7002 (1 workers)\n";
        assert_eq!(
            announced_addr(chat_peer),
            Some("127.0.0.1:7002".parse().unwrap())
        );
        // A line still being written may hold half a port.
        assert_eq!(
            announced_addr("iomodels: epoll echo server on 127.0.0.1:40"),
            None
        );
        assert_eq!(announced_addr("iomodels: listening\n"), None);
    }

    #[test]
    fn one_line_drops_colour_codes_and_newlines() {
        let text = "\u{1b}[2m2026\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m refused:\n  cannot start\n";
        assert_eq!(one_line(text), "2026 WARN refused: cannot start");
    }

    // The parser's own cases (these lists among them) are iomodels-sys's `cpu_lists_parse`.
    #[test]
    fn a_bad_cpu_list_is_a_message_naming_it() {
        assert_eq!(parse_cpu_list("0,2-3,2").unwrap(), [0, 2, 3]);
        let message = parse_cpu_list("0,,9").unwrap_err();
        assert!(message.contains("\"0,,9\""), "{message}");
    }
}
