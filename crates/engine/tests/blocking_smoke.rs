//! Smoke tests of the blocking driver (thread per connection), beyond the shared scenarios:
//! the paths only this driver has (the keeper's aborts, a panicking handler, thread joins).

use iomodels_engine::{echo::Echo, CloseReason, Config, Handler, Model, Server, Session};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

fn config() -> Config {
    Config::new(Model::Blocking, "127.0.0.1:0".parse().unwrap())
}

fn connect(server: &Server<impl Handler>) -> TcpStream {
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Echo that reports every close (reason and when) on a channel.
struct Tracked {
    start: Instant,
    closed: Mutex<mpsc::Sender<(u64, CloseReason, Duration)>>,
}

impl Handler for Tracked {
    type State = ();
    fn opened(&self, _: &Session) {}
    fn data(&self, _: &mut (), session: &Session, data: &[u8]) -> usize {
        Echo.data(&mut (), session, data)
    }
    fn closed(&self, _: (), session: &Session, reason: CloseReason) {
        let _ =
            self.closed
                .lock()
                .unwrap()
                .send((session.id().get(), reason, self.start.elapsed()));
    }
}

#[test]
fn idle_timeout_spares_an_active_session() {
    let (tx, rx) = mpsc::channel();
    let mut config = config();
    config.idle_timeout = Some(Duration::from_millis(300));
    let server = Server::start(
        config,
        Tracked {
            start: Instant::now(),
            closed: Mutex::new(tx),
        },
    )
    .unwrap();
    let _silent = connect(&server);
    let mut chatty = connect(&server);
    let mut echo = [0; 1];
    let start = Instant::now();
    for i in 0..20 {
        let t = start.elapsed();
        if chatty
            .write_all(b"x")
            .and_then(|()| chatty.read_exact(&mut echo))
            .is_err()
        {
            panic!(
                "chatty failed at round {i}, {t:?}: {:?}",
                rx.try_iter().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, reason, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(reason, CloseReason::IdleTimeout);
    server.stop().unwrap();
}
