//! Helpers shared by the chat tests: start a server on a model (skipping models the
//! kernel or the build cannot run), and talk to it.
#![allow(dead_code)]

pub mod redis;

use iomodels_chat::{
    engine_config, start, AcceptAll, ChatConfig, ChatServer, Connection, Mode, UserStore,
};
use iomodels_engine::{Config, Model};
use iomodels_proto::{Request, Response};
use std::sync::Arc;
use std::time::Duration;

/// How long any one expected packet may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Start a chat server on `model`, or `None` (with a message) if the model is unsupported.
pub fn server_with(
    model: Model,
    chat: ChatConfig,
    store: Arc<dyn UserStore>,
    tweak: impl FnOnce(&mut Config),
) -> Option<ChatServer> {
    let mut config = engine_config(model, "127.0.0.1:0".parse().unwrap());
    config.max_connections = 1000;
    tweak(&mut config);
    match start(config, chat, store) {
        Ok(server) => Some(server),
        Err(iomodels_chat::Error::Engine(iomodels_engine::Error::Unsupported { model, what })) => {
            println!("skipping the {model} model: {what}");
            None
        }
        Err(e) => panic!("starting the chat server on {model}: {e}"),
    }
}

/// A server with 4 rooms of 3, up to 8 users, in `mode`, on epoll.
pub fn small_server(mode: Mode) -> ChatServer {
    small_server_with(mode, |_| {})
}

/// [`small_server`] with its chat settings changed by `tweak`.
pub fn small_server_with(mode: Mode, tweak: impl FnOnce(&mut ChatConfig)) -> ChatServer {
    let mut chat = ChatConfig {
        rooms: 4,
        room_capacity: 3,
        max_users: 8,
        mode,
        ..ChatConfig::default()
    };
    tweak(&mut chat);
    server_with(Model::SCALABLE[0], chat, Arc::new(AcceptAll), |_| {})
        .expect("the first scalable model (epoll, iocp) runs everywhere")
}

/// Connect to `server`.
pub fn connect(server: &ChatServer) -> Connection {
    Connection::connect(server.local_addr()).expect("connecting")
}

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

/// A new connection logged in as `user`.
pub fn user(server: &ChatServer, user: &str) -> Connection {
    let mut c = connect(server);
    login(&mut c, user, 0);
    c
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

/// One test per model for each named function `fn(Model)`: `every_model!(a, b)` makes
/// `a::epoll`, `a::uring`, ... (every model the engine has).
#[allow(unused_macros)] // not every test file uses it
macro_rules! every_model {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                use iomodels_engine::Model;
                #[test] fn blocking() { super::$test(Model::Blocking) }
                #[test] fn polling() { super::$test(Model::Polling) }
                #[test] fn select() { super::$test(Model::Select) }
                #[cfg(target_os = "linux")] #[test] fn poll() { super::$test(Model::Poll) }
                #[cfg(target_os = "linux")] #[test] fn signal() { super::$test(Model::Signal) }
                #[cfg(target_os = "linux")] #[test] fn epoll() { super::$test(Model::Epoll) }
                #[cfg(target_os = "linux")] #[test] fn uring() { super::$test(Model::Uring) }
                #[cfg(windows)] #[test] fn wsapoll() { super::$test(Model::WsaPoll) }
                #[cfg(windows)] #[test] fn asyncselect() { super::$test(Model::AsyncSelect) }
                #[cfg(windows)] #[test] fn eventselect() { super::$test(Model::EventSelect) }
                #[cfg(windows)] #[test] fn overlapped_event() { super::$test(Model::OverlappedEvent) }
                #[cfg(windows)] #[test] fn overlapped_routine() { super::$test(Model::OverlappedRoutine) }
                #[cfg(windows)] #[test] fn iocp() { super::$test(Model::Iocp) }
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use every_model;

/// One test per mode for each named function `fn(Mode)`: `logic_thread::name` and
/// `io_thread::name`.
#[allow(unused_macros)] // not every test file uses it
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod logic_thread {
            $( #[test] fn $name() { super::$name(iomodels_chat::Mode::Logic) } )*
        }
        mod io_thread {
            $( #[test] fn $name() { super::$name(iomodels_chat::Mode::Io) } )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_modes;
