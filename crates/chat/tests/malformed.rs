//! Malformed input closes only the session that sent it, with a protocol-error reason, and
//! is judged on the header alone: the server never waits for a body it will reject.

mod common;

use common::both_modes;

use common::*;
use iomodels_chat::Mode;
use iomodels_engine::CloseReason;
use iomodels_proto::{Request, Response};

/// Two users chatting in room 0, to show that they are unaffected.
struct Bystanders {
    a: iomodels_chat::Connection,
    b: iomodels_chat::Connection,
}

impl Bystanders {
    fn new(server: &iomodels_chat::ChatServer) -> Bystanders {
        let mut a = user(server, "bystander-a");
        enter(&mut a, 0);
        let mut b = user(server, "bystander-b");
        enter(&mut b, 0);
        assert!(matches!(next(&mut a), Response::RoomNewUser(_)));
        Bystanders { a, b }
    }

    /// A chat still goes round.
    fn still_chat(&mut self, text: &str) {
        assert_eq!(say(&mut self.a, text), Response::RoomChat { result: 0 });
        assert_eq!(next(&mut self.a), chat_notify("bystander-a", text));
        assert_eq!(next(&mut self.b), chat_notify("bystander-a", text));
    }
}

/// Send `bytes` from a fresh session (logged in and in room 0 if `in_room`), check that it
/// alone is closed for a protocol error.
fn rejects(mode: Mode, bytes: &[u8], in_room: bool) {
    let server = small_server(mode);
    let mut bystanders = Bystanders::new(&server);
    let mut bad = connect(&server);
    if in_room {
        login(&mut bad, "bad", 0);
        enter(&mut bad, 0);
        assert!(matches!(next(&mut bystanders.a), Response::RoomNewUser(_)));
        assert!(matches!(next(&mut bystanders.b), Response::RoomNewUser(_)));
    }
    bad.send_raw(bytes).unwrap();
    // The server closes it (an abortive close: no response comes first).
    assert_eq!(
        bad.wait_closed(WAIT)
            .expect("the server closes the session"),
        0
    );
    if in_room {
        // Its departure is announced like any other.
        assert!(matches!(
            next(&mut bystanders.a),
            Response::RoomLeaveUser { .. }
        ));
        assert!(matches!(
            next(&mut bystanders.b),
            Response::RoomLeaveUser { .. }
        ));
    }
    bystanders.still_chat("still here");
    assert_eq!(server.handler().stats().protocol_errors, 1);
    let handle = server.handle();
    server.stop().unwrap();
    let stats = handle.stats();
    assert_eq!(stats.closed_for(CloseReason::ProtocolError), 1, "{stats:?}");
}

fn header(length: u16, id: u16) -> Vec<u8> {
    let mut h = length.to_le_bytes().to_vec();
    h.extend_from_slice(&id.to_le_bytes());
    h.push(0);
    h
}

both_modes!(
    length_under_the_header,
    length_over_the_maximum,
    unknown_id,
    wrong_body_size_for_the_id,
    server_only_ids,
    internal_system_ids,
    garbage,
    bad_packet_after_good_ones,
    header_is_judged_before_the_body_arrives,
    short_header_then_close,
);

fn length_under_the_header(mode: Mode) {
    for length in [0, 4] {
        rejects(mode, &header(length, 201), false);
    }
}

fn length_over_the_maximum(mode: Mode) {
    rejects(mode, &header(u16::MAX, 221), true);
    rejects(mode, &header(8 * 1024 + 1, 201), false);
}

fn unknown_id(mode: Mode) {
    rejects(mode, &header(5, 999), true);
    rejects(mode, &header(9, 0), false);
}

fn wrong_body_size_for_the_id(mode: Mode) {
    // A login one byte short, with its (short) body.
    let mut login = header(70, 201);
    login.resize(70, 0);
    rejects(mode, &login, false);
    // A leave with a body, an enter with 2 bytes of room number, a chat one byte long.
    let mut leave = header(6, 215);
    leave.push(0);
    rejects(mode, &leave, true);
    let mut enter = header(7, 206);
    enter.extend_from_slice(&[1, 0]);
    rejects(mode, &enter, false);
    rejects(mode, &header(263, 221), true);
}

fn server_only_ids(mode: Mode) {
    for id in [202u16, 207, 208, 209, 216, 217, 222, 223] {
        let bytes = Response::Login { result: 0 }.to_bytes();
        let mut packet = bytes.clone();
        packet[2..4].copy_from_slice(&id.to_le_bytes());
        rejects(mode, &packet, id % 2 == 0);
    }
}

fn internal_system_ids(mode: Mode) {
    // The tutorial let a client send SYS_USER_CONNECT / SYS_USER_DISCONNECT / SYS_END.
    for id in [11u16, 12, 30] {
        rejects(mode, &header(5, id), true);
    }
}

fn garbage(mode: Mode) {
    rejects(mode, b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n", false);
    rejects(mode, &[0xff; 64], true);
}

fn bad_packet_after_good_ones(mode: Mode) {
    // Good packets in front of the bad one, in the same write, are still handled.
    let server = small_server(mode);
    let mut watcher = user(&server, "watcher");
    enter(&mut watcher, 1);
    let mut c = connect(&server);
    let mut bytes = Vec::new();
    Request::Login {
        user_id: b"mixed".to_vec(),
        password: Vec::new(),
    }
    .encode(&mut bytes);
    Request::RoomEnter { room: 1 }.encode(&mut bytes);
    Request::RoomChat {
        message: b"before".to_vec(),
    }
    .encode(&mut bytes);
    bytes.extend_from_slice(&header(5, 999));
    Request::RoomChat {
        message: b"after".to_vec(),
    }
    .encode(&mut bytes);
    c.send_raw(&bytes).unwrap();
    let Response::RoomNewUser(mixed) = next(&mut watcher) else {
        panic!("expected 208")
    };
    assert_eq!(next(&mut watcher), chat_notify("mixed", "before"));
    assert_eq!(
        next(&mut watcher),
        Response::RoomLeaveUser {
            unique_id: mixed.unique_id
        }
    );
    assert_quiet(&mut watcher);
    c.wait_closed(WAIT).unwrap();
}

fn header_is_judged_before_the_body_arrives(mode: Mode) {
    // Only the 5 header bytes of a 4000-byte chat (a length its id cannot have) are sent,
    // and the socket stays open: the server must close it without waiting for the body.
    let server = small_server(mode);
    let mut c = connect(&server);
    c.send_raw(&header(4000, 221)).unwrap();
    c.wait_closed(WAIT).expect("closed on the header alone");
    // A valid header whose body is still coming is waited for, not rejected.
    let mut d = connect(&server);
    let login = Request::Login {
        user_id: b"patient".to_vec(),
        password: Vec::new(),
    }
    .to_bytes();
    d.send_raw(&login[..5]).unwrap();
    assert_quiet_raw(&server);
    d.send_raw(&login[5..]).unwrap();
    assert_eq!(next(&mut d), Response::Login { result: 0 });
    assert_eq!(server.handler().stats().protocol_errors, 1);
}

/// Another session gets a round trip through the server: the header sent before was seen.
fn assert_quiet_raw(server: &iomodels_chat::ChatServer) {
    let mut probe = connect(server);
    assert_quiet(&mut probe);
}

fn short_header_then_close(mode: Mode) {
    // Three bytes of a header and then FIN: the session ends, the partial packet is
    // dropped and counted, nobody else notices.
    let server = small_server(mode);
    let mut bystanders = Bystanders::new(&server);
    let mut c = connect(&server);
    c.send_raw(&[71, 0, 201]).unwrap();
    c.shutdown_write().unwrap();
    c.wait_closed(WAIT).unwrap();
    bystanders.still_chat("fine");
    let handle = server.handle();
    server.stop().unwrap();
    assert_eq!(handle.stats().closed_for(CloseReason::PeerClosed), 1);
}
