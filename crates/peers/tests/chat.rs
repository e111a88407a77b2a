//! `tokio-chat`, run as its own process, passes the chat checks `iomodels chat-server`
//! passes: the bot swarm's `room-chat` and `room-inout` with nothing lost, duplicated or
//! out of order (on a current_thread and a multi_thread runtime), and the protocol's
//! answers flow by flow, as `crates/chat/tests/protocol.rs` checks ours, spoken through the
//! same helpers (`crates/chat/tests/common/talk.rs`).

mod common;
#[path = "../../chat/tests/common/talk.rs"]
mod talk;

use common::{any_port, start, Running};
use iomodels_chat::{run_swarm, BotsReport, Connection, Scenario, SwarmConfig};
use iomodels_proto::{Request, Response};
use std::io::Write;
use std::process::Command;
use std::time::Duration;
use talk::*;

/// A peer with 4 rooms of 3 and up to 8 users, as the chat tests' `small_server`.
fn small_peer() -> Running {
    start(
        "tokio-chat",
        &["--rooms", "4", "--room-capacity", "3", "--max-users", "8"],
    )
}

fn connect(peer: &Running) -> Connection {
    Connection::connect(peer.addr).expect("connecting to tokio-chat")
}

/// A new connection logged in as `name`.
fn user(peer: &Running, name: &str) -> Connection {
    let mut c = connect(peer);
    login(&mut c, name, 0);
    c
}

/// `bots` bots in 10 rooms doing `scenario` for `secs` against a fresh peer run with
/// `workers`.
fn swarm(workers: &[&str], scenario: Scenario, bots: usize, secs: f64) -> BotsReport {
    let peer = start("tokio-chat", workers);
    let config = SwarmConfig {
        addr: peer.addr,
        bots,
        rooms: 10,
        scenario,
        rate: 10.0,
        duration: Duration::from_secs_f64(secs),
        ..SwarmConfig::default()
    };
    let report = run_swarm(&config).expect("running the swarm");
    println!("tokio-chat {workers:?} {scenario}:\n{report}");
    report
}

#[test]
fn room_chat_swarm_is_clean() {
    let report = swarm(&[], Scenario::RoomChat, 150, 3.0);
    assert!(report.is_clean(), "{:?}: {report:?}", report.problems());
    // Every bot chatted, and every chat, and every bot's final "fin", reached its 15 room
    // members.
    assert!(report.chats_sent >= 150 * 10, "{report:?}");
    assert_eq!(
        report.notifies_received,
        (report.chats_sent + 150) * 15,
        "{report:?}"
    );
}

#[test]
fn room_chat_swarm_is_clean_on_two_workers() {
    let report = swarm(&["--workers", "2"], Scenario::RoomChat, 150, 3.0);
    assert!(report.is_clean(), "{:?}: {report:?}", report.problems());
    assert!(report.chats_sent >= 150 * 10, "{report:?}");
}

#[test]
fn room_inout_swarm_is_clean() {
    let report = swarm(&[], Scenario::RoomInout, 150, 3.0);
    assert!(report.is_clean(), "{:?}: {report:?}", report.problems());
    assert!(report.membership_views >= 150, "{report:?}");
}

#[test]
fn room_inout_swarm_is_clean_on_two_workers() {
    let report = swarm(&["--workers", "2"], Scenario::RoomInout, 150, 3.0);
    assert!(report.is_clean(), "{:?}: {report:?}", report.problems());
    assert!(report.membership_views >= 150, "{report:?}");
}

#[test]
fn login_results() {
    let peer = small_peer();
    let mut a = connect(&peer);
    login(&mut a, "alice", 0);
    // 35: this session is logged in already.
    login(&mut a, "other", 35);
    // 31: the user id is in use by another session.
    let mut b = connect(&peer);
    login(&mut b, "alice", 31);
    // 34: empty, too long (33 bytes, no NUL), or not UTF-8.
    login(&mut b, "", 34);
    let mut raw = vec![71, 0, 201, 0, 0];
    raw.extend_from_slice(&[b'x'; 33]);
    raw.extend_from_slice(&[0; 33]);
    b.send_raw(&raw).unwrap();
    assert_eq!(next(&mut b), Response::Login { result: 34 });
    let bad_utf8 = Request::Login {
        user_id: vec![0xff, 0xfe],
        password: Vec::new(),
    };
    assert_eq!(ask(&mut b, bad_utf8), Response::Login { result: 34 });
    // A 32-byte id is fine; any password is.
    login(&mut b, &"y".repeat(32), 0);
}

#[test]
fn login_refuses_a_full_server() {
    let peer = small_peer(); // 8 users
    let mut users: Vec<_> = (0..8).map(|i| user(&peer, &format!("u{i}"))).collect();
    let mut ninth = connect(&peer);
    // 32: the server holds its maximum.
    login(&mut ninth, "u8", 32);
    let mut watcher = users.remove(0);
    enter(&mut watcher, 0);
    let mut leaver = users.remove(0);
    enter(&mut leaver, 0);
    assert!(matches!(next(&mut watcher), Response::RoomNewUser(_)));
    drop(leaver);
    // The 217 shows the disconnect was handled: the count went down.
    assert!(matches!(next(&mut watcher), Response::RoomLeaveUser { .. }));
    login(&mut ninth, "u8", 0);
}

#[test]
fn disconnect_frees_the_user_id() {
    let peer = small_peer();
    let mut watcher = user(&peer, "watcher");
    enter(&mut watcher, 2);
    let mut alice = user(&peer, "alice");
    enter(&mut alice, 2);
    let Response::RoomNewUser(joined) = next(&mut watcher) else {
        panic!("expected 208")
    };
    drop(alice);
    assert_eq!(
        next(&mut watcher),
        Response::RoomLeaveUser {
            unique_id: joined.unique_id
        }
    );
    let mut again = connect(&peer);
    login(&mut again, "alice", 0);
    // A new login gets a new unique id.
    assert_eq!(enter(&mut again, 2).len(), 1);
    let Response::RoomNewUser(rejoined) = next(&mut watcher) else {
        panic!("expected 208")
    };
    assert_ne!(rejoined.unique_id, joined.unique_id);
    assert_eq!(rejoined.user_id, b"alice");
}

#[test]
fn room_commands_before_login_are_refused() {
    let peer = small_peer();
    let mut c = connect(&peer);
    // 41: not logged in.
    assert_eq!(
        ask(&mut c, Request::RoomEnter { room: 0 }),
        Response::RoomEnter { result: 41 }
    );
    assert_eq!(
        ask(&mut c, Request::RoomLeave),
        Response::RoomLeave { result: 41 }
    );
    assert_eq!(say(&mut c, "hi"), Response::RoomChat { result: 41 });
    login(&mut c, "late", 0);
    assert_eq!(enter(&mut c, 0), vec![]);
}

#[test]
fn room_enter_results() {
    let peer = small_peer(); // rooms 0..4, capacity 3
    let mut a = user(&peer, "a");
    // 61: no such room.
    for room in [-1, 4, i32::MAX] {
        assert_eq!(
            ask(&mut a, Request::RoomEnter { room }),
            Response::RoomEnter { result: 61 },
            "room {room}"
        );
    }
    enter(&mut a, 3);
    // 55: a second enter, to the same room or another.
    for room in [3, 1] {
        assert_eq!(
            ask(&mut a, Request::RoomEnter { room }),
            Response::RoomEnter { result: 55 }
        );
    }
    let mut b = user(&peer, "b");
    enter(&mut b, 3);
    let mut c = user(&peer, "c");
    enter(&mut c, 3);
    // 54: the room holds its capacity.
    let mut d = user(&peer, "d");
    assert_eq!(
        ask(&mut d, Request::RoomEnter { room: 3 }),
        Response::RoomEnter { result: 54 }
    );
    // The refused user caused no notify.
    assert!(matches!(next(&mut a), Response::RoomNewUser(u) if u.user_id == b"b"));
    assert!(matches!(next(&mut a), Response::RoomNewUser(u) if u.user_id == b"c"));
    assert_quiet(&mut a);
}

#[test]
fn enter_sends_list_and_new_user_notify() {
    let peer = small_peer();
    let mut a = user(&peer, "alice");
    assert_eq!(enter(&mut a, 1), vec![]);
    let mut b = user(&peer, "bob");
    let list = enter(&mut b, 1);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].user_id, b"alice");
    let Response::RoomNewUser(bob) = next(&mut a) else {
        panic!("expected 208")
    };
    assert_eq!(bob.user_id, b"bob");
    assert_ne!(bob.unique_id, list[0].unique_id);
    // The 209 list: the others, oldest first, without the newcomer.
    let mut c = user(&peer, "carol");
    let names: Vec<_> = enter(&mut c, 1).into_iter().map(|u| u.user_id).collect();
    assert_eq!(names, [b"alice".to_vec(), b"bob".to_vec()]);
    assert!(matches!(next(&mut a), Response::RoomNewUser(u) if u.user_id == b"carol"));
    assert!(matches!(next(&mut b), Response::RoomNewUser(u) if u.user_id == b"carol"));
    // Nobody is told about themselves.
    assert_quiet(&mut c);
}

#[test]
fn leave_notifies_and_frees_the_seat() {
    let peer = small_peer(); // capacity 3
    let mut a = user(&peer, "a");
    enter(&mut a, 0);
    let mut b = user(&peer, "b");
    enter(&mut b, 0);
    let Response::RoomNewUser(joined) = next(&mut a) else {
        panic!("expected 208")
    };
    let b_id = joined.unique_id;
    let mut c = user(&peer, "c");
    enter(&mut c, 0);
    next(&mut a);
    next(&mut b);
    let mut d = user(&peer, "d");
    assert_eq!(
        ask(&mut d, Request::RoomEnter { room: 0 }),
        Response::RoomEnter { result: 54 }
    );
    for _ in 0..5 {
        // 216 to the leaver, 217 to the others.
        assert_eq!(
            ask(&mut b, Request::RoomLeave),
            Response::RoomLeave { result: 0 }
        );
        assert_eq!(next(&mut a), Response::RoomLeaveUser { unique_id: b_id });
        assert_eq!(next(&mut c), Response::RoomLeaveUser { unique_id: b_id });
        // 81: leaving twice.
        assert_eq!(
            ask(&mut b, Request::RoomLeave),
            Response::RoomLeave { result: 81 }
        );
        enter(&mut b, 0);
        next(&mut a);
        next(&mut c);
    }
    assert_eq!(
        ask(&mut c, Request::RoomLeave),
        Response::RoomLeave { result: 0 }
    );
    assert_eq!(enter(&mut d, 0).len(), 2);
}

#[test]
fn chat_results() {
    let peer = small_peer();
    let mut a = user(&peer, "a");
    // 81: not in a room.
    assert_eq!(say(&mut a, "hello?"), Response::RoomChat { result: 81 });
    enter(&mut a, 0);
    let mut b = user(&peer, "b");
    enter(&mut b, 0);
    next(&mut a);
    let mut outsider = user(&peer, "outsider");
    enter(&mut outsider, 1);
    // 222 to the sender, then 223 to every member, the sender included.
    assert_eq!(say(&mut a, "hello"), Response::RoomChat { result: 0 });
    assert_eq!(next(&mut a), chat_notify("a", "hello"));
    assert_eq!(next(&mut b), chat_notify("a", "hello"));
    // 82: a message filling all 257 bytes with no NUL.
    let mut raw = vec![6, 1, 221, 0, 0];
    raw.extend_from_slice(&[b'm'; 257]);
    a.send_raw(&raw).unwrap();
    assert_eq!(next(&mut a), Response::RoomChat { result: 82 });
    // 256 bytes is the longest message.
    let long = "z".repeat(256);
    assert_eq!(say(&mut a, &long), Response::RoomChat { result: 0 });
    assert_eq!(next(&mut a), chat_notify("a", &long));
    assert_eq!(next(&mut b), chat_notify("a", &long));
    assert_quiet(&mut a);
    assert_quiet(&mut b);
    assert_quiet(&mut outsider);
}

#[test]
fn chat_reaches_every_member_in_accepted_order() {
    let peer = small_peer();
    let mut a = user(&peer, "a");
    enter(&mut a, 1);
    let mut b = user(&peer, "b");
    enter(&mut b, 1);
    let mut c = user(&peer, "c");
    enter(&mut c, 1);
    next(&mut a);
    next(&mut a);
    next(&mut b);
    // a and b pipeline 100 chats each without waiting: every member must see the one order
    // the server took them in, each sender's in the order sent.
    const N: usize = 100;
    let burst = |who: &str| {
        let mut wire = Vec::new();
        for i in 0..N {
            Request::RoomChat {
                message: format!("{who}{i}").into_bytes(),
            }
            .encode(&mut wire);
        }
        wire
    };
    let (burst_a, burst_b) = (burst("a"), burst("b"));
    let (sa, sb) = (
        a.stream().try_clone().unwrap(),
        b.stream().try_clone().unwrap(),
    );
    let ta = std::thread::spawn(move || (&sa).write_all(&burst_a).unwrap());
    let tb = std::thread::spawn(move || (&sb).write_all(&burst_b).unwrap());
    ta.join().unwrap();
    tb.join().unwrap();
    let mut seen = Vec::new();
    for (name, conn) in [("a", &mut a), ("b", &mut b), ("c", &mut c)] {
        let mut order = Vec::new();
        let mut responses = 0;
        while order.len() < 2 * N {
            match next(conn) {
                Response::RoomChat { result: 0 } => responses += 1,
                Response::RoomChatNotify { user_id, message } => {
                    assert_eq!(message[0], user_id[0], "the notify names its sender");
                    // A sender's 222 comes before its own 223.
                    if user_id == name.as_bytes() {
                        let mine = order.iter().filter(|m: &&String| m.starts_with(name));
                        assert!(responses > mine.count(), "{name}: 223 before its 222");
                    }
                    order.push(String::from_utf8(message).unwrap());
                }
                other => panic!("{name}: unexpected {other:?}"),
            }
        }
        if name != "c" {
            assert_eq!(responses, N, "{name}: one 222 per chat");
        }
        for who in ["a", "b"] {
            let mine: Vec<_> = order.iter().filter(|m| m.starts_with(who)).collect();
            let sent: Vec<_> = (0..N).map(|i| format!("{who}{i}")).collect();
            assert!(
                mine.iter().zip(&sent).all(|(m, s)| *m == s) && mine.len() == N,
                "{name} saw {who}'s chats out of order"
            );
        }
        seen.push(order);
        assert_quiet(conn);
    }
    assert_eq!(seen[0], seen[1], "a and b saw different orders");
    assert_eq!(seen[0], seen[2], "a and c saw different orders");
}

#[test]
fn every_packet_of_one_read_is_handled() {
    let peer = small_peer();
    let mut c = connect(&peer);
    let mut burst = Vec::new();
    Request::Login {
        user_id: b"batch".to_vec(),
        password: Vec::new(),
    }
    .encode(&mut burst);
    Request::RoomEnter { room: 0 }.encode(&mut burst);
    for message in ["one", "two"] {
        Request::RoomChat {
            message: message.into(),
        }
        .encode(&mut burst);
    }
    Request::RoomLeave.encode(&mut burst);
    c.send_raw(&burst).unwrap();
    assert_eq!(next(&mut c), Response::Login { result: 0 });
    assert_eq!(next(&mut c), Response::RoomEnter { result: 0 });
    assert_eq!(next(&mut c), Response::RoomUserList(vec![]));
    assert_eq!(next(&mut c), Response::RoomChat { result: 0 });
    assert_eq!(next(&mut c), chat_notify("batch", "one"));
    assert_eq!(next(&mut c), Response::RoomChat { result: 0 });
    assert_eq!(next(&mut c), chat_notify("batch", "two"));
    assert_eq!(next(&mut c), Response::RoomLeave { result: 0 });
}

#[test]
fn packets_split_byte_by_byte_are_handled() {
    let peer = small_peer();
    let mut c = connect(&peer);
    let mut bytes = Vec::new();
    Request::Login {
        user_id: b"slow".to_vec(),
        password: Vec::new(),
    }
    .encode(&mut bytes);
    Request::RoomEnter { room: 1 }.encode(&mut bytes);
    for byte in &bytes {
        c.send_raw(std::slice::from_ref(byte)).unwrap();
    }
    assert_eq!(next(&mut c), Response::Login { result: 0 });
    assert_eq!(next(&mut c), Response::RoomEnter { result: 0 });
    assert_eq!(next(&mut c), Response::RoomUserList(vec![]));
}

#[test]
fn data_before_a_disconnect_is_handled_first() {
    let peer = small_peer();
    let mut watcher = user(&peer, "watcher");
    enter(&mut watcher, 0);
    let mut c = connect(&peer);
    let mut burst = Vec::new();
    Request::Login {
        user_id: b"leaver".to_vec(),
        password: Vec::new(),
    }
    .encode(&mut burst);
    Request::RoomEnter { room: 0 }.encode(&mut burst);
    for message in ["last words", "goodbye"] {
        Request::RoomChat {
            message: message.into(),
        }
        .encode(&mut burst);
    }
    c.send_raw(&burst).unwrap();
    c.shutdown_write().unwrap();
    drop(c);
    let Response::RoomNewUser(leaver) = next(&mut watcher) else {
        panic!("expected 208")
    };
    assert_eq!(next(&mut watcher), chat_notify("leaver", "last words"));
    assert_eq!(next(&mut watcher), chat_notify("leaver", "goodbye"));
    assert_eq!(
        next(&mut watcher),
        Response::RoomLeaveUser {
            unique_id: leaver.unique_id
        }
    );
    let mut again = connect(&peer);
    login(&mut again, "leaver", 0);
}

#[test]
fn a_packet_that_breaks_the_protocol_ends_the_connection() {
    let peer = small_peer();
    let mut watcher = user(&peer, "watcher");
    enter(&mut watcher, 0);
    let mut bad = user(&peer, "bad");
    enter(&mut bad, 0);
    let Response::RoomNewUser(joined) = next(&mut watcher) else {
        panic!("expected 208")
    };
    // A response id sent to the server: what was answered before still arrives, then FIN.
    bad.send_raw(&Response::Login { result: 0 }.to_bytes())
        .unwrap();
    bad.wait_closed(WAIT)
        .expect("the peer closes the connection");
    assert_eq!(
        next(&mut watcher),
        Response::RoomLeaveUser {
            unique_id: joined.unique_id
        }
    );
}

#[test]
fn chat_flags_out_of_range_are_bad_usage() {
    for args in [
        ["--server", "tokio-chat", "--room-capacity", "128"],
        ["--server", "tokio-chat", "--rooms", "0"],
        ["--server", "tokio-chat", "--max-users", "0"],
        ["--server", "tokio-chat", "--workers", "0"],
        ["--server", "tokio-current", "--rooms", "4"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_iomodels-peers"))
            .args(args)
            .args(["--addr", &any_port().to_string()])
            .output()
            .expect("run iomodels-peers");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    }
}
