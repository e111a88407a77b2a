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
