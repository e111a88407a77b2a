//! A chat server's counters scraped over a real socket, in both logic modes.

mod util;

use iomodels_chat::{
    engine_config, start, AcceptAll, ChatConfig, ChatServer, Connection, Mode, RateLimit,
};
use iomodels_engine::{CloseReason, Model};
use iomodels_metrics::{Exporter, Source};
use iomodels_proto::{Request, Response};
use std::sync::Arc;
use util::{scrape, wait_until, WAIT};

fn chat_server(mode: Mode) -> ChatServer {
    let config = engine_config(Model::SCALABLE[0], "127.0.0.1:0".parse().unwrap());
    let chat = ChatConfig {
        mode,
        ..ChatConfig::default()
    };
    start(config, chat, Arc::new(AcceptAll)).expect("the first scalable model runs everywhere")
}

fn ask(connection: &mut Connection, request: Request) -> Response {
    connection.send(&request).unwrap();
    connection.recv(WAIT).unwrap()
}

#[test]
fn chat_counters_are_read_at_scrape_time() {
    for mode in Mode::ALL {
        let server = chat_server(mode);
        let exporter =
            Exporter::start("127.0.0.1:0".parse().unwrap(), Source::chat(&server, mode)).unwrap();
        let addr = exporter.local_addr();
        let model = Model::SCALABLE[0].name();
        let chat = [("model", model), ("mode", mode.name())];
        let engine = [("model", model)];

        let before = scrape(addr);
        assert_eq!(before.value("iomodels_chat_logins_total", &chat), Some(0.0));
        assert_eq!(
            before.value("iomodels_chat_requests_total", &chat),
            Some(0.0)
        );

        let mut alice = Connection::connect(server.local_addr()).unwrap();
        let login = Request::Login {
            user_id: b"alice".to_vec(),
            password: b"pw".to_vec(),
        };
        assert_eq!(ask(&mut alice, login), Response::Login { result: 0 });
        assert_eq!(
            ask(&mut alice, Request::RoomEnter { room: 0 }),
            Response::RoomEnter { result: 0 }
        );
        alice
            .send(&Request::RoomChat {
                message: b"hello".to_vec(),
            })
            .unwrap();
        // The chat's answer and its notify (to alice too) end the exchange.
        let heard = wait_until(
            || scrape(addr),
            |e| e.value("iomodels_chat_chats_total", &chat) == Some(1.0),
        )
        .unwrap_or_else(|e| panic!("{mode}: the chat was never counted: {e:?}"));
        assert_eq!(heard.value("iomodels_chat_logins_total", &chat), Some(1.0));
        assert_eq!(
            heard.value("iomodels_chat_requests_total", &chat),
            Some(3.0)
        );
        assert_eq!(
            heard.value("iomodels_chat_protocol_errors_total", &chat),
            Some(0.0)
        );
        assert_eq!(
            heard.value("iomodels_chat_requests_dropped_total", &chat),
            Some(0.0)
        );
        assert_eq!(
            heard.value("iomodels_chat_truncated_total", &chat),
            Some(0.0)
        );
        // The engine's counters of the same server, without the mode label.
        assert_eq!(
            heard.value("iomodels_sessions_accepted_total", &engine),
            Some(1.0)
        );
        assert_eq!(heard.value("iomodels_sessions_open", &engine), Some(1.0));
        assert!(heard.value("iomodels_sessions_open", &chat).is_none());
        // Answers by request and result: one successful login, enter and chat.
        for (packet, request) in [
            ("201", "login"),
            ("206", "room-enter"),
            ("221", "room-chat"),
        ] {
            let answers = [
                ("model", model),
                ("mode", mode.name()),
                ("packet", packet),
                ("request", request),
                ("result", "0"),
            ];
            assert_eq!(
                heard.value("iomodels_chat_answers_total", &answers),
                Some(1.0),
                "{mode}: {request}"
            );
        }
        assert!(heard.value("iomodels_send_queue_peak_bytes", &engine) > Some(0.0));

        // A packet with an unknown id: a protocol error, the session closed for it.
        let mut mallory = Connection::connect(server.local_addr()).unwrap();
        mallory.send_raw(&[5, 0, 0xff, 0xff, 0]).unwrap();
        mallory.wait_closed(WAIT).unwrap();
        let closed = [
            ("model", model),
            ("reason", CloseReason::ProtocolError.name()),
        ];
        let after = wait_until(
            || scrape(addr),
            |e| e.value("iomodels_sessions_closed_total", &closed) == Some(1.0),
        )
        .unwrap_or_else(|e| panic!("{mode}: the protocol error was never counted: {e:?}"));
        assert_eq!(
            after.value("iomodels_chat_protocol_errors_total", &chat),
            Some(1.0)
        );
        assert_eq!(
            after.value("iomodels_sessions_accepted_total", &engine),
            Some(2.0)
        );

        // Every chat sample has both labels; every engine sample only the model's.
        for sample in &after.samples {
            let labels: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
            if sample.name == "iomodels_chat_answers_total" {
                assert_eq!(
                    labels,
                    ["mode", "model", "packet", "request", "result"],
                    "{sample:?}"
                );
            } else if sample.name.starts_with("iomodels_chat_") {
                assert_eq!(labels, ["mode", "model"], "{sample:?}");
            } else if sample.name == "iomodels_sessions_closed_total" {
                assert_eq!(labels, ["model", "reason"], "{sample:?}");
            } else {
                assert_eq!(labels, ["model"], "{sample:?}");
            }
        }
        drop(exporter);
        server.stop().unwrap();
    }
}

/// What the limits do shows in the metrics: a session that never logs in (the anonymous
/// gauge, then a login-deadline close), a flooder cut by the rate limit.
#[test]
fn abuse_counters_are_exported() {
    let config = engine_config(Model::SCALABLE[0], "127.0.0.1:0".parse().unwrap());
    let chat = ChatConfig {
        chat_limit: RateLimit {
            per_second: 1.0,
            burst: 2,
        },
        login_timeout: Some(std::time::Duration::from_millis(500)),
        ..ChatConfig::default()
    };
    let server = start(config, chat, Arc::new(AcceptAll)).unwrap();
    let mode = Mode::Logic;
    let exporter =
        Exporter::start("127.0.0.1:0".parse().unwrap(), Source::chat(&server, mode)).unwrap();
    let addr = exporter.local_addr();
    let model = Model::SCALABLE[0].name();
    let chat = [("model", model), ("mode", mode.name())];

    let mut silent = Connection::connect(server.local_addr()).unwrap();
    wait_until(
        || scrape(addr),
        |e| e.value("iomodels_chat_sessions_anonymous", &chat) == Some(1.0),
    )
    .expect("the silent session counted as anonymous");
    silent.wait_closed(WAIT).unwrap();

    let mut flooder = Connection::connect(server.local_addr()).unwrap();
    let login = Request::Login {
        user_id: b"flooder".to_vec(),
        password: b"pw".to_vec(),
    };
    assert_eq!(ask(&mut flooder, login), Response::Login { result: 0 });
    assert_eq!(
        ask(&mut flooder, Request::RoomEnter { room: 0 }),
        Response::RoomEnter { result: 0 }
    );
    let mut wire = Vec::new();
    for _ in 0..10 {
        Request::RoomChat {
            message: b"flood".to_vec(),
        }
        .encode(&mut wire);
    }
    let _ = flooder.send_raw(&wire);
    let _ = flooder.wait_closed(WAIT);

    let limited = [
        ("model", model),
        ("reason", CloseReason::RateLimited.name()),
    ];
    let timed_out = [
        ("model", model),
        ("reason", CloseReason::LoginTimeout.name()),
    ];
    let after = wait_until(
        || scrape(addr),
        |e| {
            e.value("iomodels_sessions_closed_total", &limited) == Some(1.0)
                && e.value("iomodels_sessions_closed_total", &timed_out) == Some(1.0)
        },
    )
    .unwrap_or_else(|e| panic!("the closes were never counted: {e:?}"));
    assert_eq!(
        after.value("iomodels_chat_rate_limited_total", &chat),
        Some(1.0)
    );
    assert_eq!(
        after.value("iomodels_chat_login_timeouts_total", &chat),
        Some(1.0)
    );
    assert_eq!(
        after.value("iomodels_chat_sessions_anonymous", &chat),
        Some(0.0)
    );
    assert_eq!(
        after.value("iomodels_chat_requests_pending", &chat),
        Some(0.0)
    );
    drop(exporter);
    server.stop().unwrap();
}
