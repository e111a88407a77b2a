//! Graceful shutdown answers every request the server read before it: a client pipelines
//! chats, the server reads them all, then stops; every chat must be answered (222, and the
//! sender's own 223) before the connection ends, and the final counters must say so. On
//! every model, in both modes.

mod common;

use common::*;
use iomodels_chat::{AcceptAll, ChatConfig, Mode, RateLimit};
use iomodels_engine::Model;
use iomodels_proto::{Request, Response};
use std::sync::Arc;
use std::time::Instant;

/// Chats pipelined in one write. Fewer under Wine, where every send of the broadcast is a
/// round trip to the wineserver (the blocking model's 31 writer threads took 10 s for
/// 800 chats on a loaded machine).
const CHATS: usize = if cfg!(windows) { 500 } else { 3000 };

/// Members of the room besides the talker: each chat is broadcast to all of them, so the
/// game logic has more to do per chat than the decoder, and is behind when the stop comes.
const LISTENERS: usize = 30;

/// Read `c` until the server closes it; return the chat notifies, which must be
/// `talker`'s chats 0, 1, 2, ... in order.
fn read_until_closed(c: &mut iomodels_chat::Connection, who: &str) -> usize {
    let mut notifies = 0usize;
    loop {
        match c.poll(Some(WAIT)) {
            Ok(Some(notify @ Response::RoomChatNotify { .. })) => {
                assert_eq!(
                    notify,
                    chat_notify("talker", &format!("chat {notifies}")),
                    "{who}"
                );
                notifies += 1;
            }
            // The talker's 208 from the joining phase; 217s of members closed before this
            // one by the shutdown.
            Ok(Some(Response::RoomNewUser(_) | Response::RoomLeaveUser { .. })) => {}
            Ok(Some(other)) => panic!("{who}: unexpected {other:?}"),
            Ok(None) => panic!("{who}: the connection did not end within {WAIT:?}"),
            Err(iomodels_chat::ClientError::Closed) => return notifies,
            Err(e) => panic!("{who}: {e}"),
        }
    }
}

fn every_request_read_before_shutdown_is_answered(model: Model, mode: Mode) {
    let chat = ChatConfig {
        rooms: 1,
        room_capacity: LISTENERS + 1,
        max_users: LISTENERS + 1,
        mode,
        // 3,000 chats in one write: far past the rate limit, which is not the point. The
        // bound on pending requests stays: at the stop, up to that many are still queued.
        chat_limit: RateLimit::OFF,
        ..ChatConfig::default()
    };
    let Some(server) = server_with(model, chat, Arc::new(AcceptAll), |config| {
        // The talker reads nothing until the shutdown: its answers (3,000 x 302 bytes)
        // wait in its send queue, which must neither overflow nor pause reading.
        config.send_queue_limit = 64 * 1024 * 1024;
        config.input_limit = 4 * 1024 * 1024;
    }) else {
        return;
    };
    let listeners: Vec<_> = (0..LISTENERS)
        .map(|i| {
            let mut c = user(&server, &format!("listener{i}"));
            enter(&mut c, 0);
            c
        })
        .collect();
    let mut c = user(&server, "talker");
    assert_eq!(enter(&mut c, 0).len(), LISTENERS);
    let listeners: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || read_until_closed(&mut c, &format!("listener{i}")))
        })
        .collect();
    let before = 2 * (LISTENERS as u64 + 1);
    // In logic mode a request may be answered a moment before its I/O thread counts it.
    let deadline = Instant::now() + WAIT;
    while server.chat_stats().requests < before {
        assert!(Instant::now() < deadline, "logins and enters uncounted");
        std::thread::yield_now();
    }
    assert_eq!(server.chat_stats().requests, before, "logins and enters");
    let mut wire = Vec::new();
    for i in 0..CHATS {
        Request::RoomChat {
            message: format!("chat {i}").into_bytes(),
        }
        .encode(&mut wire);
    }
    c.send_raw(&wire).expect("pipelining the chats");
    // Until the server has decoded (and, in logic mode, queued) every chat: a condition,
    // polled, with a bound.
    let deadline = Instant::now() + WAIT;
    while server.chat_stats().requests < before + CHATS as u64 {
        assert!(
            Instant::now() < deadline,
            "{model} {mode:?}: the server read only {:?}",
            server.chat_stats()
        );
        std::thread::yield_now();
    }
    let handled_at_stop = server.chat_stats().chats;
    server.shutdown();
    let (mut answers, mut notifies) = (0usize, 0usize);
    loop {
        match c.poll(Some(WAIT)) {
            Ok(Some(Response::RoomChat { result: 0 })) => answers += 1,
            Ok(Some(notify @ Response::RoomChatNotify { .. })) => {
                assert_eq!(notify, chat_notify("talker", &format!("chat {notifies}")));
                notifies += 1;
                assert!(notifies <= answers, "each 222 comes before its 223");
            }
            // Listeners closed before the talker by the shutdown.
            Ok(Some(Response::RoomLeaveUser { .. })) => {}
            Ok(Some(other)) => panic!("{model} {mode:?}: unexpected {other:?}"),
            Ok(None) => panic!("{model} {mode:?}: the connection did not end within {WAIT:?}"),
            Err(iomodels_chat::ClientError::Closed) => break,
            Err(e) => panic!("{model} {mode:?}: {e}"),
        }
    }
    let heard: Vec<usize> = listeners
        .into_iter()
        .map(|l| l.join().expect("a listener"))
        .collect();
    let stopped = server.join().expect("stopping the server");
    println!(
        "{model} {mode:?}: {handled_at_stop} chats handled when the stop began; the talker \
         got {answers} answers and {notifies} notifies, the listeners {heard:?}; {:?}",
        stopped.chat
    );
    assert_eq!(
        (answers, notifies),
        (CHATS, CHATS),
        "{model} {mode:?}: answers and notifies received before the connection ended \
         ({handled_at_stop} chats handled when the stop began)"
    );
    assert_eq!(
        heard, [CHATS; LISTENERS],
        "{model} {mode:?}: notifies per listener"
    );
    assert_eq!(stopped.chat.chats, CHATS as u64, "{:?}", stopped.chat);
    assert_eq!(
        stopped.chat.requests,
        before + CHATS as u64,
        "{:?}",
        stopped.chat
    );
    assert_eq!(stopped.chat.dropped, 0, "{:?}", stopped.chat);
}

macro_rules! every_model_both_modes {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                macro_rules! models {
                    ($mode:ident, $mode_value:expr) => {
                        mod $mode {
                            use iomodels_engine::Model;
                            fn run(model: Model) { super::super::$test(model, $mode_value) }
                            #[test] fn blocking() { run(Model::Blocking) }
                            #[test] fn polling() { run(Model::Polling) }
                            #[test] fn select() { run(Model::Select) }
                            #[cfg(target_os = "linux")] #[test] fn poll() { run(Model::Poll) }
                            #[cfg(target_os = "linux")] #[test] fn signal() { run(Model::Signal) }
                            #[cfg(target_os = "linux")] #[test] fn epoll() { run(Model::Epoll) }
                            #[cfg(target_os = "linux")] #[test] fn uring() { run(Model::Uring) }
                            #[cfg(windows)] #[test] fn wsapoll() { run(Model::WsaPoll) }
                            #[cfg(windows)] #[test] fn asyncselect() { run(Model::AsyncSelect) }
                            #[cfg(windows)] #[test] fn eventselect() { run(Model::EventSelect) }
                            #[cfg(windows)] #[test] fn overlapped_event() { run(Model::OverlappedEvent) }
                            #[cfg(windows)] #[test] fn overlapped_routine() { run(Model::OverlappedRoutine) }
                            #[cfg(windows)] #[test] fn iocp() { run(Model::Iocp) }
                        }
                    };
                }
                models!(logic_thread, iomodels_chat::Mode::Logic);
                models!(io_thread, iomodels_chat::Mode::Io);
            }
        )*
    };
}

every_model_both_modes!(every_request_read_before_shutdown_is_answered);

/// The macro covers every model the engine has on this platform.
#[test]
fn every_model_is_covered() {
    assert_eq!(Model::ALL.len(), if cfg!(windows) { 9 } else { 7 });
}
