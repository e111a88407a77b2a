//! The limits that keep one abuser from hurting the others, each shown on a real server in
//! both modes: rate limits, the login deadline, the caps on anonymous sessions and per
//! address, the bound on a session's pending requests, and password checks that run off
//! the game logic's thread and still answer in order.

mod common;

use common::*;
use iomodels_chat::{
    ChatConfig, ChatServer, ClientError, Connection, Mode, RateLimit, Refusal, RequestKind,
    UserStore,
};
use iomodels_engine::{CloseReason, Model};
use iomodels_proto::{Request, Response, ResultCode};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

both_modes!(
    a_chat_flood_is_cut_and_the_room_goes_on,
    a_session_that_never_logs_in_is_closed_at_its_deadline,
    anonymous_sessions_are_capped,
    sessions_per_address_are_capped,
    a_slow_password_check_stalls_no_one_else,
    shutdown_answers_a_login_out_for_its_check,
);

// The bound on pending requests takes each driver's pause and resume of a session's input.
every_model!(pending_requests_are_bounded);

fn pending_requests_are_bounded(model: Model) {
    for mode in Mode::ALL {
        a_sessions_pending_requests_are_bounded_and_answered_in_order(model, mode);
    }
}

fn server(
    mode: Mode,
    store: Arc<dyn UserStore>,
    tweak: impl FnOnce(&mut ChatConfig),
) -> ChatServer {
    server_on(Model::SCALABLE[0], mode, store, tweak).expect("the scalable model runs")
}

fn server_on(
    model: Model,
    mode: Mode,
    store: Arc<dyn UserStore>,
    tweak: impl FnOnce(&mut ChatConfig),
) -> Option<ChatServer> {
    let mut chat = ChatConfig {
        rooms: 4,
        room_capacity: 10,
        max_users: 100,
        mode,
        ..ChatConfig::default()
    };
    tweak(&mut chat);
    server_with(model, chat, store, |_| {})
}

fn accept_all() -> Arc<dyn UserStore> {
    Arc::new(iomodels_chat::AcceptAll)
}

/// Whether the server ended `c` (an orderly close or a reset) within [`WAIT`].
fn ended(c: &mut Connection) -> bool {
    match c.wait_closed(WAIT) {
        Ok(_) => true,
        Err(ClientError::Timeout(_)) => false,
        Err(_) => true,
    }
}

/// A connection from `source` (a loopback address of its own).
fn connect_from(server: &ChatServer, source: [u8; 4]) -> Connection {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .expect("binding a loopback source address");
    socket.connect(&server.local_addr().into()).unwrap();
    Connection::from_stream(socket.into()).unwrap()
}

/// A member chats past its burst as fast as it can: it alone is closed, as rate limited,
/// and the other member's chats still go through.
fn a_chat_flood_is_cut_and_the_room_goes_on(mode: Mode) {
    let server = server(mode, accept_all(), |chat| {
        chat.chat_limit = RateLimit {
            per_second: 5.0,
            burst: 10,
        };
    });
    let mut flooder = user(&server, "flooder");
    enter(&mut flooder, 0);
    let mut member = user(&server, "member");
    enter(&mut member, 0);
    let mut wire = Vec::new();
    for i in 0..1000 {
        Request::RoomChat {
            message: format!("flood {i}").into_bytes(),
        }
        .encode(&mut wire);
    }
    // The server may cut it while it writes.
    let _ = flooder.send_raw(&wire);
    assert!(ended(&mut flooder), "the flooder was not cut off");
    // The member saw the flooder enter... no: it entered first. It sees the accepted
    // chats (the burst), then the flooder leave; and it can still chat.
    let mut flood_seen = 0;
    loop {
        match next(&mut member) {
            Response::RoomChatNotify { user_id, message } => {
                assert_eq!(user_id, b"flooder");
                assert_eq!(message, format!("flood {flood_seen}").into_bytes());
                flood_seen += 1;
            }
            Response::RoomLeaveUser { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        (10..=12).contains(&flood_seen),
        "a burst of 10 (and a token or two of refill) got through, not {flood_seen}"
    );
    assert_eq!(
        say(&mut member, "still here"),
        Response::RoomChat { result: 0 }
    );
    assert_eq!(next(&mut member), chat_notify("member", "still here"));
    let stats = server.stop().unwrap();
    assert_eq!(stats.chat.rate_limited, 1);
    assert_eq!(stats.engine.closed_for(CloseReason::RateLimited), 1);
}

/// A session that never logs in is closed at its deadline, with its own reason; one that
/// logged in stays.
fn a_session_that_never_logs_in_is_closed_at_its_deadline(mode: Mode) {
    let timeout = Duration::from_millis(500);
    let server = server(mode, accept_all(), |chat| {
        chat.login_timeout = Some(timeout)
    });
    let opened = Instant::now();
    let mut silent = connect(&server);
    let mut member = user(&server, "member");
    assert!(ended(&mut silent), "the silent session was not closed");
    let took = opened.elapsed();
    assert!(
        took >= timeout,
        "closed after {took:?}, before its deadline"
    );
    // Past the deadline, the logged-in member is still served.
    std::thread::sleep(timeout);
    assert_quiet(&mut member);
    let stats = server.stop().unwrap();
    assert_eq!(stats.chat.login_timeouts, 1);
    assert_eq!(stats.engine.closed_for(CloseReason::LoginTimeout), 1);
}

/// Past the cap on sessions not logged in, the oldest of them is closed to make room for
/// the newcomer, who can log in; logged-in sessions are never touched.
fn anonymous_sessions_are_capped(mode: Mode) {
    let server = server(mode, accept_all(), |chat| chat.max_anonymous = 3);
    let mut member = user(&server, "member");
    // One at a time, each known to the server (it answered a probe) before the next
    // connects: with a listener per worker, connections are not accepted in the order
    // they were made.
    let mut waiting: Vec<_> = (0..3)
        .map(|_| {
            let mut c = connect(&server);
            assert_quiet(&mut c);
            c
        })
        .collect();
    let mut newcomer = connect(&server);
    assert!(
        ended(&mut waiting[0]),
        "the oldest anonymous session was not closed"
    );
    login(&mut newcomer, "newcomer", 0);
    for c in &mut waiting[1..] {
        assert_quiet(c);
    }
    assert_quiet(&mut member);
    let stats = server.stop().unwrap();
    assert_eq!(stats.chat.over_capacity, 1);
    assert_eq!(stats.engine.closed_for(CloseReason::OverCapacity), 1);
}

/// Past the cap per source address, a new connection from that address is closed at once;
/// other addresses are not affected, and a session that ends makes room.
fn sessions_per_address_are_capped(mode: Mode) {
    let server = server(mode, accept_all(), |chat| chat.max_per_address = Some(2));
    let mut a: Vec<_> = (0..2)
        .map(|_| connect_from(&server, [127, 0, 0, 2]))
        .collect();
    for c in &mut a {
        assert_quiet(c);
    }
    let mut third = connect_from(&server, [127, 0, 0, 2]);
    assert!(
        ended(&mut third),
        "a third session from one address was let in"
    );
    let mut other = connect_from(&server, [127, 0, 0, 3]);
    login(&mut other, "other", 0);
    drop(a.pop());
    // The server frees the slot when it sees the close: retry until it has.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = connect_from(&server, [127, 0, 0, 2]);
        match again
            .send(&Request::RoomLeave)
            .and_then(|_| again.recv(WAIT))
        {
            Ok(Response::RoomLeave { .. }) => break,
            _ => assert!(Instant::now() < deadline, "the slot was never freed"),
        }
    }
    server.stop().unwrap();
}

/// A store whose checks wait until the test opens its gate, and counts them.
#[derive(Default)]
struct GateStore {
    open: Mutex<bool>,
    opened: Condvar,
}

impl GateStore {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl UserStore for GateStore {
    fn check(&self, user_id: &str, password: &[u8]) -> Result<(), Refusal> {
        if user_id.starts_with("slow") {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
        }
        if password == b"pw" {
            Ok(())
        } else {
            Err(Refusal::InvalidPassword)
        }
    }
}

/// The wire of a login as "slow" (whose check waits for the gate) and, pipelined behind
/// it, an enter of `room`.
fn slow_login_then_enter(room: i32) -> Vec<u8> {
    let mut wire = Vec::new();
    Request::Login {
        user_id: b"slow".to_vec(),
        password: b"pw".to_vec(),
    }
    .encode(&mut wire);
    Request::RoomEnter { room }.encode(&mut wire);
    wire
}

/// A session pipelines a login whose check is stuck, then thousands of chats: the server
/// holds at most its bound of them and stops reading the rest (its counters stop well
/// short of the total); once the check comes back, every request is answered, the login's
/// answer first.
fn a_sessions_pending_requests_are_bounded_and_answered_in_order(model: Model, mode: Mode) {
    // 12 MiB: more than loopback's socket buffers hold. (Under Wine, fewer and slower.)
    const CHATS: usize = if cfg!(windows) { 20_000 } else { 60_000 };
    const BOUND: usize = 16;
    let store = Arc::new(GateStore::default());
    let Some(server) = server_on(model, mode, store.clone(), |chat| {
        chat.max_pending = BOUND;
        chat.chat_limit = RateLimit::OFF;
    }) else {
        return;
    };
    let mut c = connect(&server);
    let mut wire = slow_login_then_enter(1);
    for i in 0..CHATS {
        Request::RoomChat {
            message: format!("{i:0>200}").into_bytes(),
        }
        .encode(&mut wire);
    }
    let writer = {
        let mut c = c.try_clone().unwrap();
        std::thread::spawn(move || c.send_raw(&wire).unwrap())
    };
    // The server takes the bound's worth and then stops reading.
    let deadline = Instant::now() + WAIT;
    while server.chat_stats().pending < BOUND as u64 {
        assert!(Instant::now() < deadline, "{:?}", server.chat_stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let stats = server.chat_stats();
    assert_eq!(stats.pending, BOUND as u64, "{stats:?}");
    assert_eq!(stats.requests, BOUND as u64, "{stats:?}");
    assert_eq!(stats.verifying, 1);
    assert!(
        !writer.is_finished(),
        "the client wrote everything: nothing held it back"
    );
    store.open();
    // A close says why in the server's counters.
    let next = |c: &mut Connection| match c.recv(WAIT) {
        Ok(response) => response,
        Err(e) => panic!("{model} {mode:?}: {e}; server: {:?}", server.stats()),
    };
    assert_eq!(next(&mut c), Response::Login { result: 0 });
    assert_eq!(next(&mut c), Response::RoomEnter { result: 0 });
    assert_eq!(next(&mut c), Response::RoomUserList(Vec::new()));
    for i in 0..CHATS {
        assert_eq!(next(&mut c), Response::RoomChat { result: 0 }, "chat {i}");
        assert_eq!(
            next(&mut c),
            chat_notify("slow", &format!("{i:0>200}")),
            "chat {i}"
        );
    }
    let stats = server.stop().unwrap();
    assert_eq!(stats.chat.requests, CHATS as u64 + 2);
    assert_eq!(stats.chat.pending, 0);
    assert_eq!(
        stats.chat.answered(RequestKind::RoomChat, ResultCode::None),
        CHATS as u64
    );
}

/// While one login's check is stuck, other users log in and chat.
fn a_slow_password_check_stalls_no_one_else(mode: Mode) {
    let store = Arc::new(GateStore::default());
    let server = server(mode, store.clone(), |_| {});
    let mut slow = connect(&server);
    slow.send(&Request::Login {
        user_id: b"slow".to_vec(),
        password: b"pw".to_vec(),
    })
    .unwrap();
    let mut fast = user(&server, "fast");
    enter(&mut fast, 0);
    assert_eq!(say(&mut fast, "hello"), Response::RoomChat { result: 0 });
    assert_eq!(next(&mut fast), chat_notify("fast", "hello"));
    let mut wrong = connect(&server);
    login_with(&mut wrong, "fast2", b"wrong", ResultCode::InvalidPassword);
    assert_eq!(server.chat_stats().verifying, 1);
    store.open();
    assert_eq!(next(&mut slow), Response::Login { result: 0 });
    server.stop().unwrap();
}

/// A shutdown that comes while a login is out for its check waits for it: the login and
/// the request behind it are answered before the connection ends.
fn shutdown_answers_a_login_out_for_its_check(mode: Mode) {
    let store = Arc::new(GateStore::default());
    let server = server(mode, store.clone(), |_| {});
    let mut c = connect(&server);
    c.send_raw(&slow_login_then_enter(2)).unwrap();
    let deadline = Instant::now() + WAIT;
    while server.chat_stats().verifying == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let handle = server.handle();
    let stopper = std::thread::spawn(move || handle.shutdown());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !stopper.is_finished(),
        "the shutdown did not wait for the check"
    );
    store.open();
    stopper.join().unwrap();
    assert_eq!(next(&mut c), Response::Login { result: 0 });
    assert_eq!(next(&mut c), Response::RoomEnter { result: 0 });
    assert_eq!(next(&mut c), Response::RoomUserList(Vec::new()));
    assert!(ended(&mut c));
    let stats = server.join().unwrap();
    assert_eq!(stats.chat.dropped, 0);
    assert_eq!(stats.chat.logins, 1);
}

fn login_with(c: &mut Connection, user: &str, password: &[u8], result: ResultCode) {
    let got = ask(
        c,
        Request::Login {
            user_id: user.into(),
            password: password.to_vec(),
        },
    );
    assert_eq!(
        got,
        Response::Login {
            result: result.code()
        }
    );
}
