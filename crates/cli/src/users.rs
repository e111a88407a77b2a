//! `iomodels chat-users`: the flags, and writing the chat server's users file with the chat
//! library (hashing and the file format live there, in `PasswordFile`).

use anyhow::{Context, Result};
use iomodels_chat::{HashParams, PasswordFile, RedisUsers, UserChange};
use std::io::BufRead;
use std::path::PathBuf;

/// Flags of `iomodels chat-users`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatUsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum UsersCommand {
    /// Add a user to the users file (or to Redis), or replace their password; other lines
    /// are kept.
    Add(AddArgs),
}

/// Flags of `iomodels chat-users add`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "The password is hashed with argon2id (m=19456 KiB, t=2, p=1: OWASP's \
                  recommendation) and the file rewritten atomically, with mode 0600 on Unix. \
                  With --redis it is written to the key iomodels:password:NAME instead, for \
                  `chat-server --redis URL --users redis`."
)]
struct AddArgs {
    /// The user id: 1 to 32 bytes, no `:`, no whitespace, no control characters.
    name: String,
    /// The users file that `chat-server --users` reads; created if missing.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "redis",
        conflicts_with = "redis"
    )]
    users: Option<PathBuf>,
    /// Write to this Redis (redis://HOST:PORT) instead of a file, for `chat-server --redis
    /// URL --users redis`.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Read the password from the first line of standard input (its line end removed)
    /// instead of asking twice on the terminal.
    #[arg(long)]
    password_stdin: bool,
}

/// Run a `chat-users` subcommand.
pub fn run(args: ChatUsersArgs) -> Result<()> {
    match args.command {
        UsersCommand::Add(args) => add(args),
    }
}

fn add(args: AddArgs) -> Result<()> {
    // Before asking for a password that could not be used.
    PasswordFile::validate_user_id(&args.name)?;
    let password = if args.password_stdin {
        password_from_stdin()?
    } else {
        password_from_terminal(&args.name)?
    };
    let (change, file) = match (&args.users, &args.redis) {
        (Some(path), _) => (
            PasswordFile::add_user(path, &args.name, &password, &HashParams::OWASP)?,
            path.display().to_string(),
        ),
        (None, Some(url)) => (
            RedisUsers::add_user(url, &args.name, &password, &HashParams::OWASP)?,
            url.clone(),
        ),
        (None, None) => unreachable!("clap requires --users or --redis"),
    };
    let name = &args.name;
    match change {
        UserChange::Added => eprintln!("iomodels: added {name} to {file}"),
        UserChange::Replaced => eprintln!("iomodels: replaced the password of {name} in {file}"),
    }
    Ok(())
}

/// The first line of standard input, without its `\n` or `\r\n`: any bytes, so a
/// password need not be UTF-8.
fn password_from_stdin() -> Result<Vec<u8>> {
    let mut line = Vec::new();
    std::io::stdin()
        .lock()
        .read_until(b'\n', &mut line)
        .context("cannot read the password from standard input")?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(line)
}

/// The password, typed twice on the terminal without echo.
fn password_from_terminal(user: &str) -> Result<Vec<u8>> {
    let ask = |prompt: String| {
        rpassword::prompt_password(prompt)
            .context("cannot read the password from the terminal (--password-stdin reads it from standard input)")
    };
    let first = ask(format!("Password for {user}: "))?;
    let again = ask(format!("Password for {user} again: "))?;
    anyhow::ensure!(first == again, "the two passwords differ; nothing written");
    Ok(first.into_bytes())
}
