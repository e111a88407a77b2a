//! The names of every key the cluster uses, in one place (the crate's README lists them).
//! The Lua scripts build the same names from [`PREFIX`], handed to them as an argument.

/// What every key starts with.
pub(crate) const PREFIX: &str = "iomodels:";

/// The version of this key layout, kept in [`config`]: instances of another layout refuse
/// to join.
pub(crate) const LAYOUT_VERSION: u32 = 1;

/// The hash of settings every instance must agree on.
pub(crate) fn config() -> String {
    format!("{PREFIX}config")
}

/// The set of registered instances.
pub(crate) fn instances() -> String {
    format!("{PREFIX}instances")
}

/// The counter of incarnations.
pub(crate) fn next_incarnation() -> String {
    format!("{PREFIX}next_incarnation")
}

/// The instance's liveness key (its incarnation, with a TTL).
pub(crate) fn instance(name: &str) -> String {
    format!("{PREFIX}instance:{name}")
}

/// The hash of the instance's logged-in users: user id -> unique id.
pub(crate) fn instance_users(name: &str) -> String {
    format!("{PREFIX}instance:{name}:users")
}

/// Who holds `user`'s login: the instance's name.
pub(crate) fn user(user: &str) -> String {
    format!("{PREFIX}user:{user}")
}

/// The count of users logged in cluster-wide.
pub(crate) fn users() -> String {
    format!("{PREFIX}users")
}

/// The counter of unique ids.
pub(crate) fn next_unique_id() -> String {
    format!("{PREFIX}next_unique_id")
}

/// `user`'s argon2 PHC string, for `--users redis`.
pub(crate) fn password(user: &str) -> String {
    format!("{PREFIX}password:{user}")
}

/// The instance's room members: unique id -> `ROOM MEMBER` (the room number, a space, the
/// member as [`room_members`] holds it).
pub(crate) fn instance_members(name: &str) -> String {
    format!("{PREFIX}instance:{name}:members")
}

/// A room's channel: its events, numbered by [`room_seq`].
pub(crate) fn room_channel(room: usize) -> String {
    format!("{PREFIX}room:{room}")
}

/// The pattern every room's channel matches.
pub(crate) fn room_pattern() -> String {
    format!("{PREFIX}room:*")
}

/// The room's members, `UNIQUE_ID:USER_ID` scored by the room's event number at entry.
pub(crate) fn room_members(room: usize) -> String {
    format!("{PREFIX}room:{room}:members")
}

/// The room's last event number.
pub(crate) fn room_seq(room: usize) -> String {
    format!("{PREFIX}room:{room}:seq")
}

/// The channel that tells the instance's subscriber thread to end.
pub(crate) fn control(name: &str) -> String {
    format!("{PREFIX}instance:{name}:control")
}
