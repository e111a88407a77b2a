//! Value parsers every subcommand shares, so a flag of the same name has one type, one
//! meaning and one error everywhere.
//!
//! - `--model`, `--mode`, `--scenario`: the library enums, parsed from their `ALL` lists
//!   (`--scenario` from both the swarm's and the chaos suite's),
//!   so `--help` lists every name with its one-line description (the libraries stay free
//!   of clap).
//! - `--addr`: an `IP:PORT` (or `HOST:PORT`, resolved once, first address).
//! - seconds (`--duration`, `--warmup`, `--idle-timeout`, ...): a decimal number of
//!   seconds, finite and at most a day; `--idle-timeout 0` turns the timeout off.
//!
//! A value a parser refuses is a usage error: clap prints it and exits with status 2.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The longest time any seconds flag accepts: one day.
pub const MAX_SECONDS: f64 = 86_400.0;

/// A parser for one of `all`, by name, listing each with its description in `--help`.
pub fn choice<T>(
    all: &[T],
    name: fn(T) -> &'static str,
    description: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = T>
where
    T: Copy + Send + Sync + 'static,
{
    let all = all.to_vec();
    let names = all
        .iter()
        .map(|&value| PossibleValue::new(name(value)).help(description(value)));
    PossibleValuesParser::new(names).map(move |text: String| {
        *all.iter()
            .find(|&&value| name(value) == text)
            .expect("clap only passes a listed name")
    })
}

/// The model `serve` and `chat-server` run when none is named: epoll on Linux.
#[cfg(target_os = "linux")]
pub fn default_model() -> &'static str {
    "epoll"
}

/// The model `serve` and `chat-server` run when none is named: the platform's first
/// scalable model (IOCP on Windows).
#[cfg(not(target_os = "linux"))]
pub fn default_model() -> &'static str {
    iomodels_engine::Model::SCALABLE[0].name()
}

/// `--model`: an engine model, listed from [`iomodels_engine::Model::ALL`].
pub fn model() -> impl TypedValueParser<Value = iomodels_engine::Model> {
    use iomodels_engine::Model;
    choice(Model::ALL, Model::name, Model::description)
}

/// `--mode`: where the chat's game logic runs.
pub fn mode() -> impl TypedValueParser<Value = iomodels_chat::Mode> {
    use iomodels_chat::Mode;
    choice(&Mode::ALL, Mode::name, Mode::description)
}

/// What `chat-bots --scenario` runs: a swarm, or a chaos scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BotsScenario {
    /// A swarm of bots ([`iomodels_chat::run_swarm`]).
    Swarm(iomodels_chat::Scenario),
    /// A chaos scenario ([`iomodels_chat::run_chaos`]).
    Chaos(iomodels_chat::ChaosScenario),
}

impl BotsScenario {
    fn all() -> Vec<BotsScenario> {
        let swarm = iomodels_chat::Scenario::ALL.map(BotsScenario::Swarm);
        let chaos = iomodels_chat::ChaosScenario::ALL.map(BotsScenario::Chaos);
        swarm.into_iter().chain(chaos).collect()
    }

    fn name(self) -> &'static str {
        match self {
            BotsScenario::Swarm(s) => s.name(),
            BotsScenario::Chaos(s) => s.name(),
        }
    }

    fn description(self) -> &'static str {
        match self {
            BotsScenario::Swarm(s) => s.description(),
            BotsScenario::Chaos(s) => s.description(),
        }
    }
}

/// `--scenario`: what the chat bots do, a swarm's scenario or a chaos scenario.
pub fn scenario() -> impl TypedValueParser<Value = BotsScenario> {
    choice(
        &BotsScenario::all(),
        BotsScenario::name,
        BotsScenario::description,
    )
}

/// `--addr`: `IP:PORT`, or `HOST:PORT` resolved to its first address.
pub fn addr(text: &str) -> Result<SocketAddr, String> {
    let bad = || format!("'{text}' is not an address like 127.0.0.1:7000");
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// A decimal number of seconds, 0 to [`MAX_SECONDS`].
pub fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(0.0..=MAX_SECONDS).contains(&value) {
        return Err(format!(
            "{text} seconds is out of range: 0 to {MAX_SECONDS} (a day)"
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// Like [`seconds`], but 0 is refused.
pub fn positive_seconds(text: &str) -> Result<Duration, String> {
    match seconds(text)? {
        d if d.is_zero() => Err("must be above 0 seconds".into()),
        d => Ok(d),
    }
}

/// `--idle-timeout`: seconds a session may stay silent; 0 turns the timeout off.
pub fn idle_timeout(text: &str) -> Result<IdleTimeout, String> {
    let duration = seconds(text)?;
    Ok(IdleTimeout((!duration.is_zero()).then_some(duration)))
}

/// The value of `--idle-timeout`: `None` is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleTimeout(pub Option<Duration>);

/// `--chat-limit`, `--request-limit`: `RATE/BURST` (requests a second on average, and at
/// once), `RATE` (a burst of twice the rate, at least 1), or `off`.
pub fn rate_limit(text: &str) -> Result<iomodels_chat::RateLimit, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(iomodels_chat::RateLimit::OFF);
    }
    let refused = || format!("'{text}' is not RATE/BURST (say 20/40), RATE, or off");
    let (rate, burst) = match text.split_once('/') {
        Some((rate, burst)) => (rate, Some(burst)),
        None => (text, None),
    };
    let per_second = match rate.trim().parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1e9 => r,
        _ => return Err(refused()),
    };
    let burst = match burst {
        Some(b) => match b.trim().parse::<u32>() {
            Ok(b) if b >= 1 => b,
            _ => return Err(refused()),
        },
        None => ((2.0 * per_second).ceil() as u32).max(1),
    };
    Ok(iomodels_chat::RateLimit { per_second, burst })
}

/// `--login-timeout`: seconds a session may stay without logging in; 0 turns it off.
pub fn login_timeout(text: &str) -> Result<LoginTimeout, String> {
    let duration = seconds(text)?;
    Ok(LoginTimeout((!duration.is_zero()).then_some(duration)))
}

/// The value of `--login-timeout`: `None` is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginTimeout(pub Option<Duration>);

/// `--user-prefix`: 1 to 24 bytes of letters, digits, `-` and `_` (a bot's number follows,
/// and a user id is at most 32 bytes).
pub fn user_prefix(text: &str) -> Result<String, String> {
    if (1..=24).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "'{text}' is not 1 to 24 letters, digits, '-' or '_'"
        ))
    }
}

/// A parser for a whole number from `min` to `max`, saying the range when refused.
pub fn bounded(min: usize, max: usize) -> impl TypedValueParser<Value = usize> {
    move |text: &str| -> Result<usize, String> {
        match text.trim().parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "'{text}' is not a whole number from {min} to {max}"
            )),
        }
    }
}

/// A rate: a finite number above 0, at most `max`.
pub fn rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate <= 1e9 => Ok(rate),
        _ => Err(format!("'{text}' is not a number above 0 (at most 1e9)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_finite_and_bounded() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["inf", "-1", "NaN", "1e30", "x", "86401"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        assert!(positive_seconds("0").is_err());
        assert_eq!(idle_timeout("0"), Ok(IdleTimeout(None)));
        assert_eq!(
            idle_timeout("2.5"),
            Ok(IdleTimeout(Some(Duration::from_millis(2500))))
        );
    }

    #[test]
    fn scenarios_name_swarms_and_chaos() {
        use clap::builder::TypedValueParser;
        let command = clap::Command::new("test");
        let parse = |name: &str| scenario().parse_ref(&command, None, std::ffi::OsStr::new(name));
        assert_eq!(
            parse("room-chat").unwrap(),
            BotsScenario::Swarm(iomodels_chat::Scenario::RoomChat)
        );
        assert_eq!(
            parse("flood").unwrap(),
            BotsScenario::Chaos(iomodels_chat::ChaosScenario::Flood)
        );
        assert!(parse("stampede").is_err());
    }

    #[test]
    fn addresses_and_rates() {
        assert_eq!(addr("127.0.0.1:9").unwrap().port(), 9);
        assert!(addr("localhost:seven")
            .unwrap_err()
            .contains("not an address"));
        assert!(rate("inf").is_err() && rate("0").is_err() && rate("NaN").is_err());
        assert_eq!(rate("2.5"), Ok(2.5));
    }
}
