//! `iomodels chat-server` as players and abusers meet it: a real process, real signals,
//! a real descriptor limit. Linux only (the limit is set with the shell's `ulimit`, the
//! CPU read from `/proc`).
#![cfg(target_os = "linux")]

mod util;

use iomodels_chat::Connection;
use iomodels_proto::{Request, Response};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use util::{iomodels, spawn_with_banner, stop};

const WAIT: Duration = Duration::from_secs(10);

/// The models these tests run: epoll, and uring where the kernel has it.
fn models() -> Vec<&'static str> {
    let mut models = vec!["epoll"];
    match iomodels_engine::uring_probe() {
        Ok(()) => models.push("uring"),
        Err(why) => eprintln!("SKIPPED: uring: {why}"),
    }
    models
}

/// A child process killed if the test fails before it is stopped: a leftover server would
/// hold the test's output open and hang the run.
struct Reaper(Option<Child>);

impl Reaper {
    fn take(&mut self) -> Child {
        self.0.take().expect("taken once")
    }

    fn id(&self) -> u32 {
        self.0.as_ref().expect("not taken yet").id()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn chat_server(model: &str, extra: &[&str]) -> (Child, SocketAddr) {
    spawn_chat(
        iomodels()
            .args(["chat-server", "--model", model, "--addr", "127.0.0.1:0"])
            .args(extra),
    )
}

/// Spawn a chat server and read the address from its banner ("iomodels: chat server on
/// ADDR (...)"); the rest of its stderr is drained on a thread, so that its log never
/// fills the pipe and blocks it.
fn spawn_chat(command: &mut Command) -> (Child, SocketAddr) {
    let (mut child, banner) = spawn_with_banner(command);
    let addr = banner
        .split("chat server on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {banner:?}"));
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut BufReader::new(stderr), &mut std::io::sink()));
    (child, addr)
}

/// A user logged in as `name` and in `room`.
fn member(addr: SocketAddr, name: &str, room: i32) -> Connection {
    try_member(addr, name, room, WAIT).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// [`member`], or why not, each answer waited for at most `wait`.
fn try_member(
    addr: SocketAddr,
    name: &str,
    room: i32,
    wait: Duration,
) -> Result<Connection, String> {
    let mut c = Connection::connect(addr).map_err(|e| e.to_string())?;
    c.send(&Request::Login {
        user_id: name.into(),
        password: b"pw".to_vec(),
    })
    .map_err(|e| e.to_string())?;
    expect(&mut c, wait, |r| *r == Response::Login { result: 0 })?;
    c.send(&Request::RoomEnter { room })
        .map_err(|e| e.to_string())?;
    expect(&mut c, wait, |r| *r == Response::RoomEnter { result: 0 })?;
    expect(&mut c, wait, |r| matches!(r, Response::RoomUserList(_)))?;
    Ok(c)
}

/// The next packet on `c`, which must come within `wait` and be what `what` accepts.
fn expect(
    c: &mut Connection,
    wait: Duration,
    what: impl Fn(&Response) -> bool,
) -> Result<(), String> {
    match c.recv(wait) {
        Ok(r) if what(&r) => Ok(()),
        Ok(r) => Err(format!("unexpected {r:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// `c` says `text` and hears it back, within `limit`.
fn chat_round_trip(c: &mut Connection, text: &str, limit: Duration) {
    let start = Instant::now();
    c.send(&Request::RoomChat {
        message: text.into(),
    })
    .unwrap();
    loop {
        match c.recv(WAIT).unwrap() {
            Response::RoomChatNotify { message, .. } if message == text.as_bytes() => break,
            _ => {}
        }
    }
    let took = start.elapsed();
    assert!(took < limit, "a chat round trip took {took:?}");
}

/// The server's CPU time so far (user + system), from `/proc/PID/stat`.
fn cpu(pid: u32) -> Duration {
    iomodels_sys::process::usage(pid).unwrap().cpu()
}

/// SIGTERM while a swarm of 1,000 bots chats: the server flushes and exits 0 within its
/// shutdown deadline (5 s) and a little slack.
#[test]
fn sigterm_under_a_thousand_bots_exits_zero_in_time() {
    for model in models() {
        let (server, addr) = chat_server(model, &["--max-anonymous", "5000"]);
        let mut server = Reaper(Some(server));
        let mut bots = iomodels()
            .args(["chat-bots", "--addr", &addr.to_string()])
            .args([
                "--bots",
                "1000",
                "--rooms",
                "50",
                "--rate",
                "5",
                "--duration",
                "60",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = bots.stderr.take().unwrap();
        let _bots = Reaper(Some(bots));
        // The bots report progress on stderr; wait until they chat.
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "{model}: the bots never chatted");
            let line = lines.next().expect("the bots' progress").unwrap();
            if chats_in(&line) > 1000 {
                break;
            }
        }
        let start = Instant::now();
        let status = stop(server.take());
        let took = start.elapsed();
        assert!(status.success(), "{model}: exit status {status}");
        assert!(
            took < Duration::from_secs(8),
            "{model}: stopping took {took:?}"
        );
    }
}

/// The chats a bots progress line reports: "chat-bots ADDR: ..., N requests, M chats, ...".
fn chats_in(line: &str) -> u64 {
    line.split(", ")
        .find_map(|part| part.strip_suffix(" chats"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Connections that never log in take every descriptor the server has: its logged-in
/// users are still served, it does not spin while it cannot accept, and it takes new users
/// again once the connections close.
#[test]
fn running_out_of_descriptors_hurts_no_logged_in_user() {
    for model in models() {
        // 200 descriptors; no login deadline, so the exhaustion lasts.
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "ulimit -n 200 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_iomodels"),
            "chat-server",
            "--model",
            model,
            "--addr",
            "127.0.0.1:0",
            "--login-timeout",
            "0",
            "--max-anonymous",
            "100000",
        ]);
        let (server, addr) = spawn_chat(&mut command);
        let mut server = Reaper(Some(server));
        let mut members: Vec<_> = (0..10).map(|i| member(addr, &format!("m{i}"), 0)).collect();
        // Far more connections than it has descriptors.
        let flood: Vec<_> = (0..400)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let before = cpu(server.id());
        for (i, m) in members.iter_mut().enumerate() {
            chat_round_trip(m, &format!("still here {i}"), Duration::from_secs(1));
        }
        std::thread::sleep(Duration::from_secs(2));
        let spent = cpu(server.id()) - before;
        assert!(
            spent < Duration::from_millis(500),
            "{model}: the server used {spent:?} of CPU in 2 s while out of descriptors"
        );
        drop(flood);
        // Once the flood is gone, a new user gets in.
        let deadline = Instant::now() + WAIT;
        let mut newcomer = loop {
            match try_member(addr, "newcomer", 0, Duration::from_secs(1)) {
                Ok(c) => break c,
                Err(e) => assert!(Instant::now() < deadline, "{model}: no recovery: {e}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        chat_round_trip(&mut newcomer, "hello", Duration::from_secs(1));
        let status = stop(server.take());
        assert!(status.success(), "{model}: exit status {status}");
    }
}
