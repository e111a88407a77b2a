//! Talking to a chat server over a [`Connection`]: ask, expect, log in, enter, say. Nothing
//! here knows which server it talks to, so the peers' tests include this file too
//! (`#[path]`) and hold `tokio-chat` to the same answers.
#![allow(dead_code)]

use iomodels_chat::Connection;
use iomodels_proto::{Request, Response};
use std::time::Duration;

/// How long any one expected packet may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The next packet, which must come within [`WAIT`].
pub fn next(c: &mut Connection) -> Response {
    c.recv(WAIT).expect("a packet")
}

/// Send `request` and return the next packet.
pub fn ask(c: &mut Connection, request: Request) -> Response {
    c.send(&request).expect("sending");
    next(c)
}

/// Log in as `user`, expecting `result`.
pub fn login(c: &mut Connection, user: &str, result: u16) {
    let got = ask(
        c,
        Request::Login {
            user_id: user.into(),
            password: b"pw".to_vec(),
        },
    );
    assert_eq!(got, Response::Login { result }, "login as {user}");
}

/// Enter `room` successfully; return the user list.
pub fn enter(c: &mut Connection, room: i32) -> Vec<iomodels_proto::RoomUser> {
    assert_eq!(
        ask(c, Request::RoomEnter { room }),
        Response::RoomEnter { result: 0 }
    );
    match next(c) {
        Response::RoomUserList(users) => users,
        other => panic!("expected the user list, got {other:?}"),
    }
}

/// Say `message`; expect 222 with `result`.
pub fn say(c: &mut Connection, message: &str) -> Response {
    ask(
        c,
        Request::RoomChat {
            message: message.into(),
        },
    )
}

/// A chat notify from `user` saying `message`.
pub fn chat_notify(user: &str, message: &str) -> Response {
    Response::RoomChatNotify {
        user_id: user.into(),
        message: message.into(),
    }
}

/// Show that nothing is queued for `c` without waiting on a clock: ask `c` something
/// whose only effect is a response (a second, empty login: 35 once logged in, 34 before);
/// packets on one connection arrive in order, so that response must come next.
pub fn assert_quiet(c: &mut Connection) {
    match ask(
        c,
        Request::Login {
            user_id: Vec::new(),
            password: Vec::new(),
        },
    ) {
        Response::Login { result: 34 | 35 } => {}
        other => panic!("expected nothing before the probe's answer, got {other:?}"),
    }
}
