//! # Embedding the chat server in your own program
//!
//! `iomodels-chat` is a library first: [`iomodels_chat::start`] runs the whole chat server
//! (login, rooms, room chat) inside your process, on any I/O model, and hands back a
//! [`ChatServer`] to watch and stop it. This example shows the four steps:
//!
//! 1. **Configure.** [`engine_config`] gives the engine settings the chat wants (an idle
//!    timeout, so a silent socket cannot hold a user slot for ever); change what you need.
//!    [`ChatConfig`] says how many rooms, how big, how many users.
//! 2. **Start.** [`start`] with a [`UserStore`](iomodels_chat::UserStore) that checks
//!    logins: [`AcceptAll`] here, a `PasswordFile` or your own in a real game.
//! 3. **Watch.** [`ChatServerHandle`](iomodels_chat::ChatServerHandle) reads the engine's
//!    counters (`stats`: sessions, bytes) and the chat's (`chat_stats`: logins, chats,
//!    requests) from any thread, while the server runs.
//! 4. **Stop gracefully.** [`ChatServer::shutdown`] stops taking requests, answers every
//!    request already read, then lets the engine flush and close every session;
//!    [`ChatServer::join`] waits for the end and returns the final counters.
//!
//! ```sh
//! cargo run -p iomodels-chat --example embed -- --model epoll --seconds 60 127.0.0.1:7001
//! cargo run --release -p iomodels -- chat-client --addr 127.0.0.1:7001   # in another terminal
//! cargo run -p iomodels-chat --example embed -- --self-test --model uring
//! ```
//!
//! Options: `--model NAME` (any model of the platform, see `iomodels models`; epoll on
//! Linux and iocp on Windows by default), `--seconds N` (stop gracefully after N seconds; without it, run until the
//! process is killed), `--self-test` (start on a free port, log two users in, chat, stop;
//! exit 0 if it passed, 77 if the kernel cannot run the model), and the address
//! (`127.0.0.1:0` by default: a free port, printed on standard error).

use iomodels_chat::{engine_config, start, AcceptAll, ChatConfig, ChatServer, Mode};
use iomodels_engine::Model;
use iomodels_proto::{
    split_frame, Direction, Header, Request, Response, ResultCode, RoomUser, HEADER_SIZE,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EXAMPLE: &str = "embed";

/// Exit code of a run whose model the kernel cannot serve (only io_uring may be missing).
const UNSUPPORTED: i32 = 77;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args = Args::parse();

    // 1. Configure: the chat's engine defaults, then what this program wants.
    let mut engine = engine_config(args.model, args.addr);
    engine.max_connections = 1000;
    let chat = ChatConfig {
        rooms: 4,
        room_capacity: 8,
        max_users: 100,
        mode: Mode::Logic,
        ..ChatConfig::default()
    };

    // 2. Start. An io_uring the kernel cannot run is the one failure worth telling apart.
    let server = match start(engine, chat, Arc::new(AcceptAll)) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("{EXAMPLE}: {}", describe(&error));
            let unsupported = matches!(
                error,
                iomodels_chat::Error::Engine(iomodels_engine::Error::Unsupported { .. })
            );
            std::process::exit(if unsupported { UNSUPPORTED } else { 1 });
        }
    };
    eprintln!(
        "{EXAMPLE}: chat server listening on {} ({})",
        server.local_addr(),
        args.model
    );

    if args.self_test {
        match self_test(server) {
            Ok(()) => eprintln!("{EXAMPLE}: self-test passed"),
            Err(error) => {
                eprintln!("{EXAMPLE}: self-test failed: {}", describe(&*error));
                std::process::exit(1);
            }
        }
        return;
    }

    // 3. Watch: your program goes on with its own work; here, a line of counters every
    //    five seconds.
    let handle = server.handle();
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut last_report = Instant::now();
    while deadline.is_none_or(|at| Instant::now() < at) {
        std::thread::sleep(Duration::from_millis(100));
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let (engine, chat) = (handle.stats(), handle.chat_stats());
            eprintln!(
                "{EXAMPLE}: {} online, {} logins, {} chats, {} requests",
                engine.active, chat.logins, chat.chats, chat.requests
            );
        }
    }

    // 4. Stop gracefully and print the final counts.
    server.shutdown();
    match server.join() {
        Ok(stopped) => eprintln!(
            "{EXAMPLE}: stopped: {} sessions, {} logins, {} chats, {} requests ({} dropped at shutdown)",
            stopped.engine.accepted,
            stopped.chat.logins,
            stopped.chat.chats,
            stopped.chat.requests,
            stopped.chat.dropped
        ),
        Err(error) => {
            eprintln!("{EXAMPLE}: {}", describe(&error));
            std::process::exit(1);
        }
    }
}

/// `error` and its causes on one line, each said once: some errors show their cause in
/// their own message, others leave it to [`std::error::Error::source`].
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let more = error.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        cause = error.source();
    }
    text
}

/// The command line: `[--model NAME] [--seconds N] [--self-test] [ADDR]`.
struct Args {
    model: Model,
    addr: SocketAddr,
    seconds: Option<u64>,
    self_test: bool,
}

impl Args {
    /// Parse `std::env::args()`, or print one line and exit with 2.
    fn parse() -> Args {
        Args::parse_from(std::env::args().skip(1)).unwrap_or_else(|message| {
            eprintln!(
                "{EXAMPLE}: {message} (usage: {EXAMPLE} [--model NAME] [--seconds N] [--self-test] [ADDR])"
            );
            std::process::exit(2)
        })
    }

    fn parse_from(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            model: Model::SCALABLE[0],
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seconds: None,
            self_test: false,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--model" => {
                    let name = args.next().ok_or("--model needs a model name")?;
                    parsed.model = name.parse().map_err(|e| format!("{e}"))?;
                }
                "--seconds" => {
                    let n = args.next().ok_or("--seconds needs a number")?;
                    let n = n
                        .parse()
                        .map_err(|_| format!("--seconds wants a whole number, not '{n}'"))?;
                    parsed.seconds = Some(n);
                }
                "--self-test" => parsed.self_test = true,
                addr if !addr.starts_with('-') => {
                    parsed.addr = addr
                        .parse()
                        .map_err(|_| format!("'{addr}' is not an address like 127.0.0.1:7001"))?;
                }
                other => return Err(format!("unknown option '{other}'")),
            }
        }
        Ok(parsed)
    }
}

/// A client over a plain `TcpStream`, speaking the wire protocol with `iomodels-proto`.
struct Client {
    stream: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Result<Client, Failure> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client { stream })
    }

    fn send(&mut self, request: Request) -> Result<(), Failure> {
        Ok(self.stream.write_all(&request.to_bytes())?)
    }

    /// The next packet: its bytes as they came, and what they decode to.
    fn recv(&mut self) -> Result<(Vec<u8>, Response), Failure> {
        self.recv_or_end()?
            .ok_or_else(|| "the server closed the connection".into())
    }

    /// The next packet, or `None` if the stream ends where a packet would start.
    fn recv_or_end(&mut self) -> Result<Option<(Vec<u8>, Response)>, Failure> {
        let mut raw = vec![0; HEADER_SIZE];
        loop {
            match self.stream.read(&mut raw[..1]) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.stream.read_exact(&mut raw[1..])?;
        let header = Header::parse(&raw).ok_or("a short header")?;
        raw.resize(usize::from(header.length).max(HEADER_SIZE), 0);
        self.stream.read_exact(&mut raw[HEADER_SIZE..])?;
        let frame = split_frame(&raw, &Direction::ToClient)?.ok_or("a short packet")?;
        let response = Response::decode(frame)?;
        Ok(Some((raw, response)))
    }

    /// The next packet must be `expected`, byte for byte.
    fn expect(&mut self, expected: Response) -> Result<(), Failure> {
        let (raw, got) = self.recv()?;
        if raw != expected.to_bytes() {
            return Err(format!("expected {expected:?}, got {got:?}").into());
        }
        Ok(())
    }

    /// After the shutdown: the end of the stream. The sessions close one by one, so a
    /// user may first be told that the other left the room.
    fn expect_end(&mut self) -> Result<(), Failure> {
        while let Some((_, response)) = self.recv_or_end()? {
            if !matches!(response, Response::RoomLeaveUser { .. }) {
                return Err(format!("unexpected {response:?} at shutdown").into());
            }
        }
        Ok(())
    }
}

/// Two users log in, meet in a room and chat, over real sockets; the counters agree; the
/// shutdown closes both connections cleanly.
fn self_test(server: ChatServer) -> Result<(), Failure> {
    let addr = server.local_addr();
    let hello = b"hello from alice".to_vec();

    let mut alice = Client::connect(addr)?;
    alice.send(Request::Login {
        user_id: b"alice".to_vec(),
        password: b"secret".to_vec(),
    })?;
    alice.expect(Response::Login {
        result: ResultCode::None.code(),
    })?;
    alice.send(Request::RoomEnter { room: 1 })?;
    alice.expect(Response::RoomEnter {
        result: ResultCode::None.code_i16(),
    })?;
    alice.expect(Response::RoomUserList(Vec::new()))?;

    let mut bob = Client::connect(addr)?;
    bob.send(Request::Login {
        user_id: b"bob".to_vec(),
        password: b"hunter2".to_vec(),
    })?;
    bob.expect(Response::Login {
        result: ResultCode::None.code(),
    })?;
    bob.send(Request::RoomEnter { room: 1 })?;
    bob.expect(Response::RoomEnter {
        result: ResultCode::None.code_i16(),
    })?;
    // Bob learns Alice is there; Alice learns Bob came. Unique ids are the server's.
    match bob.recv()?.1 {
        Response::RoomUserList(users) if users.len() == 1 && users[0].user_id == b"alice" => {}
        other => return Err(format!("bob expected a list with alice, got {other:?}").into()),
    }
    match alice.recv()?.1 {
        Response::RoomNewUser(RoomUser { user_id, .. }) if user_id == b"bob" => {}
        other => return Err(format!("alice expected bob to arrive, got {other:?}").into()),
    }

    // Alice chats: she gets her result, then the notify, as does Bob.
    alice.send(Request::RoomChat {
        message: hello.clone(),
    })?;
    alice.expect(Response::RoomChat {
        result: ResultCode::None.code_i16(),
    })?;
    let notify = Response::RoomChatNotify {
        user_id: b"alice".to_vec(),
        message: hello,
    };
    alice.expect(notify.clone())?;
    bob.expect(notify)?;

    // The live counters, read while the server runs. The server's threads count as they
    // go, some of it just after the answers left (a chat is counted once its notifies are
    // queued, a request once it is queued for the logic thread, and that thread may answer
    // first): a live reading may lag what the clients saw, so give it a moment. The final
    // counters that `join` returns are exact.
    let handle = server.handle();
    let caught_up = || {
        let (live, chat) = (handle.stats(), handle.chat_stats());
        live.active == 2 && chat.logins == 2 && chat.chats == 1 && chat.requests == 5
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !caught_up() {
        if Instant::now() >= deadline {
            let (live, chat) = (handle.stats(), handle.chat_stats());
            return Err(format!("live counters: {live:?} {chat:?}").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    // Stop: both users are disconnected cleanly, and the final counts add up.
    server.shutdown();
    alice.expect_end()?;
    bob.expect_end()?;
    let stopped = server.join()?;
    eprintln!(
        "{EXAMPLE}: final counts: {} sessions, {} logins, {} chats, {} requests, {} bytes in, {} bytes out",
        stopped.engine.accepted,
        stopped.chat.logins,
        stopped.chat.chats,
        stopped.chat.requests,
        stopped.engine.bytes_in,
        stopped.engine.bytes_out
    );
    let chat = stopped.chat;
    if stopped.engine.accepted != 2
        || stopped.engine.active != 0
        || chat.logins != 2
        || chat.chats != 1
        || chat.requests != 5
        || chat.dropped != 0
        || chat.protocol_errors != 0
    {
        return Err(format!("final counters: {stopped:?}").into());
    }
    Ok(())
}
