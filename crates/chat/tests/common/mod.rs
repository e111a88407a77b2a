//! Helpers shared by the chat tests: start a server on a model (skipping models the
//! kernel or the build cannot run), and talk to it.
#![allow(dead_code)]

pub mod redis;
mod talk;

pub use talk::*;

use iomodels_chat::{
    engine_config, start, AcceptAll, ChatConfig, ChatServer, Connection, Mode, UserStore,
};
use iomodels_engine::{Config, Model};
use std::sync::Arc;

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

/// A new connection logged in as `user`.
pub fn user(server: &ChatServer, user: &str) -> Connection {
    let mut c = connect(server);
    login(&mut c, user, 0);
    c
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
