//! What is measured: our models and the peers.

use crate::Error;
use iomodels_engine::Model;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A peer echo server from `iomodels-peers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// tokio, current_thread runtime.
    TokioCurrent,
    /// tokio, multi_thread runtime with as many workers as ours.
    TokioMulti,
    /// monoio, thread-per-core (Linux only: monoio has no Windows driver).
    Monoio,
}

impl Peer {
    /// Every peer this platform can run.
    #[cfg(target_os = "linux")]
    pub const ALL: &'static [Peer] = &[Peer::TokioCurrent, Peer::TokioMulti, Peer::Monoio];
    /// Every peer this platform can run: monoio has no Windows driver.
    #[cfg(not(target_os = "linux"))]
    pub const ALL: &'static [Peer] = &[Peer::TokioCurrent, Peer::TokioMulti];

    /// Every peer there is, whether this platform runs it or not.
    const NAMED: [Peer; 3] = [Peer::TokioCurrent, Peer::TokioMulti, Peer::Monoio];

    /// The name `iomodels-peers --server` takes.
    pub fn name(self) -> &'static str {
        match self {
            Peer::TokioCurrent => "tokio-current",
            Peer::TokioMulti => "tokio-multi",
            Peer::Monoio => "monoio",
        }
    }

    /// Whether `--workers` applies.
    pub fn has_workers(self) -> bool {
        !matches!(self, Peer::TokioCurrent)
    }
}

/// A server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One of our models, run by `iomodels serve`.
    Model(Model),
    /// A peer, run by `iomodels-peers`.
    Peer(Peer),
}

impl Target {
    /// The name shown in the report.
    pub fn name(self) -> &'static str {
        match self {
            Target::Model(model) => model.name(),
            Target::Peer(peer) => peer.name(),
        }
    }

    /// Whether it is one of ours.
    pub fn is_model(self) -> bool {
        matches!(self, Target::Model(_))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse `--models`: `all`, `none`, or a comma-separated list of model names.
pub fn parse_models(list: &str) -> Result<Vec<Model>, Error> {
    match list.trim() {
        "all" => Ok(Model::ALL.to_vec()),
        "none" | "" => Ok(Vec::new()),
        list => list
            .split(',')
            .map(str::trim)
            .map(|name| {
                Model::ALL
                    .iter()
                    .copied()
                    .find(|model| model.name() == name)
                    .ok_or_else(|| Error::UnknownModel(name.to_string()))
            })
            .collect(),
    }
}

/// Parse `--peers`: `all` (the peers this platform runs), `none`, or a comma-separated list
/// of peer names. A peer this platform cannot run is [`Error::PeerUnavailable`].
pub fn parse_peers(list: &str) -> Result<Vec<Peer>, Error> {
    match list.trim() {
        "all" => Ok(Peer::ALL.to_vec()),
        "none" | "" => Ok(Vec::new()),
        list => list
            .split(',')
            .map(str::trim)
            .map(|name| {
                let peer = Peer::NAMED
                    .into_iter()
                    .find(|peer| peer.name() == name)
                    .ok_or_else(|| Error::UnknownPeer(name.to_string()))?;
                if Peer::ALL.contains(&peer) {
                    Ok(peer)
                } else {
                    Err(Error::PeerUnavailable(name.to_string()))
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_reject_unknown_names() {
        assert_eq!(parse_models("all").unwrap(), Model::ALL);
        #[cfg(target_os = "linux")]
        assert_eq!(
            parse_models("epoll, uring").unwrap(),
            vec![Model::Epoll, Model::Uring]
        );
        assert_eq!(
            parse_models("select, blocking").unwrap(),
            vec![Model::Select, Model::Blocking]
        );
        assert!(matches!(parse_models("kqueue"), Err(Error::UnknownModel(n)) if n == "kqueue"));
        assert_eq!(parse_peers("none").unwrap(), Vec::<Peer>::new());
        assert_eq!(parse_peers("all").unwrap(), Peer::ALL);
        assert!(matches!(parse_peers("actix"), Err(Error::UnknownPeer(_))));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn monoio_is_a_peer_on_linux() {
        assert_eq!(parse_peers("monoio").unwrap(), vec![Peer::Monoio]);
    }

    #[test]
    #[cfg(not(target_os = "linux"))]
    fn monoio_is_refused_off_linux() {
        let error = parse_peers("tokio-current, monoio").unwrap_err();
        assert!(matches!(&error, Error::PeerUnavailable(n) if n == "monoio"));
        assert!(error.to_string().contains("only on Linux"), "{error}");
    }
}
