//! Every example of this crate, run as its user would run it (see `harness`).
//!
//! The binaries are the ones `cargo test` builds before it runs the tests; with
//! `cargo test --test examples`, which builds no example, the harness builds them first the
//! same way.

mod harness;

use harness::self_test_on_every_model;

#[test]
fn framed() {
    self_test_on_every_model("framed");
}

#[test]
fn broadcast() {
    self_test_on_every_model("broadcast");
}

#[test]
fn tick() {
    self_test_on_every_model("tick");
}
