//! Where logins are checked: a small trait and three stores: [`AcceptAll`], the
//! argon2-hashed [`PasswordFile`], and the same hashes kept in Redis ([`RedisUsers`]).

mod password_file;
mod redis_users;

pub use password_file::{HashParams, PasswordFile, UserChange};
pub use redis_users::RedisUsers;

/// Why a login was refused by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The password does not match (or the user is unknown to the store).
    InvalidPassword,
    /// The store could not be asked (Redis unreachable): nothing was refused, but the
    /// login cannot go on now. Answered 32 (`SERVER_FULL`), not 33.
    Unavailable,
}

/// Checks a login's credentials.
///
/// A check may be slow: [`PasswordFile`] runs argon2, which costs milliseconds of CPU and
/// megabytes of memory by design, and an external store may ask over the network. So the
/// server calls it on a verifier thread, never on an I/O thread or the logic thread, and an
/// implementation may block for as long as one check takes.
pub trait UserStore: Send + Sync + 'static {
    /// Whether `user_id` may log in with `password`.
    ///
    /// May cost milliseconds (argon2, by design) and is called on a verifier thread, never
    /// on an I/O or logic thread. An unknown user is refused like a wrong password
    /// ([`Refusal::InvalidPassword`]), and should take as long, so that user ids cannot be
    /// probed by timing.
    fn check(&self, user_id: &str, password: &[u8]) -> Result<(), Refusal>;

    /// Whether a check costs enough to need its own threads (a password hash: yes, the
    /// default). A store that answers at once (say, [`AcceptAll`]) returns `false` and is
    /// called on the logic thread (or an I/O thread in [`crate::Mode::Io`]) instead.
    fn is_costly(&self) -> bool {
        true
    }
}

/// Accepts every password: the tutorial's behaviour and the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl UserStore for AcceptAll {
    fn check(&self, _: &str, _: &[u8]) -> Result<(), Refusal> {
        Ok(())
    }

    fn is_costly(&self) -> bool {
        false
    }
}
