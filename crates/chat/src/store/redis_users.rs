//! `--users redis`: the users file's argon2 hashes, kept in Redis at
//! `iomodels:password:{user}` (a PHC string, as a users file line holds after the `:`), so
//! that every instance of a cluster checks the same passwords and a new one counts at once.
//!
//! Each check `GET`s the user's hash and verifies it with the users file's code
//! (`password_file.rs`): argon2 with the costs stored in the hash, an unknown user checked
//! against a dummy hash so that it costs as much as a wrong password. It runs on the
//! verifier threads, which each take a connection from a small pool. Redis unreachable
//! during a check: [`Refusal::Unavailable`] (the login is answered 32, not 33).

use super::password_file::{owasp_dummy, parse_hash, usable_password, verify};
use super::{HashParams, PasswordFile, Refusal, UserChange, UserStore};
use crate::cluster::{connect, keys};
use crate::error::Error;
use argon2::password_hash::phc::PasswordHash;
use redis::{Client, Connection, RedisResult};
use std::fmt;
use std::sync::Mutex;

/// Users whose argon2 hashes are kept in Redis; see the module docs.
pub struct RedisUsers {
    client: Client,
    /// Connections not in use; a check takes one (or makes one) and puts it back.
    idle: Mutex<Vec<Connection>>,
    /// Checked for unknown users (and for a stored value that is not an argon2 hash).
    dummy: PasswordHash,
}

impl fmt::Debug for RedisUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUsers").finish_non_exhaustive()
    }
}

impl RedisUsers {
    /// The store at `url`: connects once (and PINGs), so that an unreachable Redis is an
    /// error at start, not a refused login.
    pub fn connect(url: &str) -> Result<RedisUsers, Error> {
        let (client, con) = open(url)?;
        Ok(RedisUsers {
            client,
            idle: Mutex::new(vec![con]),
            dummy: owasp_dummy()?,
        })
    }

    /// Give `user` the password `password` in the Redis at `url`: hashed with `params`
    /// (as [`PasswordFile::add_user`] hashes), written over any earlier one. Refuses what
    /// [`PasswordFile::add_user`] refuses, before hashing.
    pub fn add_user(
        url: &str,
        user: &str,
        password: &[u8],
        params: &HashParams,
    ) -> Result<UserChange, Error> {
        PasswordFile::validate_user_id(user)?;
        usable_password(password)?;
        let hash = PasswordFile::hash_password(password, params)?;
        let (_, mut con) = open(url)?;
        // SET ... GET (Redis 6.2): the old value says whether this replaced one.
        let old: Option<String> = redis::cmd("SET")
            .arg(keys::password(user))
            .arg(hash)
            .arg("GET")
            .query(&mut con)
            .map_err(|error| Error::Redis {
                url: url.to_owned(),
                error,
            })?;
        Ok(match old {
            Some(_) => UserChange::Replaced,
            None => UserChange::Added,
        })
    }

    /// `user`'s stored hash, on a pooled connection, tried once more on a fresh one if
    /// the pooled one fails (it may be from before a Redis restart).
    fn stored(&self, user: &str) -> RedisResult<Option<String>> {
        let get = |con: &mut Connection| {
            redis::cmd("GET")
                .arg(keys::password(user))
                .query::<Option<String>>(con)
        };
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let (con, answer) = match pooled.map(|mut con| (get(&mut con), con)) {
            Some((Ok(answer), con)) => (con, answer),
            _ => {
                let mut con = connect(&self.client)?;
                let answer = get(&mut con)?;
                (con, answer)
            }
        };
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(con);
        Ok(answer)
    }
}

/// A client for `url` and a first connection.
fn open(url: &str) -> Result<(Client, Connection), Error> {
    let client = Client::open(url).map_err(|e| Error::Config {
        what: format!("redis URL {url}: {e} (expected redis://HOST:PORT)"),
    })?;
    let con = connect(&client).map_err(|error| Error::Redis {
        url: url.to_owned(),
        error,
    })?;
    Ok((client, con))
}

impl UserStore for RedisUsers {
    fn check(&self, user_id: &str, password: &[u8]) -> Result<(), Refusal> {
        let stored = match self.stored(user_id) {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "cannot read a password hash from Redis");
                return Err(Refusal::Unavailable);
            }
        };
        // A value that is not an argon2 hash (written by hand, say) refuses the login,
        // like an unknown user.
        let hash = stored.as_deref().and_then(parse_hash);
        verify(password, hash.as_ref(), &self.dummy)
    }
}
