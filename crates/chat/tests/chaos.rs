//! The chaos suite against our own server, in-process: flood on every model, the other
//! scenarios on the scalable ones (epoll and uring on Linux, IOCP on Windows).
//!
//! The tests take turns (one lock): each times round trips and closes against deadlines,
//! and on a 2-core machine a flood next door would make those timings say nothing about
//! the server. The server runs in the test process, so its pid is this process's and its
//! resident memory includes the clients': flood is judged with the scenario's own bound
//! (its clients hold a few buffers, against a 64 MiB bound); churn gets 16 MiB instead of
//! 8, to cover the churning threads' stacks and the allocator keeping freed memory (see
//! `churn`).

mod common;

use common::{every_model, server_with};
use iomodels_chat::{
    run_chaos, AcceptAll, ChaosConfig, ChaosDetails, ChaosReport, ChaosScenario, ChatConfig,
    ChatServer, Error, RateLimit,
};
use iomodels_engine::{Config, Model};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One test at a time.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Under Wine every socket call is a round trip to wineserver: fewer connections there.
const WINE: bool = cfg!(windows);

/// The login deadline the tests' servers are given.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A server on `model` for chaos: room for `connections` more connections than the usual
/// tests, and a short login timeout.
fn server(model: Model, connections: usize) -> Option<ChatServer> {
    server_tweaked(model, connections, |_| {})
}

/// [`server`] with its chat settings changed by `tweak`.
fn server_tweaked(
    model: Model,
    connections: usize,
    tweak: impl FnOnce(&mut ChatConfig),
) -> Option<ChatServer> {
    let mut chat = ChatConfig {
        login_timeout: Some(LOGIN_TIMEOUT),
        ..ChatConfig::default()
    };
    tweak(&mut chat);
    server_with(model, chat, Arc::new(AcceptAll), |config: &mut Config| {
        config.max_connections = connections + 100;
    })
}

/// Run `config` and print its report (a verdict that fails shows why).
fn run(model: Model, config: &ChaosConfig) -> ChaosReport {
    let report = run_chaos(config).expect("running the scenario");
    println!("{model}:\n{report}");
    report
}

/// One test per scalable model of the platform for each named function `fn(Model)`.
macro_rules! scalable_models {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                use iomodels_engine::Model;
                #[cfg(target_os = "linux")] #[test] fn epoll() { super::$test(Model::Epoll) }
                #[cfg(target_os = "linux")] #[test] fn uring() { super::$test(Model::Uring) }
                #[cfg(windows)] #[test] fn iocp() { super::$test(Model::Iocp) }
            }
        )*
    };
}

every_model!(flood, flood_without_a_rate_limit);
scalable_models!(anonymous, stall, spray, churn);

/// A flooder that never reads, beside four readers chatting: the readers stay connected
/// and agree on everything, and the server's memory stays within the bound.
fn flood(model: Model) {
    flood_with(model, |_| {});
}

/// The same flood with the chat rate limit off: the flooder is never cut, and only the
/// bound on its pending requests (its socket is not read while the game logic is behind
/// it) keeps the readers whole. Before that bound, this is what cut every reader.
fn flood_without_a_rate_limit(model: Model) {
    flood_with(model, |chat| chat.chat_limit = RateLimit::OFF);
}

fn flood_with(model: Model, tweak: impl FnOnce(&mut ChatConfig)) {
    let _turn = turn();
    let Some(server) = server_tweaked(model, 10, tweak) else {
        return;
    };
    let mut config = ChaosConfig::new(ChaosScenario::Flood, server.local_addr());
    config.duration = Duration::from_secs(if WINE { 2 } else { 3 });
    config.server_pid = Some(std::process::id());
    let report = run(model, &config);
    let ChaosDetails::Flood(flood) = &report.details else {
        panic!("a flood report")
    };
    assert_eq!(flood.readers.len(), 4);
    assert!(flood.flooder.bytes_written > 0, "{report}");
    assert!(report.server.is_some());
    assert!(report.passed, "{model}: {}", report.problems.join("; "));
}

/// Silent connections are closed by the login timeout while two real users are served.
fn anonymous(model: Model) {
    silent(model, ChaosScenario::Anonymous);
}

/// Connections stalled inside a header are closed by the login timeout too.
fn stall(model: Model) {
    silent(model, ChaosScenario::Stall);
}

fn silent(model: Model, scenario: ChaosScenario) {
    let _turn = turn();
    let connections = if WINE { 200 } else { 500 };
    let Some(server) = server(model, connections) else {
        return;
    };
    let mut config = ChaosConfig::new(scenario, server.local_addr());
    config.connections = connections;
    config.login_timeout = LOGIN_TIMEOUT;
    config.slack = Duration::from_secs(2);
    let report = run(model, &config);
    let (ChaosDetails::Anonymous(silent) | ChaosDetails::Stall(silent)) = &report.details else {
        panic!("a silent report")
    };
    assert_eq!(silent.real_users.len(), 10, "{report}");
    assert!(report.passed, "{model}: {}", report.problems.join("; "));
    assert_eq!(silent.still_open, 0);
}

/// Random bytes on many connections do not disturb two members chatting.
fn spray(model: Model) {
    let _turn = turn();
    let Some(server) = server(model, 100) else {
        return;
    };
    let mut config = ChaosConfig::new(ChaosScenario::Spray, server.local_addr());
    config.duration = Duration::from_secs(3);
    config.connections = if WINE { 10 } else { 50 };
    let report = run(model, &config);
    let ChaosDetails::Spray(spray) = &report.details else {
        panic!("a spray report")
    };
    // Random bytes break the protocol at once: the server closes most sprayers.
    assert!(spray.closed_by_server > 0, "{report}");
    assert!(report.passed, "{model}: {}", report.problems.join("; "));
}

/// Rounds of log in, enter, leave, close: every step answered, memory flat.
///
/// The bound is 16 MiB, not the scenario's 8: the process also holds the churning
/// clients, whose eight threads per round come and go, and whose freed memory the
/// allocator may keep in per-thread arenas. A server keeping some 14 KiB or more of every
/// session gone still fails it (1,200 sessions come and go after the first round).
fn churn(model: Model) {
    let _turn = turn();
    let Some(server) = server(model, 100) else {
        return;
    };
    let mut config = ChaosConfig::new(ChaosScenario::Churn, server.local_addr());
    config.rounds = if WINE { 3 } else { 4 };
    config.per_round = if WINE { 50 } else { 400 };
    config.server_pid = Some(std::process::id());
    config.rss_bound = 16 * 1024 * 1024;
    config.settle = Duration::from_millis(200);
    let report = run(model, &config);
    let ChaosDetails::Churn(churn) = &report.details else {
        panic!("a churn report")
    };
    assert_eq!(churn.rounds.len(), config.rounds);
    assert!(churn.rounds.iter().all(|r| r.rss_kib.is_some()), "{report}");
    assert!(report.passed, "{model}: {}", report.problems.join("; "));
}

/// The check itself: a server that never closes silent connections fails anonymous, with
/// every connection still open.
#[test]
fn anonymous_fails_a_server_without_a_login_timeout() {
    let _turn = turn();
    let chat = ChatConfig {
        login_timeout: None,
        ..ChatConfig::default()
    };
    let server = server_with(Model::SCALABLE[0], chat, Arc::new(AcceptAll), |_| {})
        .expect("the first scalable model runs everywhere");
    let mut config = ChaosConfig::new(ChaosScenario::Anonymous, server.local_addr());
    config.connections = 20;
    config.login_timeout = Duration::from_secs(1);
    config.slack = Duration::from_secs(1);
    let report = run(Model::SCALABLE[0], &config);
    let ChaosDetails::Anonymous(silent) = &report.details else {
        panic!("an anonymous report")
    };
    assert!(!report.passed);
    assert_eq!(silent.still_open, 20, "{report}");
    assert!(
        report.problems[0].contains("20 of 20 silent connections still open"),
        "{:?}",
        report.problems
    );
    // The real users were served all the same.
    assert!(
        silent.real_users.iter().all(|s| s.error.is_none()),
        "{report}"
    );
}

/// No server there: every scenario says it cannot connect, as an error, not a verdict.
#[test]
fn no_server_is_an_error() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    for scenario in ChaosScenario::ALL {
        let mut config = ChaosConfig::new(scenario, addr);
        config.connections = 3;
        config.rounds = 2;
        config.per_round = 1;
        match run_chaos(&config) {
            Err(error @ Error::Chaos { .. }) => {
                assert!(
                    error.to_string().contains("cannot connect"),
                    "{scenario}: {error}"
                );
            }
            other => panic!("{scenario}: expected a connect error, got {other:?}"),
        }
    }
}
