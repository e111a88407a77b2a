//! Every example of the chat crate, run as its user would run it (see the engine's
//! `tests/harness`, included here by path).

#[path = "../../engine/tests/harness/mod.rs"]
mod harness;

use harness::self_test_on_every_model;

#[test]
fn embed() {
    self_test_on_every_model("embed");
}
