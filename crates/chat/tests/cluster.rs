//! Chat-server instances over one Redis (issue 11), and the Redis the tests start for
//! themselves (`common/redis.rs`). Unix only: the tests run Debian's `redis-server`.
#![cfg(unix)]

mod common;

use common::redis::{ping, Redis};

#[test]
fn the_test_redis_starts_restarts_and_dies_with_its_guard() {
    let Some(mut redis) = Redis::start("the_test_redis_starts_restarts_and_dies_with_its_guard")
    else {
        return;
    };
    let addr = redis.addr();
    assert!(ping(addr), "a started Redis answers PING");
    redis.kill();
    assert!(!ping(addr), "a killed Redis is gone");
    redis.restart();
    assert!(ping(addr), "a restarted Redis answers on the same port");
    drop(redis);
    assert!(!ping(addr), "a dropped Redis is gone");
}

use common::{ask, connect, enter, login, next, server_with, WAIT};
use iomodels_chat::{
    run_swarm, AcceptAll, BotsReport, ChatConfig, ChatServer, ClusterConfig, Connection, Error,
    Mode, Scenario, SwarmConfig,
};
use iomodels_engine::Model;
use iomodels_proto::{Request, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An instance named `name` of the cluster on `redis`: 4 rooms of 8, up to 16 users, in
/// `mode`, its cluster settings changed by `tweak`.
fn instance(
    redis: &Redis,
    name: &str,
    mode: Mode,
    tweak: impl FnOnce(&mut ClusterConfig),
) -> ChatServer {
    let mut cluster = ClusterConfig::new(redis.url(), name);
    tweak(&mut cluster);
    let chat = chat_config(mode, cluster);
    server_with(Model::SCALABLE[0], chat, Arc::new(AcceptAll), |_| {})
        .expect("the first scalable model runs everywhere")
}

fn chat_config(mode: Mode, cluster: ClusterConfig) -> ChatConfig {
    ChatConfig {
        rooms: 4,
        room_capacity: 8,
        max_users: 16,
        mode,
        cluster: Some(cluster),
        ..ChatConfig::default()
    }
}

/// A command's answer from the test's own connection to `redis`.
fn redis_query<T: redis::FromRedisValue>(redis: &Redis, command: &mut redis::Cmd) -> T {
    let client = redis::Client::open(redis.url()).expect("the URL");
    let mut con = client
        .get_connection()
        .expect("connecting to the test's Redis");
    command.query(&mut con).expect("the test's Redis command")
}

/// Log in as `user` on `server` until the answer is 0 (a release or a reap is on its way),
/// at most `within`: the session logged in, and how long it took.
fn login_eventually(server: &ChatServer, user: &str, within: Duration) -> (Connection, Duration) {
    let start = Instant::now();
    loop {
        let mut c = connect(server);
        let got = ask(
            &mut c,
            Request::Login {
                user_id: user.into(),
                password: b"pw".to_vec(),
            },
        );
        match got {
            Response::Login { result: 0 } => return (c, start.elapsed()),
            Response::Login { result: 31 } if start.elapsed() < within => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => panic!("login as {user} after {:?}: {other:?}", start.elapsed()),
        }
    }
}

#[test]
fn a_user_logs_in_once_across_instances() {
    for mode in Mode::ALL {
        let Some(redis) = Redis::start("a_user_logs_in_once_across_instances") else {
            return;
        };
        let a = instance(&redis, "a", mode, |_| {});
        let b = instance(&redis, "b", mode, |_| {});
        let mut alice = connect(&a);
        login(&mut alice, "alice", 0);
        // Wherever the second login comes, it is refused.
        login(&mut connect(&b), "alice", 31);
        login(&mut connect(&a), "alice", 31);
        // Redis says who holds her.
        let holder: String = redis_query(&redis, redis::cmd("GET").arg("iomodels:user:alice"));
        assert_eq!(holder, "a");
        // Gone from a, she may log in on b (once a's release has run).
        drop(alice);
        let _alice = login_eventually(&b, "alice", WAIT);
        login(&mut connect(&a), "alice", 31);
        let holder: String = redis_query(&redis, redis::cmd("GET").arg("iomodels:user:alice"));
        assert_eq!(holder, "b", "{mode} mode");
        a.stop().unwrap();
        b.stop().unwrap();
    }
}

#[test]
fn unique_ids_are_unique_across_instances() {
    let Some(redis) = Redis::start("unique_ids_are_unique_across_instances") else {
        return;
    };
    let servers = [
        instance(&redis, "a", Mode::Logic, |_| {}),
        instance(&redis, "b", Mode::Io, |_| {}),
    ];
    // On each instance, a watcher in a room of its own hears each newcomer's unique id.
    let mut ids = Vec::new();
    let mut keep = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let mut watcher = connect(server);
        login(&mut watcher, &format!("watcher{i}"), 0);
        enter(&mut watcher, i as i32);
        for n in 0..5 {
            let mut c = connect(server);
            login(&mut c, &format!("user{i}-{n}"), 0);
            let list = enter(&mut c, i as i32);
            match next(&mut watcher) {
                Response::RoomNewUser(user) => ids.push(user.unique_id),
                other => panic!("expected a 208, got {other:?}"),
            }
            ids.extend(list.iter().map(|u| u.unique_id));
            keep.push(c);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    // 5 newcomers and one watcher per instance.
    assert_eq!(ids.len(), 12, "every login has its own unique id: {ids:?}");
    let last: i64 = redis_query(&redis, redis::cmd("GET").arg("iomodels:next_unique_id"));
    assert_eq!(last, 12);
    for server in servers {
        server.stop().unwrap();
    }
}

#[test]
fn the_cluster_wide_cap_holds() {
    let Some(redis) = Redis::start("the_cluster_wide_cap_holds") else {
        return;
    };
    let cap = |c: &mut ClusterConfig| c.max_users = Some(2);
    let a = instance(&redis, "a", Mode::Logic, cap);
    let b = instance(&redis, "b", Mode::Logic, cap);
    let _first = common::user(&a, "first");
    let _second = common::user(&b, "second");
    login(&mut connect(&a), "third", 32);
    login(&mut connect(&b), "third", 32);
    let count: i64 = redis_query(&redis, redis::cmd("GET").arg("iomodels:users"));
    assert_eq!(count, 2);
    a.stop().unwrap();
    b.stop().unwrap();
}

#[test]
fn an_instance_that_stops_gracefully_frees_its_users_at_once() {
    let Some(redis) = Redis::start("an_instance_that_stops_gracefully_frees_its_users_at_once")
    else {
        return;
    };
    // A TTL far longer than the test: only the graceful exit can free her in time.
    let long = |c: &mut ClusterConfig| c.instance_ttl = Duration::from_secs(60);
    let a = instance(&redis, "a", Mode::Logic, long);
    let b = instance(&redis, "b", Mode::Logic, long);
    let _alice = common::user(&a, "alice");
    a.stop().unwrap();
    login(&mut connect(&b), "alice", 0);
    let names: Vec<String> = redis_query(&redis, redis::cmd("SMEMBERS").arg("iomodels:instances"));
    assert_eq!(names, ["b"]);
    let alive: i64 = redis_query(&redis, redis::cmd("EXISTS").arg("iomodels:instance:a"));
    assert_eq!(alive, 0);
    b.stop().unwrap();
}

#[test]
fn a_dead_instance_is_reaped_within_the_bound() {
    let Some(redis) = Redis::start("a_dead_instance_is_reaped_within_the_bound") else {
        return;
    };
    // A dead instance as it is left in Redis: its liveness key about to expire, a user it
    // held, the count. (The binary's tests kill a real process with SIGKILL.)
    let ttl = Duration::from_millis(900);
    redis_query::<()>(
        &redis,
        redis::cmd("SET")
            .arg("iomodels:instance:ghost")
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis() as u64),
    );
    redis_query::<()>(
        &redis,
        redis::cmd("SADD").arg("iomodels:instances").arg("ghost"),
    );
    redis_query::<()>(
        &redis,
        redis::cmd("SET").arg("iomodels:user:alice").arg("ghost"),
    );
    redis_query::<()>(
        &redis,
        redis::cmd("HSET")
            .arg("iomodels:instance:ghost:users")
            .arg("alice")
            .arg(7),
    );
    redis_query::<()>(&redis, redis::cmd("SET").arg("iomodels:users").arg(1));
    let died = Instant::now();
    let a = instance(&redis, "a", Mode::Logic, |c| c.instance_ttl = ttl);
    login(&mut connect(&a), "alice", 31);
    let _alice = login_eventually(&a, "alice", ttl * 4);
    let took = died.elapsed();
    // The bound is TTL * 4/3; a little slack for the test's own round trips.
    assert!(
        took <= ttl * 4 / 3 + Duration::from_millis(500),
        "reaped after {took:?}, bound {:?}",
        ttl * 4 / 3
    );
    let names: Vec<String> = redis_query(&redis, redis::cmd("SMEMBERS").arg("iomodels:instances"));
    assert_eq!(names, ["a"]);
    let count: i64 = redis_query(&redis, redis::cmd("GET").arg("iomodels:users"));
    assert_eq!(count, 1, "the ghost's alice freed, a's alice counted");
    a.stop().unwrap();
}

/// Wait until `key` holds `value` in `redis`, at most [`WAIT`].
fn wait_for_value(redis: &Redis, key: &str, value: &str) {
    let start = Instant::now();
    loop {
        let now: Option<String> = redis_query(redis, redis::cmd("GET").arg(key));
        if now.as_deref() == Some(value) {
            return;
        }
        assert!(start.elapsed() < WAIT, "{key} is {now:?}, not {value}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until Redis counts `count` users logged in.
fn wait_for_count(redis: &Redis, count: i64) {
    let start = Instant::now();
    loop {
        let now: Option<i64> = redis_query(redis, redis::cmd("GET").arg("iomodels:users"));
        if now == Some(count) {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "{now:?} users logged in, not {count}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restarted_redis_gets_every_logged_in_user_back() {
    let Some(mut redis) = Redis::start("a_restarted_redis_gets_every_logged_in_user_back") else {
        return;
    };
    let ttl = |c: &mut ClusterConfig| c.instance_ttl = Duration::from_millis(900);
    let a = instance(&redis, "a", Mode::Logic, ttl);
    let b = instance(&redis, "b", Mode::Io, ttl);
    let mut alice = common::user(&a, "alice");
    let mut bob = common::user(&b, "bob");
    // Dave takes unique id 3 and leaves before the restart: his id must not come back
    // either, though no instance holds him any more.
    drop(common::user(&b, "dave"));
    wait_for_count(&redis, 2);
    // Redis restarted empty: each instance finds itself gone at its next heartbeat,
    // registers again and claims its users again.
    redis.restart();
    wait_for_value(&redis, "iomodels:user:alice", "a");
    wait_for_value(&redis, "iomodels:user:bob", "b");
    // Nobody was logged out, and nobody can log in twice.
    common::assert_quiet(&mut alice);
    common::assert_quiet(&mut bob);
    login(&mut connect(&b), "alice", 31);
    login(&mut connect(&a), "bob", 31);
    let count: i64 = redis_query(&redis, redis::cmd("GET").arg("iomodels:users"));
    assert_eq!(count, 2);
    // The unique ids handed out before (1 to 3) are not handed out again.
    let last: i64 = redis_query(&redis, redis::cmd("GET").arg("iomodels:next_unique_id"));
    assert_eq!(last, 3);
    let _carol = common::user(&a, "carol");
    let last: i64 = redis_query(&redis, redis::cmd("GET").arg("iomodels:next_unique_id"));
    assert_eq!(last, 4);
    let names: Vec<String> = redis_query(&redis, redis::cmd("SMEMBERS").arg("iomodels:instances"));
    let mut names = names;
    names.sort();
    assert_eq!(names, ["a", "b"]);
    a.stop().unwrap();
    b.stop().unwrap();
}

#[test]
fn a_login_made_elsewhere_while_an_instance_was_cut_off_wins() {
    let Some(redis) = Redis::start("a_login_made_elsewhere_while_an_instance_was_cut_off_wins")
    else {
        return;
    };
    let ttl = |c: &mut ClusterConfig| c.instance_ttl = Duration::from_secs(3);
    let a = instance(&redis, "a", Mode::Logic, ttl);
    let b = instance(&redis, "b", Mode::Logic, ttl);
    let mut old = common::user(&a, "alice");
    // a cut off long enough to be reaped: what a janitor does, done here at once. Then
    // alice logs in on b before a's next heartbeat (1 s apart); if a's heartbeat came
    // first it claimed her back (b answers 31), and the test cuts a off again.
    let mut new = None;
    for _ in 0..5 {
        let client = redis::Client::open(redis.url()).unwrap();
        let mut con = client.get_connection().unwrap();
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg("iomodels:instance:a")
            .arg("iomodels:user:alice")
            .arg("iomodels:instance:a:users")
            .cmd("SREM")
            .arg("iomodels:instances")
            .arg("a")
            .cmd("DECR")
            .arg("iomodels:users")
            .query::<()>(&mut con)
            .unwrap();
        let mut c = connect(&b);
        match ask(
            &mut c,
            Request::Login {
                user_id: "alice".into(),
                password: b"pw".to_vec(),
            },
        ) {
            Response::Login { result: 0 } => {
                new = Some(c);
                break;
            }
            Response::Login { result: 31 } => wait_for_value(&redis, "iomodels:user:alice", "a"),
            other => panic!("login as alice on b: {other:?}"),
        }
    }
    let mut new = new.expect("alice logged in on b while a was cut off");
    // a comes back, finds her held by b, and closes its own session of hers.
    old.wait_closed(WAIT).expect("a closes the older login");
    common::assert_quiet(&mut new);
    wait_for_value(&redis, "iomodels:user:alice", "b");
    let count: i64 = redis_query(&redis, redis::cmd("GET").arg("iomodels:users"));
    assert_eq!(count, 1);
    a.stop().unwrap();
    b.stop().unwrap();
}

#[test]
fn joining_a_cluster_is_refused_with_a_reason() {
    let Some(redis) = Redis::start("joining_a_cluster_is_refused_with_a_reason") else {
        return;
    };
    let a = instance(&redis, "a", Mode::Logic, |_| {});
    let start = |chat: ChatConfig| {
        let config =
            iomodels_chat::engine_config(Model::SCALABLE[0], "127.0.0.1:0".parse().unwrap());
        iomodels_chat::start(config, chat, Arc::new(AcceptAll))
    };
    // The name of a live instance.
    match start(chat_config(
        Mode::Logic,
        ClusterConfig::new(redis.url(), "a"),
    )) {
        Err(Error::Cluster { what }) => assert!(what.contains("is running"), "{what}"),
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("a second instance named a started"),
    }
    // Other rooms than the cluster's.
    let mut other = chat_config(Mode::Logic, ClusterConfig::new(redis.url(), "b"));
    other.room_capacity = 9;
    match start(other) {
        Err(Error::Cluster { what }) => assert!(what.contains("--room-capacity"), "{what}"),
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("an instance with other rooms joined"),
    }
    // No Redis there.
    let nowhere = format!("redis://127.0.0.1:{}", free_port());
    match start(chat_config(Mode::Logic, ClusterConfig::new(nowhere, "c"))) {
        Err(Error::Redis { url, .. }) => assert!(url.starts_with("redis://127.0.0.1:")),
        Err(e) => panic!("expected Redis unreachable, got {e}"),
        Ok(_) => panic!("an instance started without its Redis"),
    }
    a.stop().unwrap();
}

/// A loopback port nothing listens on (just let go by the kernel's pick).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Hashing cheap enough for tests (it protects nothing).
const CHEAP: iomodels_chat::HashParams = iomodels_chat::HashParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

/// A login as `user` with `password` on `server`: its result.
fn login_with(server: &ChatServer, user: &str, password: &str) -> u16 {
    match ask(
        &mut connect(server),
        Request::Login {
            user_id: user.into(),
            password: password.into(),
        },
    ) {
        Response::Login { result } => result,
        other => panic!("expected a login answer, got {other:?}"),
    }
}

#[test]
fn passwords_kept_in_redis_are_checked_on_every_instance() {
    use iomodels_chat::{RedisUsers, UserChange};
    let Some(mut redis) = Redis::start("passwords_kept_in_redis_are_checked_on_every_instance")
    else {
        return;
    };
    let url = redis.url();
    assert_eq!(
        RedisUsers::add_user(&url, "alice", b"first", &CHEAP).unwrap(),
        UserChange::Added
    );
    assert_eq!(
        RedisUsers::add_user(&url, "alice", b"secret", &CHEAP).unwrap(),
        UserChange::Replaced
    );
    RedisUsers::add_user(&url, "bob", b"hunter2", &CHEAP).unwrap();
    // Stored as a users file line holds it after the `:`.
    let stored: String = redis_query(&redis, redis::cmd("GET").arg("iomodels:password:alice"));
    assert!(
        stored.starts_with("$argon2id$v=19$m=8,t=1,p=1$"),
        "{stored}"
    );
    let servers: Vec<ChatServer> = ["a", "b"]
        .into_iter()
        .zip(Mode::ALL)
        .map(|(name, mode)| {
            let chat = chat_config(mode, ClusterConfig::new(redis.url(), name));
            let store = Arc::new(RedisUsers::connect(&url).unwrap());
            server_with(Model::SCALABLE[0], chat, store, |_| {}).unwrap()
        })
        .collect();
    let (a, b) = (&servers[0], &servers[1]);
    assert_eq!(login_with(a, "alice", "first"), 33, "the replaced password");
    assert_eq!(login_with(b, "alice", "wrong"), 33);
    assert_eq!(login_with(a, "carol", "secret"), 33, "an unknown user");
    // A password added now counts at once, everywhere.
    RedisUsers::add_user(&url, "carol", b"carol's", &CHEAP).unwrap();
    let mut alice = connect(b);
    login_with_on(&mut alice, "alice", "secret", 0);
    assert_eq!(
        login_with(a, "alice", "secret"),
        31,
        "right password, logged in on b"
    );
    let mut carol = connect(a);
    login_with_on(&mut carol, "carol", "carol's", 0);
    // Redis gone: a password cannot be checked, and the answer says the server cannot
    // take the login (32), not that the password is wrong (33).
    redis.kill();
    assert_eq!(login_with(a, "bob", "hunter2"), 32);
    assert_eq!(login_with(b, "bob", "hunter2"), 32);
    drop((alice, carol));
    for server in servers {
        server.stop().unwrap();
    }
}

/// Log `c` in as `user` with `password`, expecting `result`.
fn login_with_on(c: &mut Connection, user: &str, password: &str, result: u16) {
    let got = ask(
        c,
        Request::Login {
            user_id: user.into(),
            password: password.into(),
        },
    );
    assert_eq!(got, Response::Login { result }, "login as {user}");
}

/// The next packet on `c`, which must be a 208; the newcomer.
fn new_user(c: &mut Connection) -> (i64, String) {
    match next(c) {
        Response::RoomNewUser(user) => (user.unique_id, String::from_utf8(user.user_id).unwrap()),
        other => panic!("expected a 208, got {other:?}"),
    }
}

/// The names in a 209 list.
fn names(list: &[iomodels_proto::RoomUser]) -> Vec<String> {
    list.iter()
        .map(|u| String::from_utf8(u.user_id.clone()).unwrap())
        .collect()
}

#[test]
fn rooms_span_instances() {
    for mode in Mode::ALL {
        let Some(redis) = Redis::start("rooms_span_instances") else {
            return;
        };
        let server = |name: &str| {
            let mut chat = chat_config(mode, ClusterConfig::new(redis.url(), name));
            chat.room_capacity = 3;
            server_with(Model::SCALABLE[0], chat, Arc::new(AcceptAll), |_| {}).unwrap()
        };
        let (a, b) = (server("a"), server("b"));
        let mut alice = common::user(&a, "alice");
        let alice_id = 1;
        let mut bob = common::user(&b, "bob");
        let mut carol = common::user(&a, "carol");
        let mut dave = common::user(&b, "dave");
        assert!(enter(&mut alice, 0).is_empty());
        assert_eq!(names(&enter(&mut bob, 0)), ["alice"]);
        let (bob_id, who) = new_user(&mut alice);
        assert_eq!(who, "bob");
        assert_eq!(names(&enter(&mut carol, 0)), ["alice", "bob"]);
        assert_eq!(new_user(&mut alice).1, "carol");
        assert_eq!(new_user(&mut bob).1, "carol");
        // Three members on two instances: the room is full everywhere.
        assert_eq!(
            ask(&mut dave, Request::RoomEnter { room: 0 }),
            Response::RoomEnter { result: 54 }
        );
        // A chat reaches every member, the sender's 222 before its own 223.
        assert_eq!(
            common::say(&mut bob, "hi"),
            Response::RoomChat { result: 0 }
        );
        assert_eq!(next(&mut bob), common::chat_notify("bob", "hi"));
        assert_eq!(next(&mut alice), common::chat_notify("bob", "hi"));
        assert_eq!(next(&mut carol), common::chat_notify("bob", "hi"));
        // A leave: 216 to the leaver, 217 everywhere else.
        assert_eq!(
            ask(&mut bob, Request::RoomLeave),
            Response::RoomLeave { result: 0 }
        );
        assert_eq!(
            next(&mut alice),
            Response::RoomLeaveUser { unique_id: bob_id }
        );
        assert_eq!(
            next(&mut carol),
            Response::RoomLeaveUser { unique_id: bob_id }
        );
        assert_eq!(
            names(&enter(&mut dave, 0)),
            ["alice", "carol"],
            "{mode} mode"
        );
        assert_eq!(new_user(&mut alice).1, "dave");
        assert_eq!(new_user(&mut carol).1, "dave");
        // A disconnect is a leave.
        drop(alice);
        assert_eq!(
            next(&mut carol),
            Response::RoomLeaveUser {
                unique_id: alice_id
            }
        );
        assert_eq!(
            next(&mut dave),
            Response::RoomLeaveUser {
                unique_id: alice_id
            }
        );
        common::assert_quiet(&mut bob);
        common::assert_quiet(&mut carol);
        common::assert_quiet(&mut dave);
        let members: Vec<String> = redis_query(
            &redis,
            redis::cmd("ZRANGE")
                .arg("iomodels:room:0:members")
                .arg(0)
                .arg(-1),
        );
        assert_eq!(members, ["3:carol", "4:dave"]);
        a.stop().unwrap();
        b.stop().unwrap();
    }
}

#[test]
fn chats_keep_one_order_across_instances() {
    let Some(redis) = Redis::start("chats_keep_one_order_across_instances") else {
        return;
    };
    let a = instance(&redis, "a", Mode::Logic, |_| {});
    let b = instance(&redis, "b", Mode::Io, |_| {});
    let servers = [&a, &b];
    let mut members: Vec<Connection> = (0..4)
        .map(|i| {
            let mut c = common::user(servers[i % 2], &format!("m{i}"));
            enter(&mut c, 1);
            c
        })
        .collect();
    // Drain the 208s each got from those after it.
    for (i, c) in members.iter_mut().enumerate() {
        for _ in i + 1..4 {
            new_user(c);
        }
    }
    // Everyone sends 25 chats at once, pipelined, from four threads.
    const CHATS: usize = 25;
    let orders: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .iter_mut()
            .enumerate()
            .map(|(i, c)| {
                scope.spawn(move || {
                    for n in 0..CHATS {
                        c.send(&Request::RoomChat {
                            message: format!("m{i}-{n}").into(),
                        })
                        .unwrap();
                    }
                    let mut seen = Vec::new();
                    let mut answers = 0;
                    while seen.len() < CHATS * 4 || answers < CHATS {
                        match next(c) {
                            Response::RoomChat { result: 0 } => answers += 1,
                            Response::RoomChatNotify { message, .. } => {
                                seen.push(String::from_utf8(message).unwrap())
                            }
                            other => panic!("m{i}: unexpected {other:?}"),
                        }
                    }
                    seen
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for order in &orders[1..] {
        assert_eq!(
            order, &orders[0],
            "every member saw the room's chats in one order"
        );
    }
    for i in 0..4 {
        let mine: Vec<&String> = orders[0]
            .iter()
            .filter(|m| m.starts_with(&format!("m{i}-")))
            .collect();
        let want: Vec<String> = (0..CHATS).map(|n| format!("m{i}-{n}")).collect();
        assert_eq!(
            mine,
            want.iter().collect::<Vec<_>>(),
            "m{i}'s chats once each, in order"
        );
    }
    a.stop().unwrap();
    b.stop().unwrap();
}

#[test]
fn redis_lost_closes_room_members_and_refuses_room_requests() {
    let Some(mut redis) = Redis::start("redis_lost_closes_room_members_and_refuses_room_requests")
    else {
        return;
    };
    let a = instance(&redis, "a", Mode::Logic, |c| {
        c.instance_ttl = Duration::from_millis(900)
    });
    let mut alice = common::user(&a, "alice");
    enter(&mut alice, 0);
    let mut carol = common::user(&a, "carol");
    // Redis gone: room events may be missed, so the room's members here are closed; a
    // member of no room stays, and room requests are answered 32.
    redis.kill();
    alice
        .wait_closed(WAIT)
        .expect("alice, in a room, closed when the subscription broke");
    assert_eq!(
        ask(&mut carol, Request::RoomEnter { room: 0 }),
        Response::RoomEnter { result: 32 }
    );
    login(&mut connect(&a), "dave", 32);
    // Back (empty): carol is claimed back and rooms work again.
    redis.restart();
    wait_for_value(&redis, "iomodels:user:carol", "a");
    let start = Instant::now();
    loop {
        match ask(&mut carol, Request::RoomEnter { room: 0 }) {
            Response::RoomEnter { result: 0 } => break,
            Response::RoomEnter { result: 32 } if start.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => panic!("carol's enter after Redis came back: {other:?}"),
        }
    }
    assert!(matches!(next(&mut carol), Response::RoomUserList(list) if list.is_empty()));
    a.stop().unwrap();
}

/// A swarm of `bots` in `scenario` spread over three instances (`a` in logic mode, `b` in
/// I/O mode, `c` in logic mode) of one cluster: its report, every check spanning them.
fn swarm_over_three(test: &str, scenario: Scenario, bots: usize, secs: f64) -> Option<BotsReport> {
    let redis = Redis::start(test)?;
    let servers: Vec<ChatServer> = [("a", Mode::Logic), ("b", Mode::Io), ("c", Mode::Logic)]
        .into_iter()
        .map(|(name, mode)| {
            let mut chat = chat_config(mode, ClusterConfig::new(redis.url(), name));
            chat.rooms = 10;
            chat.room_capacity = 40;
            chat.max_users = 1000;
            server_with(Model::SCALABLE[0], chat, Arc::new(AcceptAll), |_| {}).unwrap()
        })
        .collect();
    let config = SwarmConfig {
        addr: servers[0].local_addr(),
        also: servers[1..].iter().map(|s| s.local_addr()).collect(),
        bots,
        rooms: 10,
        scenario,
        rate: 10.0,
        duration: Duration::from_secs_f64(secs),
        ..SwarmConfig::default()
    };
    let report = run_swarm(&config).expect("running the swarm");
    println!("{scenario:?} over three instances:\n{report}");
    for server in servers {
        let stats = server.chat_stats();
        assert_eq!(stats.protocol_errors, 0);
        server.stop().unwrap();
    }
    Some(report)
}

#[test]
fn the_room_chat_swarm_is_clean_across_three_instances() {
    let Some(report) = swarm_over_three(
        "the_room_chat_swarm_is_clean_across_three_instances",
        Scenario::RoomChat,
        150,
        2.0,
    ) else {
        return;
    };
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.connected, 150);
    // Every chat reached its 15 room members, wherever they connected; each room's
    // members agree on its order (the swarm's hash check, part of is_clean).
    assert!(report.chats_sent >= 150 * 10, "{report:?}");
    assert_eq!(
        report.notifies_received,
        (report.chats_sent + 150) * 15,
        "{report:?}"
    );
}

#[test]
fn the_room_inout_swarm_is_clean_across_three_instances() {
    let Some(report) = swarm_over_three(
        "the_room_inout_swarm_is_clean_across_three_instances",
        Scenario::RoomInout,
        60,
        2.0,
    ) else {
        return;
    };
    assert!(report.is_clean(), "{report:?}");
    assert!(report.requests >= 60, "{report:?}");
}

#[test]
fn a_broken_subscription_closes_the_room_members_it_may_have_cost_events() {
    let Some(redis) =
        Redis::start("a_broken_subscription_closes_the_room_members_it_may_have_cost_events")
    else {
        return;
    };
    let a = instance(&redis, "a", Mode::Logic, |_| {});
    let b = instance(&redis, "b", Mode::Logic, |_| {});
    let mut alice = common::user(&a, "alice");
    let mut bob = common::user(&b, "bob");
    let mut carol = common::user(&a, "carol");
    enter(&mut alice, 2);
    enter(&mut bob, 2);
    assert_eq!(new_user(&mut alice).1, "bob");
    // Redis cuts every subscriber (as its pub/sub output-buffer limit does to one that
    // falls behind): events published meanwhile would be lost, so each instance closes
    // its members; carol, in no room, stays.
    redis_query::<i64>(
        &redis,
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"),
    );
    alice.wait_closed(WAIT).expect("alice closed");
    bob.wait_closed(WAIT).expect("bob closed");
    common::assert_quiet(&mut carol);
    // Their leaves were published: the room is empty in Redis, and usable again once the
    // instances have subscribed again.
    let start = Instant::now();
    loop {
        let members: Vec<String> = redis_query(
            &redis,
            redis::cmd("ZRANGE")
                .arg("iomodels:room:2:members")
                .arg(0)
                .arg(-1),
        );
        if members.is_empty() {
            break;
        }
        assert!(start.elapsed() < WAIT, "{members:?} still in room 2");
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        match ask(&mut carol, Request::RoomEnter { room: 2 }) {
            Response::RoomEnter { result: 0 } => break,
            Response::RoomEnter { result: 32 } if start.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => panic!("carol's enter: {other:?}"),
        }
    }
    assert!(matches!(next(&mut carol), Response::RoomUserList(list) if list.is_empty()));
    a.stop().unwrap();
    b.stop().unwrap();
}
