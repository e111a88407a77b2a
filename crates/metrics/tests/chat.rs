//! A chat server's counters scraped over a real socket, in both logic modes.

mod util;

use iomodels_chat::{engine_config, start, AcceptAll, ChatConfig, ChatServer, Connection, Mode};
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
            if sample.name.starts_with("iomodels_chat_") {
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
