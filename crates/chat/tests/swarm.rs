//! The bot swarm against a real server on every model: 200 bots in 10 rooms chat for a few
//! seconds with no lost, duplicated or reordered notify; the other scenarios; and a slow
//! consumer that is cut off while its room keeps chatting.

mod common;

use common::every_model;

use common::*;
use iomodels_chat::{
    run_swarm, AcceptAll, BotsReport, ChatConfig, Mode, RateLimit, Scenario, SwarmConfig,
};
use iomodels_engine::{CloseReason, Model};
use iomodels_proto::{Request, Response};
use std::sync::Arc;
use std::time::Duration;

fn swarm(
    model: Model,
    mode: Mode,
    scenario: Scenario,
    bots: usize,
    secs: f64,
) -> Option<BotsReport> {
    let chat = ChatConfig {
        rooms: 10,
        room_capacity: 40,
        max_users: 1000,
        mode,
        ..ChatConfig::default()
    };
    let server = server_with(model, chat, Arc::new(AcceptAll), |_| {})?;
    let config = SwarmConfig {
        addr: server.local_addr(),
        bots,
        rooms: 10,
        scenario,
        rate: 10.0,
        duration: Duration::from_secs_f64(secs),
        ..SwarmConfig::default()
    };
    let report = run_swarm(&config).expect("running the swarm");
    println!("{model} {mode:?} {scenario:?}:\n{report}");
    let chat_stats = server.handler().stats();
    let handle = server.handle();
    server.stop().expect("stopping the server");
    let stats = handle.stats();
    assert_eq!(stats.closed_for(CloseReason::ProtocolError), 0, "{stats:?}");
    assert_eq!(chat_stats.protocol_errors, 0);
    Some(report)
}

fn room_chat_200_bots(model: Model) {
    let Some(report) = swarm(model, Mode::Logic, Scenario::RoomChat, 200, 3.0) else {
        return;
    };
    assert!(report.is_clean(), "{model}: {report:?}");
    assert_eq!(report.connected, 200);
    // Every bot chatted, and every chat reached its 20 room members.
    assert!(report.chats_sent >= 200 * 20, "{report:?}");
    assert_eq!(
        report.notifies_received,
        (report.chats_sent + 200) * 20,
        "{report:?}"
    );
    assert!(report.fanout_latency.count > 0);
}

fn room_chat_200_bots_io_mode(model: Model) {
    let Some(report) = swarm(model, Mode::Io, Scenario::RoomChat, 200, 2.0) else {
        return;
    };
    assert!(report.is_clean(), "{model}: {report:?}");
    assert_eq!(
        report.notifies_received,
        (report.chats_sent + 200) * 20,
        "{report:?}"
    );
}

fn other_scenarios(model: Model) {
    for scenario in [
        Scenario::Connect,
        Scenario::Reconnect,
        Scenario::Login,
        Scenario::RoomInout,
    ] {
        let Some(report) = swarm(model, Mode::Logic, scenario, 50, 1.0) else {
            return;
        };
        assert!(report.is_clean(), "{model} {scenario:?}: {report:?}");
        assert!(report.requests >= 50, "{model} {scenario:?}: {report:?}");
    }
}

/// A member that stops reading while its room chats is closed with "send queue full"; the
/// others keep chatting and are told it left.
fn slow_consumer_is_cut_off(model: Model) {
    let chat = ChatConfig {
        rooms: 2,
        room_capacity: 10,
        max_users: 10,
        mode: Mode::Logic,
        // Thousands of chats as fast as round trips go: past the rate limit, which is not
        // the point here.
        chat_limit: RateLimit::OFF,
        ..ChatConfig::default()
    };
    let Some(server) = server_with(model, chat, Arc::new(AcceptAll), |config| {
        config.send_queue_limit = 16 * 1024;
    }) else {
        return;
    };
    let mut fast = user(&server, "fast");
    enter(&mut fast, 0);
    let mut other = user(&server, "other");
    enter(&mut other, 0);
    next(&mut fast);
    let mut slow = user(&server, "slow");
    enter(&mut slow, 0);
    let Response::RoomNewUser(slow_user) = next(&mut fast) else {
        panic!("expected 208")
    };
    next(&mut other);
    // From here on `slow` reads nothing. Chat (a round trip per chat, so the talkers never
    // fall behind) until the server has cut it off; the kernel's socket buffers hold a few
    // megabytes first, so this takes some thousands of 295-byte notifies.
    let handle = server.handle();
    let mut sent = 0;
    let (mut fast_saw_leave, mut other_saw_leave) = (false, false);
    while !(fast_saw_leave && other_saw_leave) {
        assert!(sent < 200_000, "the slow consumer was never cut off");
        let text = format!("chat {sent}");
        fast.send(&Request::RoomChat {
            message: text.clone().into_bytes(),
        })
        .unwrap();
        sent += 1;
        let mut response = false;
        for (conn, saw_leave) in [
            (&mut fast, &mut fast_saw_leave),
            (&mut other, &mut other_saw_leave),
        ] {
            // Read up to this chat's notify; the leave may come before or after it.
            loop {
                match next(conn) {
                    Response::RoomChat { result: 0 } => response = true,
                    Response::RoomLeaveUser { unique_id } => {
                        assert_eq!(unique_id, slow_user.unique_id);
                        assert!(!*saw_leave, "two leave notifies");
                        *saw_leave = true;
                    }
                    notify @ Response::RoomChatNotify { .. } => {
                        assert_eq!(notify, chat_notify("fast", &text));
                        break;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert!(response, "the 222 comes before the sender's own 223");
    }
    assert_eq!(handle.stats().closed_for(CloseReason::SendQueueFull), 1);
    // The others are unaffected.
    assert_eq!(say(&mut other, "after"), Response::RoomChat { result: 0 });
    assert_eq!(next(&mut other), chat_notify("other", "after"));
    assert_eq!(next(&mut fast), chat_notify("other", "after"));
    assert_quiet(&mut fast);
    // The slow one finds its connection cut (reset, after some of what was queued).
    slow.wait_closed(WAIT)
        .expect("the slow consumer's connection ends");
    server.stop().unwrap();
}

every_model!(
    room_chat_200_bots,
    room_chat_200_bots_io_mode,
    other_scenarios,
    slow_consumer_is_cut_off
);

/// The report counts the bots' own CPU time (their threads', not the in-process server's),
/// in the text and in the JSON.
#[test]
fn the_report_counts_the_bots_own_cpu() {
    let started = std::time::Instant::now();
    let report = swarm(Model::SCALABLE[0], Mode::Logic, Scenario::RoomChat, 20, 1.0)
        .expect("the first scalable model (epoll, iocp) runs everywhere");
    let wall = started.elapsed().as_secs_f64();
    assert!(report.is_clean(), "{report:?}");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // On Windows a thread's time counts in clock ticks (15.6 ms; 10 ms under Wine), so 20
    // light bots for a second may each read 0: only Linux (microseconds) must see some.
    let some = cfg!(windows) || report.bots_cpu_secs > 0.0;
    assert!(
        some && report.bots_cpu_secs >= 0.0 && report.bots_cpu_secs < wall * cores,
        "{} s of CPU in {wall:.2} s on {cores} cores",
        report.bots_cpu_secs
    );
    let json = serde_json::to_value(&report).expect("the report as JSON");
    assert_eq!(json["bots_cpu_secs"].as_f64(), Some(report.bots_cpu_secs));
    assert!(report.to_string().contains("bots CPU:"), "{report}");
}
