//! `iomodels chat-server --redis` as processes (issue 11): an unreachable Redis at start,
//! and an instance killed with SIGKILL, its users freed by the others' janitor in time.
//! Linux only: the tests run Debian's `redis-server` and send SIGKILL.
#![cfg(target_os = "linux")]

mod util;

#[path = "../../chat/tests/common/redis.rs"]
mod redis_server;

use iomodels_chat::Connection;
use iomodels_proto::{Request, Response};
use redis_server::Redis;
use std::io::BufReader;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use util::{iomodels, spawn_with_banner, stop};

const WAIT: Duration = Duration::from_secs(10);

/// A child process killed if the test fails before it is stopped.
struct Reaper(Option<Child>);

impl Reaper {
    fn take(&mut self) -> Child {
        self.0.take().expect("taken once")
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

/// `chat-server --redis URL --instance NAME` with `extra` flags; its address from the
/// banner (the rest of its stderr drained on a thread).
fn instance(redis: &Redis, name: &str, extra: &[&str]) -> (Reaper, SocketAddr) {
    let url = redis.url();
    let (mut child, banner) = spawn_with_banner(
        iomodels()
            .args(["chat-server", "--addr", "127.0.0.1:0", "--redis", &url])
            .args(["--instance", name])
            .args(extra),
    );
    assert!(
        banner.contains(&format!("instance {name} of the cluster at {url}")),
        "{banner:?}"
    );
    let addr = banner
        .split("chat server on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {banner:?}"));
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut BufReader::new(stderr), &mut std::io::sink()));
    (Reaper(Some(child)), addr)
}

/// A login as `user` with `password` on `addr`: its connection and result.
fn login(addr: SocketAddr, user: &str, password: &str) -> (Connection, u16) {
    let mut c = Connection::connect(addr).expect("connecting");
    c.send(&Request::Login {
        user_id: user.into(),
        password: password.into(),
    })
    .expect("sending");
    match c.recv(WAIT).expect("an answer") {
        Response::Login { result } => (c, result),
        other => panic!("expected a login answer, got {other:?}"),
    }
}

/// Enter `room` on `c`: the 209 list.
fn enter(c: &mut Connection, room: i32) -> Vec<iomodels_proto::RoomUser> {
    c.send(&Request::RoomEnter { room }).expect("sending");
    assert_eq!(c.recv(WAIT).unwrap(), Response::RoomEnter { result: 0 });
    match c.recv(WAIT).unwrap() {
        Response::RoomUserList(users) => users,
        other => panic!("expected the user list, got {other:?}"),
    }
}

#[test]
fn chat_server_without_its_redis_says_so_and_exits_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = Instant::now();
    let out = iomodels()
        .args(["chat-server", "--addr", "127.0.0.1:0", "--redis", &url])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert!(
        lines[0].starts_with(&format!("iomodels: cannot reach Redis at {url}: ")),
        "{stderr:?}"
    );
    assert!(out.stdout.is_empty());
    assert!(
        started.elapsed() < WAIT,
        "it gave up in {:?}",
        started.elapsed()
    );
}

#[test]
fn an_instance_killed_with_sigkill_has_its_users_and_members_freed_in_time() {
    let Some(redis) =
        Redis::start("an_instance_killed_with_sigkill_has_its_users_and_members_freed_in_time")
    else {
        return;
    };
    // TTL 1.5 s: the bound is 2 s.
    let ttl = ["--instance-ttl", "1.5"];
    let bound = Duration::from_millis(2000);
    let (mut a, a_addr) = instance(&redis, "a", &ttl);
    let (mut b, b_addr) = instance(&redis, "b", &ttl);
    let (mut alice, result) = login(a_addr, "alice", "pw");
    assert_eq!(result, 0);
    assert_eq!(
        login(b_addr, "alice", "pw").1,
        31,
        "alice is logged in on a"
    );
    // Both in room 0, on different instances.
    let (mut bob, result) = login(b_addr, "bob", "pw");
    assert_eq!(result, 0);
    enter(&mut alice, 0);
    let list = enter(&mut bob, 0);
    assert_eq!(list.len(), 1);
    let alice_id = list[0].unique_id;
    let mut killed = a.take();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let died = Instant::now();
    // Bob hears that she left, within the bound.
    match bob.recv(WAIT) {
        Ok(Response::RoomLeaveUser { unique_id }) => assert_eq!(unique_id, alice_id),
        other => panic!("expected alice's 217, got {other:?}"),
    }
    let heard = died.elapsed();
    println!("bob heard alice leave {heard:?} after the kill (bound {bound:?})");
    assert!(heard <= bound + Duration::from_millis(500), "{heard:?}");
    // b's janitor frees her within the bound (plus the test's own polling).
    let took = loop {
        let (_c, result) = login(b_addr, "alice", "pw");
        match result {
            0 => break died.elapsed(),
            31 if died.elapsed() < WAIT => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("login as alice on b after {:?}: {other}", died.elapsed()),
        }
    };
    println!("alice freed {took:?} after the kill (bound {bound:?})");
    assert!(
        took <= bound + Duration::from_millis(500),
        "alice freed {took:?} after the kill; bound {bound:?}"
    );
    assert!(stop(b.take()).success());
}

#[test]
fn chat_users_add_redis_then_users_redis() {
    let Some(redis) = Redis::start("chat_users_add_redis_then_users_redis") else {
        return;
    };
    let url = redis.url();
    let add = |password: &str| {
        let mut child = iomodels()
            .args([
                "chat-users",
                "add",
                "alice",
                "--redis",
                &url,
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(add("first"), format!("iomodels: added alice to {url}\n"));
    assert_eq!(
        add("secret"),
        format!("iomodels: replaced the password of alice in {url}\n")
    );
    let (mut a, addr) = instance(&redis, "a", &["--users", "redis"]);
    assert_eq!(login(addr, "alice", "first").1, 33);
    assert_eq!(login(addr, "bob", "secret").1, 33);
    assert_eq!(login(addr, "alice", "secret").1, 0);
    assert!(stop(a.take()).success());
    // Without --redis, `--users redis` has nowhere to look.
    let out = iomodels()
        .args(["chat-server", "--addr", "127.0.0.1:0", "--users", "redis"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "iomodels: --users redis needs --redis URL\n"
    );
}
