//! # iomodels-metrics
//!
//! Prometheus metrics for iomodels servers, kept out of the engine: an [`Exporter`] serves
//! `GET /metrics` on an address of its own, reading the engine's counters
//! ([`iomodels_engine::Stats`]), the chat's ([`iomodels_chat::ChatStats`]) and the process's
//! CPU time and memory at every scrape, through prometheus-client's
//! [`Collector`](prometheus_client::collector::Collector): nothing is counted twice.
//!
//! ```no_run
//! use iomodels_chat::{engine_config, start, AcceptAll, ChatConfig};
//! use iomodels_engine::Model;
//! use iomodels_metrics::{Exporter, Source};
//! use std::sync::Arc;
//!
//! let config = engine_config(Model::SCALABLE[0], "127.0.0.1:7001".parse().unwrap());
//! let chat = ChatConfig::default();
//! let mode = chat.mode;
//! let server = start(config, chat, Arc::new(AcceptAll)).unwrap();
//! let exporter = Exporter::start("127.0.0.1:9100".parse().unwrap(), Source::chat(&server, mode))?;
//! // curl http://127.0.0.1:9100/metrics
//! drop(exporter);
//! server.stop().unwrap();
//! # Ok::<(), iomodels_metrics::Error>(())
//! ```
//!
//! ## The metrics
//! Every name starts with `iomodels_` and every sample has a `model` label (the I/O
//! model); the chat's have a `mode` label too (`logic` or `io`).
//!
//! | metric | type | from |
//! |---|---|---|
//! | `iomodels_sessions_open` | gauge | [`Stats::active`](iomodels_engine::Stats::active) |
//! | `iomodels_sessions_accepted_total` | counter | [`Stats::accepted`](iomodels_engine::Stats::accepted) |
//! | `iomodels_connections_refused_total` | counter | [`Stats::refused`](iomodels_engine::Stats::refused) |
//! | `iomodels_sessions_closed_total{reason}` | counter | [`Stats::closed`](iomodels_engine::Stats::closed), `reason` one of the [`CloseReason::name`](iomodels_engine::CloseReason::name)s |
//! | `iomodels_received_bytes_total` | counter | [`Stats::bytes_in`](iomodels_engine::Stats::bytes_in) |
//! | `iomodels_sent_bytes_total` | counter | [`Stats::bytes_out`](iomodels_engine::Stats::bytes_out) |
//! | `iomodels_received_messages_total` | counter | [`Stats::messages_in`](iomodels_engine::Stats::messages_in) |
//! | `iomodels_sent_messages_total` | counter | [`Stats::messages_out`](iomodels_engine::Stats::messages_out) |
//! | `iomodels_send_queue_peak_bytes` | gauge | [`Stats::send_queue_peak`](iomodels_engine::Stats::send_queue_peak) |
//! | `iomodels_chat_logins_total` | counter | [`ChatStats::logins`](iomodels_chat::ChatStats::logins) |
//! | `iomodels_chat_chats_total` | counter | [`ChatStats::chats`](iomodels_chat::ChatStats::chats) |
//! | `iomodels_chat_protocol_errors_total` | counter | [`ChatStats::protocol_errors`](iomodels_chat::ChatStats::protocol_errors) |
//! | `iomodels_chat_truncated_total` | counter | [`ChatStats::truncated`](iomodels_chat::ChatStats::truncated) |
//! | `iomodels_chat_requests_total` | counter | [`ChatStats::requests`](iomodels_chat::ChatStats::requests) |
//! | `iomodels_chat_requests_dropped_total` | counter | [`ChatStats::dropped`](iomodels_chat::ChatStats::dropped) |
//! | `iomodels_chat_answers_total{packet,request,result}` | counter | [`ChatStats::answered`](iomodels_chat::ChatStats::answered), per [`RequestKind`](iomodels_chat::RequestKind) and result code |
//! | `iomodels_chat_sessions_anonymous` | gauge | [`ChatStats::anonymous`](iomodels_chat::ChatStats::anonymous) |
//! | `iomodels_chat_requests_pending` | gauge | [`ChatStats::pending`](iomodels_chat::ChatStats::pending) |
//! | `iomodels_chat_logins_verifying` | gauge | [`ChatStats::verifying`](iomodels_chat::ChatStats::verifying) |
//! | `iomodels_chat_rate_limited_total` | counter | [`ChatStats::rate_limited`](iomodels_chat::ChatStats::rate_limited) |
//! | `iomodels_chat_login_timeouts_total` | counter | [`ChatStats::login_timeouts`](iomodels_chat::ChatStats::login_timeouts) |
//! | `iomodels_chat_over_capacity_total` | counter | [`ChatStats::over_capacity`](iomodels_chat::ChatStats::over_capacity) |
//! | `iomodels_process_cpu_seconds_total` | counter | user plus system CPU time ([`iomodels_sys::process::usage`]) |
//! | `iomodels_process_threads` | gauge | threads ([`iomodels_sys::process::usage`]) |
//! | `iomodels_process_resident_memory_bytes` | gauge | resident set, Windows' working set ([`iomodels_sys::process::memory`]) |
//! | `iomodels_process_peak_resident_memory_bytes` | gauge | its peak ([`iomodels_sys::process::memory`]) |
//!
//! The chat metrics appear only for a [`Source::Chat`]. A process value the system will not
//! give has no sample.
//!
//! ## HTTP
//! `GET` (or `HEAD`) `/metrics` answers `200` in the classic Prometheus text format
//! (`text/plain; version=0.0.4`), or in OpenMetrics 1.0 when the request's `Accept` names
//! `application/openmetrics-text`, as Prometheus's does. Another path is `404`, another
//! method `405`, a malformed request `400`, a request head over 8 KiB `431`. One request per
//! connection. Each connection has a thread of its own, at most [`MAX_CONNECTIONS`] at once
//! (one more is answered `503`), and 5 s to send its request head.
#![forbid(unsafe_code)]

mod catalog;
mod error;
mod exporter;
mod http;
mod source;
mod table;

pub use error::Error;
pub use exporter::{Exporter, MAX_CONNECTIONS};
pub use source::Source;
