//! Peer echo servers (being written).
fn main() {}
