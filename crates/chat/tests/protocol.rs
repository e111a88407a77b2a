//! Protocol conformance over real loopback sockets: every flow, every result code, and the
//! tutorial's mistakes as regression tests. Each test runs in both logic modes.

mod common;

use common::both_modes;

use common::*;
use iomodels_chat::{ChatConfig, Mode, PasswordFile, RateLimit};
use iomodels_engine::Model;
use iomodels_proto::{Request, Response};
use std::io::Write;
use std::sync::Arc;

both_modes!(
    login_results,
    login_refuses_a_full_server,
    login_checks_the_user_store,
    disconnect_frees_the_user_id,
    room_commands_before_login_are_refused,
    room_enter_results,
    enter_sends_list_and_new_user_notify,
    leave_notifies_and_frees_the_seat,
    chat_results,
    chat_reaches_every_member_in_accepted_order,
    every_packet_of_one_read_is_handled,
    packets_split_byte_by_byte_are_handled,
    data_before_a_disconnect_is_handled_first,
);

fn login_results(mode: Mode) {
    let server = small_server(mode);
    let mut a = connect(&server);
    login(&mut a, "alice", 0);
    // 35: this session is logged in already.
    login(&mut a, "other", 35);
    // 31: the user id is in use by another session.
    let mut b = connect(&server);
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
    // A 32-byte id is fine.
    login(&mut b, &"y".repeat(32), 0);
    assert_eq!(server.handler().stats().logins, 2);
}

fn login_refuses_a_full_server(mode: Mode) {
    let server = small_server(mode); // 8 users
    let mut users: Vec<_> = (0..8).map(|i| user(&server, &format!("u{i}"))).collect();
    let mut ninth = connect(&server);
    login(&mut ninth, "u8", 32);
    // Leaving makes room: the count goes down on disconnect.
    let mut watcher = users.remove(0);
    enter(&mut watcher, 0);
    let mut leaver = users.remove(0);
    enter(&mut leaver, 0);
    assert!(matches!(next(&mut watcher), Response::RoomNewUser(_)));
    drop(leaver);
    assert!(matches!(next(&mut watcher), Response::RoomLeaveUser { .. }));
    login(&mut ninth, "u8", 0);
}

fn login_checks_the_user_store(mode: Mode) {
    let chat = ChatConfig {
        mode,
        ..ChatConfig::default()
    };
    let store = Arc::new(PasswordFile::from_pairs([("alice", "secret")]));
    let server = server_with(Model::SCALABLE[0], chat, store, |_| {}).unwrap();
    let mut c = connect(&server);
    let attempt = |password: &str| Request::Login {
        user_id: b"alice".to_vec(),
        password: password.into(),
    };
    assert_eq!(
        ask(&mut c, attempt("wrong")),
        Response::Login { result: 33 }
    );
    let stranger = Request::Login {
        user_id: b"bob".to_vec(),
        password: b"secret".to_vec(),
    };
    assert_eq!(ask(&mut c, stranger), Response::Login { result: 33 });
    assert_eq!(
        ask(&mut c, attempt("secret")),
        Response::Login { result: 0 }
    );
}

fn disconnect_frees_the_user_id(mode: Mode) {
    let server = small_server(mode);
    let mut watcher = user(&server, "watcher");
    enter(&mut watcher, 2);
    let mut alice = user(&server, "alice");
    enter(&mut alice, 2);
    let Response::RoomNewUser(joined) = next(&mut watcher) else {
        panic!()
    };
    drop(alice);
    // The 217 shows the server has handled the disconnect.
    assert_eq!(
        next(&mut watcher),
        Response::RoomLeaveUser {
            unique_id: joined.unique_id
        }
    );
    let mut again = connect(&server);
    login(&mut again, "alice", 0);
    // A new login gets a new unique id.
    let users = enter(&mut again, 2);
    assert_eq!(users.len(), 1);
    let Response::RoomNewUser(rejoined) = next(&mut watcher) else {
        panic!()
    };
    assert_ne!(rejoined.unique_id, joined.unique_id);
    assert_eq!(rejoined.user_id, b"alice");
}

fn room_commands_before_login_are_refused(mode: Mode) {
    let server = small_server(mode);
    let mut c = connect(&server);
    assert_eq!(
        ask(&mut c, Request::RoomEnter { room: 0 }),
        Response::RoomEnter { result: 41 }
    );
    assert_eq!(
        ask(&mut c, Request::RoomLeave),
        Response::RoomLeave { result: 41 }
    );
    assert_eq!(say(&mut c, "hi"), Response::RoomChat { result: 41 });
    // Nothing was entered: a logged-in user sees an empty room.
    login(&mut c, "late", 0);
    assert_eq!(enter(&mut c, 0), vec![]);
}

fn room_enter_results(mode: Mode) {
    let server = small_server(mode); // rooms 0..4, capacity 3
    let mut a = user(&server, "a");
    assert_eq!(
        ask(&mut a, Request::RoomEnter { room: -1 }),
        Response::RoomEnter { result: 61 }
    );
    assert_eq!(
        ask(&mut a, Request::RoomEnter { room: 4 }),
        Response::RoomEnter { result: 61 }
    );
    assert_eq!(
        ask(&mut a, Request::RoomEnter { room: i32::MAX }),
        Response::RoomEnter { result: 61 }
    );
    enter(&mut a, 3);
    // 55: a second enter while in a room, to the same room or another.
    assert_eq!(
        ask(&mut a, Request::RoomEnter { room: 3 }),
        Response::RoomEnter { result: 55 }
    );
    assert_eq!(
        ask(&mut a, Request::RoomEnter { room: 1 }),
        Response::RoomEnter { result: 55 }
    );
    let mut b = user(&server, "b");
    enter(&mut b, 3);
    let mut c = user(&server, "c");
    enter(&mut c, 3);
    // 54: the room holds its capacity.
    let mut d = user(&server, "d");
    assert_eq!(
        ask(&mut d, Request::RoomEnter { room: 3 }),
        Response::RoomEnter { result: 54 }
    );
    // The refused users caused no notify.
    assert!(matches!(next(&mut a), Response::RoomNewUser(u) if u.user_id == b"b"));
    assert!(matches!(next(&mut a), Response::RoomNewUser(u) if u.user_id == b"c"));
    assert_quiet(&mut a);
}

fn enter_sends_list_and_new_user_notify(mode: Mode) {
    let server = small_server(mode);
    let mut a = user(&server, "alice");
    assert_eq!(enter(&mut a, 1), vec![]);
    let mut b = user(&server, "bob");
    let list = enter(&mut b, 1);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].user_id, b"alice");
    let Response::RoomNewUser(bob) = next(&mut a) else {
        panic!("expected 208")
    };
    assert_eq!(bob.user_id, b"bob");
    assert_ne!(bob.unique_id, list[0].unique_id);
    let mut c = user(&server, "carol");
    let list = enter(&mut c, 1);
    let names: Vec<_> = list.iter().map(|u| u.user_id.clone()).collect();
    assert_eq!(names, [b"alice".to_vec(), b"bob".to_vec()]);
    assert!(matches!(next(&mut a), Response::RoomNewUser(u) if u.user_id == b"carol"));
    assert!(matches!(next(&mut b), Response::RoomNewUser(u) if u.user_id == b"carol"));
    // Nobody is told about themselves, nobody in other rooms is told anything.
    assert_quiet(&mut c);
}

fn leave_notifies_and_frees_the_seat(mode: Mode) {
    let server = small_server(mode); // capacity 3
    let mut a = user(&server, "a");
    enter(&mut a, 0);
    let mut b = user(&server, "b");
    let list = enter(&mut b, 0);
    let b_id = match next(&mut a) {
        Response::RoomNewUser(u) => u.unique_id,
        other => panic!("{other:?}"),
    };
    assert_ne!(list[0].unique_id, b_id);
    let mut c = user(&server, "c");
    enter(&mut c, 0);
    next(&mut a);
    next(&mut b);
    // The tutorial forgot to decrement the room's count: leave and re-enter, many times.
    let mut d = user(&server, "d");
    assert_eq!(
        ask(&mut d, Request::RoomEnter { room: 0 }),
        Response::RoomEnter { result: 54 }
    );
    for _ in 0..5 {
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
    let list = enter(&mut d, 0);
    assert_eq!(list.len(), 2);
}

fn chat_results(mode: Mode) {
    let server = small_server(mode);
    let mut a = user(&server, "a");
    // 81: not in a room.
    assert_eq!(say(&mut a, "hello?"), Response::RoomChat { result: 81 });
    enter(&mut a, 0);
    assert_eq!(say(&mut a, "hello"), Response::RoomChat { result: 0 });
    assert_eq!(next(&mut a), chat_notify("a", "hello"));
    // 82: a message filling all 257 bytes with no NUL.
    let mut raw = vec![6, 1, 221, 0, 0];
    raw.extend_from_slice(&[b'm'; 257]);
    a.send_raw(&raw).unwrap();
    assert_eq!(next(&mut a), Response::RoomChat { result: 82 });
    // 256 bytes is the longest message.
    let long = "z".repeat(256);
    assert_eq!(say(&mut a, &long), Response::RoomChat { result: 0 });
    assert_eq!(next(&mut a), chat_notify("a", &long));
    assert_quiet(&mut a);
    assert_eq!(server.handler().stats().chats, 2);
}

fn chat_reaches_every_member_in_accepted_order(mode: Mode) {
    // Bursts of 100 pipelined chats: past the default rate limit, which is not the point.
    let server = small_server_with(mode, |chat| chat.chat_limit = RateLimit::OFF);
    let mut a = user(&server, "a");
    enter(&mut a, 1);
    let mut b = user(&server, "b");
    enter(&mut b, 1);
    let mut c = user(&server, "c");
    enter(&mut c, 1);
    let mut outsider = user(&server, "outsider");
    enter(&mut outsider, 2);
    next(&mut a);
    next(&mut a);
    next(&mut b);
    // a and b pipeline 100 chats each without waiting: the server interleaves them in some
    // order, and every member must see that same order.
    const N: usize = 100;
    let mut burst_a = Vec::new();
    let mut burst_b = Vec::new();
    for i in 0..N {
        Request::RoomChat {
            message: format!("a{i}").into_bytes(),
        }
        .encode(&mut burst_a);
        Request::RoomChat {
            message: format!("b{i}").into_bytes(),
        }
        .encode(&mut burst_b);
    }
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
                    order.push(String::from_utf8(message).unwrap());
                }
                other => panic!("{name}: unexpected {other:?}"),
            }
        }
        // The sender's own 222s: one per chat, each before its 223.
        if name != "c" {
            while responses < N {
                assert_eq!(next(conn), Response::RoomChat { result: 0 });
                responses += 1;
            }
        }
        // Each sender's chats in the order sent.
        for who in ["a", "b"] {
            let mine: Vec<_> = order
                .iter()
                .filter(|m| m.starts_with(who))
                .cloned()
                .collect();
            let sent: Vec<_> = (0..N).map(|i| format!("{who}{i}")).collect();
            assert_eq!(mine, sent, "{name} saw {who}'s chats out of order");
        }
        seen.push(order);
        assert_quiet(conn);
    }
    assert_eq!(seen[0], seen[1], "a and b saw different orders");
    assert_eq!(seen[0], seen[2], "a and c saw different orders");
    assert_quiet(&mut outsider);
}

fn every_packet_of_one_read_is_handled(mode: Mode) {
    let server = small_server(mode);
    let mut c = connect(&server);
    let mut burst = Vec::new();
    Request::Login {
        user_id: b"batch".to_vec(),
        password: Vec::new(),
    }
    .encode(&mut burst);
    Request::RoomEnter { room: 0 }.encode(&mut burst);
    Request::RoomChat {
        message: b"one".to_vec(),
    }
    .encode(&mut burst);
    Request::RoomChat {
        message: b"two".to_vec(),
    }
    .encode(&mut burst);
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

fn packets_split_byte_by_byte_are_handled(mode: Mode) {
    let server = small_server(mode);
    let mut c = connect(&server);
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

fn data_before_a_disconnect_is_handled_first(mode: Mode) {
    let server = small_server(mode);
    let mut watcher = user(&server, "watcher");
    enter(&mut watcher, 0);
    // Log in, enter, chat twice and close, all in one write followed by FIN.
    let mut c = connect(&server);
    let mut burst = Vec::new();
    Request::Login {
        user_id: b"leaver".to_vec(),
        password: Vec::new(),
    }
    .encode(&mut burst);
    Request::RoomEnter { room: 0 }.encode(&mut burst);
    Request::RoomChat {
        message: b"last words".to_vec(),
    }
    .encode(&mut burst);
    Request::RoomChat {
        message: b"goodbye".to_vec(),
    }
    .encode(&mut burst);
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
    // And the user id is free again.
    let mut again = connect(&server);
    login(&mut again, "leaver", 0);
}
