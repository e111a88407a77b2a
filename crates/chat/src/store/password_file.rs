//! The users file: one `user:hash` line per user, each hash an argon2 PHC string, and the
//! store that checks logins against it.
//!
//! ```text
//! # comments and blank lines are skipped
//! alice:$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//! ```
//!
//! A line whose hash argon2 cannot parse (a plaintext password, say) is refused when the
//! file is loaded, naming the file, the line and the user, never what follows the `:`. A
//! user on two lines is refused too: the file is ambiguous, and `iomodels chat-users add`
//! never writes one. The file is written by [`PasswordFile::add_user`] (behind
//! `iomodels chat-users add`): hashed with [`HashParams::OWASP`], rewritten atomically,
//! mode 0600 on Unix.

use super::{Refusal, UserStore};
use crate::error::Error;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, CustomizedPasswordHasher, PasswordHasher, PasswordVerifier};
use iomodels_proto::{MAX_PASSWORD_LEN, MAX_USER_ID_LEN};
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The cost of an argon2id hash: what [`PasswordFile::hash_password`] writes into a new
/// hash. Verifying uses the parameters stored in each hash, so a file may mix costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory, in KiB (at least 8 per lane).
    pub memory_kib: u32,
    /// Passes over the memory (at least 1).
    pub iterations: u32,
    /// Lanes (at least 1). They are computed one after the other here.
    pub parallelism: u32,
}

impl HashParams {
    /// OWASP's recommendation for argon2id (Password Storage Cheat Sheet): 19 MiB, 2
    /// passes, 1 lane. The default, and what `iomodels chat-users add` writes. One verify
    /// costs about 16 ms of one core on the 2-core Xeon the crate's README was measured on
    /// (the `verify_cost` test, run by hand, measures it).
    pub const OWASP: HashParams = HashParams {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    fn argon2(&self) -> Result<Argon2<'static>, Error> {
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| Error::Config {
                what: format!(
                    "argon2 parameters m={},t={},p={}: {e}",
                    self.memory_kib, self.iterations, self.parallelism
                ),
            })?;
        Ok(Argon2::new(
            Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }
}

impl Default for HashParams {
    /// [`HashParams::OWASP`].
    fn default() -> HashParams {
        HashParams::OWASP
    }
}

/// What [`PasswordFile::add_user`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserChange {
    /// The user was not in the file (or there was no file): a line was appended.
    Added,
    /// The user's line was replaced in place.
    Replaced,
}

/// The password that unknown users are checked against, so that they cost the same time as
/// known ones. Nobody can log in with it: an unknown user is refused whatever the result.
const DUMMY_PASSWORD: &[u8] = b"iomodels: no such user";
/// The dummy hash's salt: fixed, since nothing is protected by it.
const DUMMY_SALT: &[u8] = b"iomodels-dummy-salt";

/// Users and their argon2 password hashes, from a users file (see the module docs for the
/// format) or from [`PasswordFile::from_pairs`]. Users not in it are refused, after as much
/// work as a wrong password costs.
#[derive(Clone)]
pub struct PasswordFile {
    users: HashMap<String, PasswordHash>,
    /// Checked for unknown users: computed with the parameters most users' hashes have.
    dummy: PasswordHash,
}

impl fmt::Debug for PasswordFile {
    /// The user count only: never the hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl PasswordFile {
    /// Read the users file at `path`. Costs one hash (the dummy for unknown users) besides
    /// reading the file.
    pub fn load(path: &Path) -> Result<PasswordFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::UsersFile {
            path: path.to_owned(),
            source,
        })?;
        PasswordFile::parse(&text, path)
    }

    /// Parse the text of a users file; `path` is only for the errors.
    fn parse(text: &str, path: &Path) -> Result<PasswordFile, Error> {
        let mut users = HashMap::new();
        let mut first_line = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let Some((user, hash)) = entry(line) else {
                continue;
            };
            if validate_user_id(user).is_err() {
                return Err(Error::UsersFileLine {
                    path: path.to_owned(),
                    line: number,
                });
            }
            let Some(hash) = parse_hash(hash.trim_end()) else {
                return Err(Error::UsersFileNotHashed {
                    path: path.to_owned(),
                    line: number,
                    user: user.to_owned(),
                });
            };
            if let Some(&first) = first_line.get(user) {
                return Err(Error::UsersFileDuplicate {
                    path: path.to_owned(),
                    line: number,
                    user: user.to_owned(),
                    first,
                });
            }
            first_line.insert(user.to_owned(), number);
            users.insert(user.to_owned(), hash);
        }
        PasswordFile::with_users(users)
    }

    /// A store holding these users and plaintext passwords, each hashed with
    /// [`HashParams::OWASP`]: a helper for tests and for embedding, which costs one hash per
    /// user plus one. User ids are taken as given, not validated.
    ///
    /// # Panics
    ///
    /// If the system's random source fails (salts come from it).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> PasswordFile {
        PasswordFile::from_pairs_with(&HashParams::OWASP, pairs)
            .expect("hashing with the OWASP parameters fails only if the random source does")
    }

    /// Like [`PasswordFile::from_pairs`], with these parameters: tests may pass cheap ones
    /// (`memory_kib: 8, iterations: 1, parallelism: 1` hashes in microseconds, and protects
    /// nothing).
    pub fn from_pairs_with<'a>(
        params: &HashParams,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<PasswordFile, Error> {
        let argon2 = params.argon2()?;
        let mut users = HashMap::new();
        for (user, password) in pairs {
            users.insert(user.to_owned(), hash(&argon2, password.as_bytes())?);
        }
        PasswordFile::with_users(users)
    }

    /// The store, with its dummy hash made with the parameters most of `users` have (the
    /// OWASP ones if there are no users).
    fn with_users(users: HashMap<String, PasswordHash>) -> Result<PasswordFile, Error> {
        let dummy = match most_common_params(users.values()) {
            Some(model) => Argon2::default()
                .hash_password_customized(
                    DUMMY_PASSWORD,
                    DUMMY_SALT,
                    Some(model.algorithm.as_str()),
                    model.version,
                    argon2::Params::try_from(model).map_err(hash_error)?,
                )
                .map_err(hash_error)?,
            None => owasp_dummy()?,
        };
        Ok(PasswordFile { users, dummy })
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no users (then every login is refused).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Hash `password` with `params` (argon2id, version 19, a fresh 16-byte random salt)
    /// into a PHC string: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
    pub fn hash_password(password: &[u8], params: &HashParams) -> Result<String, Error> {
        Ok(hash(&params.argon2()?, password)?.to_string())
    }

    /// Whether `user` can be a user id here: 1 to 32 bytes
    /// ([`MAX_USER_ID_LEN`]), no `:`, no whitespace, no control characters.
    pub fn validate_user_id(user: &str) -> Result<(), Error> {
        validate_user_id(user).map_err(|why| Error::InvalidUserId {
            user: user.to_owned(),
            why,
        })
    }

    /// Give `user` the password `password` in the users file at `path`: hash it with
    /// `params`, then replace the user's line where it is, or append one, keeping every
    /// other line (comments, blank lines, other users, even lines [`PasswordFile::load`]
    /// would refuse) as it was. Creates the file if missing.
    ///
    /// The file is rewritten atomically: written to a temporary file in the same directory,
    /// flushed to disk, then renamed over the old one, so a reader sees the old file or the
    /// new one, never a part. On Unix the new file has mode 0600 (owner read and write).
    /// Two `add_user` running at once on one file may lose one of the changes.
    ///
    /// Refuses an invalid user id ([`PasswordFile::validate_user_id`]), an empty password,
    /// and a password longer than a login packet carries (32 bytes), before hashing.
    pub fn add_user(
        path: &Path,
        user: &str,
        password: &[u8],
        params: &HashParams,
    ) -> Result<UserChange, Error> {
        PasswordFile::validate_user_id(user)?;
        usable_password(password)?;
        let hash = PasswordFile::hash_password(password, params)?;
        let old = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(Error::UsersFile {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let (new, change) = with_entry(&old, user, &hash);
        write_atomically(path, new.as_bytes()).map_err(|source| Error::UsersFileWrite {
            path: path.to_owned(),
            source,
        })?;
        Ok(change)
    }
}

impl UserStore for PasswordFile {
    fn check(&self, user_id: &str, password: &[u8]) -> Result<(), Refusal> {
        verify(password, self.users.get(user_id), &self.dummy)
    }
}

/// Check `password` against `hash`, or, for an unknown user (`None`), against `dummy`, at
/// the same cost, and refuse it: the time taken does not say whether the user exists.
pub(super) fn verify(
    password: &[u8],
    hash: Option<&PasswordHash>,
    dummy: &PasswordHash,
) -> Result<(), Refusal> {
    // Argon2::default() only sets the defaults; verifying takes the algorithm, version
    // and costs from the stored hash.
    let argon2 = Argon2::default();
    match hash {
        Some(hash) => argon2
            .verify_password(password, hash)
            .map_err(|_| Refusal::InvalidPassword),
        None => {
            let _ = std::hint::black_box(argon2.verify_password(password, dummy));
            Err(Refusal::InvalidPassword)
        }
    }
}

/// The dummy hash for unknown users when the store cannot say what most users' costs
/// are: [`HashParams::OWASP`]'s, what `chat-users add` writes.
pub(super) fn owasp_dummy() -> Result<PasswordHash, Error> {
    HashParams::OWASP
        .argon2()?
        .hash_password_with_salt(DUMMY_PASSWORD, DUMMY_SALT)
        .map_err(hash_error)
}

/// Refuse a password a login could not carry: empty, or over 32 bytes.
pub(super) fn usable_password(password: &[u8]) -> Result<(), Error> {
    if password.is_empty() {
        return Err(Error::UnusablePassword { why: "empty" });
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::UnusablePassword {
            why: "longer than the 32 bytes a login packet carries",
        });
    }
    Ok(())
}

/// The `(user, hash)` of a line, or `None` for a blank line or a `#` comment. A line with
/// no `:` is `("", line)`, which no valid user id matches.
fn entry(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_end_matches('\r');
    if line.trim().is_empty() || line.starts_with('#') {
        return None;
    }
    Some(line.split_once(':').unwrap_or(("", line)))
}

/// Why `user` cannot be a user id, if it cannot.
fn validate_user_id(user: &str) -> Result<(), &'static str> {
    if user.is_empty() {
        Err("empty")
    } else if user.len() > MAX_USER_ID_LEN {
        Err("longer than 32 bytes")
    } else if user.contains(':') {
        Err("contains `:`")
    } else if user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("contains whitespace or a control character")
    } else {
        Ok(())
    }
}

/// `text` parsed as a PHC string that argon2 can verify: an argon2 algorithm and version,
/// valid costs, a salt and a hash.
pub(super) fn parse_hash(text: &str) -> Option<PasswordHash> {
    let hash = PasswordHash::new(text).ok()?;
    Algorithm::try_from(hash.algorithm.as_str()).ok()?;
    if let Some(version) = hash.version {
        argon2::Version::try_from(version).ok()?;
    }
    argon2::Params::try_from(&hash).ok()?;
    (hash.salt.is_some() && hash.hash.is_some()).then_some(hash)
}

/// `password` hashed by `argon2` with a fresh random salt.
fn hash(argon2: &Argon2<'_>, password: &[u8]) -> Result<PasswordHash, Error> {
    argon2.hash_password(password).map_err(hash_error)
}

fn hash_error(e: argon2::password_hash::Error) -> Error {
    Error::PasswordHash {
        source: Box::new(e),
    }
}

/// The hash whose algorithm, version and costs the most of `hashes` share (the first seen
/// on a tie), or `None` if there are none.
fn most_common_params<'a>(
    hashes: impl Iterator<Item = &'a PasswordHash>,
) -> Option<&'a PasswordHash> {
    let mut counts: Vec<(String, usize, &PasswordHash)> = Vec::new();
    for hash in hashes {
        // Everything but the salt and the output, plus the output's length.
        let key = format!(
            "{}${:?}${}${}",
            hash.algorithm,
            hash.version,
            hash.params,
            hash.hash.as_ref().map_or(0, |output| output.len())
        );
        match counts.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, count, _)) => *count += 1,
            None => counts.push((key, 1, hash)),
        }
    }
    let best = counts.iter().map(|(_, count, _)| *count).max()?;
    counts
        .into_iter()
        .find(|(_, count, _)| *count == best)
        .map(|(_, _, hash)| hash)
}

/// `text` with `user`'s line set to `user:hash`: the first line of `user` replaced, any
/// later one dropped, or the line appended if there was none. Every other line is kept as
/// it was; lines end with `\n`.
fn with_entry(text: &str, user: &str, hash: &str) -> (String, UserChange) {
    let mut out = String::with_capacity(text.len() + user.len() + hash.len() + 2);
    let mut change = UserChange::Added;
    for line in text.lines() {
        match entry(line) {
            Some((u, _)) if u == user => {
                if change == UserChange::Added {
                    out.push_str(&format!("{user}:{hash}\n"));
                    change = UserChange::Replaced;
                }
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if change == UserChange::Added {
        out.push_str(&format!("{user}:{hash}\n"));
    }
    (out, change)
}

/// Replace the file at `path` with `contents`, atomically: a temporary file in the same
/// directory (mode 0600 on Unix), flushed, renamed over `path`.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".tmp{}", std::process::id()));
    let temporary: PathBuf = directory.join(temporary_name);
    let written = (|| {
        // A leftover of a process that had our id and died before its rename.
        let _ = std::fs::remove_file(&temporary);
        let mut file = create_private(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    sync_directory(directory);
    Ok(())
}

/// Create a new file that only its owner may read and write.
#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Create a new file. (Windows: it inherits the directory's access control list.)
#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Flush the directory entry of a rename to disk, where the system allows it; a failure
/// only loses durability, not atomicity, so it is ignored.
fn sync_directory(directory: &Path) {
    #[cfg(unix)]
    if let Ok(directory) = std::fs::File::open(directory) {
        let _ = directory.sync_all();
    }
    #[cfg(not(unix))]
    let _ = directory;
}

#[cfg(test)]
mod tests;
