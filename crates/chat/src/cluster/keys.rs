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
