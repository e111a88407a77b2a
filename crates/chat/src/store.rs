//! Where logins are checked: a small trait, ready for an external store, and two embedded
//! stores.

use crate::error::Error;
use iomodels_proto::MAX_USER_ID_LEN;
use std::collections::HashMap;
use std::path::Path;

/// Why a login was refused by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The password does not match (or the user is unknown to the store).
    InvalidPassword,
}

/// Checks a login's credentials.
///
/// Called on the logic thread (or an I/O thread in [`crate::Mode::Io`]) for each login, so
/// it must answer quickly; an external store would keep a local cache behind this call.
pub trait UserStore: Send + Sync + 'static {
    /// Whether `user_id` may log in with `password`.
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

/// Users and passwords from a text file of `user:password` lines (blank lines and lines
/// starting with `#` are skipped). Users not in the file are refused.
#[derive(Clone, Debug, Default)]
pub struct PasswordFile {
    users: HashMap<String, Vec<u8>>,
}

impl PasswordFile {
    /// Read `path`.
    pub fn load(path: &Path) -> Result<PasswordFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::UsersFile {
            path: path.to_owned(),
            source,
        })?;
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, password)) if !user.is_empty() && user.len() <= MAX_USER_ID_LEN => {
                    users.insert(user.to_owned(), password.as_bytes().to_vec());
                }
                _ => {
                    return Err(Error::UsersFileLine {
                        path: path.to_owned(),
                        line: index + 1,
                    })
                }
            }
        }
        Ok(PasswordFile { users })
    }

    /// A store holding these users.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> PasswordFile {
        PasswordFile {
            users: pairs
                .into_iter()
                .map(|(u, p)| (u.to_owned(), p.as_bytes().to_vec()))
                .collect(),
        }
    }
}

impl UserStore for PasswordFile {
    fn check(&self, user_id: &str, password: &[u8]) -> Result<(), Refusal> {
        match self.users.get(user_id) {
            Some(p) if p == password => Ok(()),
            _ => Err(Refusal::InvalidPassword),
        }
    }
}
