//! What an exporter reads its metrics from, and the registry built from it.

use crate::catalog::{Process, CHAT, ENGINE, PROCESS};
use crate::table::TableCollector;
use iomodels_chat::{ChatServer, ChatServerHandle, Mode};
use iomodels_engine::{Handler, Model, Server, ServerHandle};
use prometheus_client::registry::Registry;
use std::fmt;

/// The server whose counters an [`Exporter`](crate::Exporter) serves. Each scrape reads
/// them afresh through the handle; the exporter keeps the handle, not the server.
#[derive(Clone)]
#[non_exhaustive]
pub enum Source {
    /// An engine server (the echo server, or any handler): the engine's counters and the
    /// process's.
    Engine {
        /// The server's I/O model, the `model` label.
        model: Model,
        /// The server.
        server: ServerHandle,
    },
    /// A chat server: the engine's counters, the chat's and the process's.
    Chat {
        /// The server's I/O model, the `model` label.
        model: Model,
        /// Where its game logic runs, the `mode` label of the chat's metrics.
        mode: Mode,
        /// The server.
        server: ChatServerHandle,
    },
}

impl Source {
    /// The counters of an engine server.
    pub fn engine<H: Handler>(server: &Server<H>) -> Source {
        Source::Engine {
            model: server.config().model,
            server: server.handle(),
        }
    }

    /// The counters of a chat server whose logic runs in `mode` (the [`ChatServer`] does
    /// not say).
    pub fn chat(server: &ChatServer, mode: Mode) -> Source {
        Source::Chat {
            model: server.config().model,
            mode,
            server: server.handle(),
        }
    }

    /// The registry a scrape encodes: every metric named `iomodels_...`, labelled `model`,
    /// the chat's labelled `mode` too.
    pub(crate) fn registry(self) -> Registry {
        let model = match &self {
            Source::Engine { model, .. } | Source::Chat { model, .. } => model.name(),
        };
        let mut registry = Registry::with_prefix_and_labels(
            "iomodels",
            [("model".into(), model.into())].into_iter(),
        );
        match self {
            Source::Engine { server, .. } => {
                registry.register_collector(Box::new(TableCollector::new(
                    "engine",
                    ENGINE,
                    move || server.stats(),
                )));
            }
            Source::Chat { mode, server, .. } => {
                let engine = server.clone();
                registry.register_collector(Box::new(TableCollector::new(
                    "engine",
                    ENGINE,
                    move || engine.stats(),
                )));
                registry
                    .sub_registry_with_label(("mode".into(), mode.name().into()))
                    .register_collector(Box::new(TableCollector::new("chat", CHAT, move || {
                        server.chat_stats()
                    })));
            }
        }
        registry.register_collector(Box::new(TableCollector::new(
            "process",
            PROCESS,
            Process::now,
        )));
        registry
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Engine { model, .. } => f.debug_struct("Engine").field("model", model).finish(),
            Source::Chat { model, mode, .. } => f
                .debug_struct("Chat")
                .field("model", model)
                .field("mode", mode)
                .finish(),
        }
    }
}
