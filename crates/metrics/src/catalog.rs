//! Every metric exported: one line each, mapping a snapshot field to a metric.
//!
//! Names are written without the `iomodels_` prefix (the registry adds it) and without the
//! `_total` of counters (the encoder adds it). A new counter of `Stats` or `ChatStats` is
//! one more line here (`Metric::counter`, or `Metric::gauge` for a level such as a queue's
//! depth); a family (a counter per reason, per packet) is a `Metric::counters` line whose
//! closure adds one sample per label set, labels beside `model` (and `mode`):
//!
//! ```text
//! Metric::counters("chat_answers", "Answers, by packet and result.", |s, out| {
//!     for (packet, result, n) in s.answers() {
//!         out.add(&[("packet", &packet.to_string()), ("result", result.name())], n);
//!     }
//! }),
//! ```
//!
//! Keep the README's list and the crate doc's table in step.

use crate::table::Metric;
use iomodels_chat::{ChatStats, RequestKind};
use iomodels_engine::{CloseReason, Stats};
use iomodels_proto::ResultCode;

/// The engine's counters ([`Stats`]), labelled `model`.
#[rustfmt::skip] // One line per metric.
pub(crate) const ENGINE: &[Metric<Stats>] = &[
    Metric::gauge("sessions_open", "Sessions open now.", |s| s.active),
    Metric::counter("sessions_accepted", "Connections that became sessions.", |s| s.accepted),
    Metric::counter("connections_refused", "Connections accepted and closed at once, never sessions.", |s| s.refused),
    Metric::counters("sessions_closed", "Sessions closed, by reason.", |s, out| {
        for reason in CloseReason::ALL {
            out.add(&[("reason", reason.name())], s.closed_for(reason));
        }
    }),
    Metric::counter("received_bytes", "Bytes received.", |s| s.bytes_in),
    Metric::counter("sent_bytes", "Bytes written to sockets.", |s| s.bytes_out),
    Metric::counter("received_messages", "Reads delivered to the handler.", |s| s.messages_in),
    Metric::counter("sent_messages", "Messages queued for sending.", |s| s.messages_out),
    Metric::gauge("send_queue_peak_bytes", "The most bytes one session's send queue has held since the start.", |s| s.send_queue_peak),
];

/// The chat's counters ([`ChatStats`]), labelled `model` and `mode`.
#[rustfmt::skip] // One line per metric.
pub(crate) const CHAT: &[Metric<ChatStats>] = &[
    Metric::counter("chat_logins", "Successful logins.", |s| s.logins),
    Metric::counter("chat_chats", "Chats accepted and broadcast.", |s| s.chats),
    Metric::counter("chat_protocol_errors", "Sessions closed for malformed input.", |s| s.protocol_errors),
    Metric::counter("chat_truncated", "Sessions whose peer closed in the middle of a packet.", |s| s.truncated),
    Metric::counter("chat_requests", "Requests decoded.", |s| s.requests),
    Metric::counter("chat_requests_dropped", "Requests decoded after shutdown began, dropped unanswered.", |s| s.dropped),
    Metric::counters("chat_answers", "Requests answered, by request packet and result code.", |s, out| {
        for kind in RequestKind::ALL {
            for code in ResultCode::ALL {
                out.add(&[("packet", &kind.packet_id().to_string()), ("request", kind.name()), ("result", &code.code().to_string())], s.answered(kind, code));
            }
        }
    }),
    Metric::gauge("chat_sessions_anonymous", "Sessions open now that have not logged in.", |s| s.anonymous),
    Metric::gauge("chat_requests_pending", "Requests read and not yet handled (the logic queue's depth, with logins waiting for their password check and what waits behind them).", |s| s.pending),
    Metric::gauge("chat_logins_verifying", "Logins waiting for their password check.", |s| s.verifying),
    Metric::counter("chat_rate_limited", "Sessions closed for going over a rate limit.", |s| s.rate_limited),
    Metric::counter("chat_login_timeouts", "Sessions closed for not logging in by the deadline.", |s| s.login_timeouts),
    Metric::counter("chat_over_capacity", "Sessions turned away by a cap (the oldest not logged in past --max-anonymous, past --max-per-address).", |s| s.over_capacity),
];

/// This process's CPU time, threads and memory, labelled `model`. A value the system
/// would not give has no sample.
#[rustfmt::skip] // One line per metric, and its sample.
pub(crate) const PROCESS: &[Metric<Process>] = &[
    Metric::counters("process_cpu_seconds", "User and system CPU time of the process, in seconds.", |p, out| {
        if let Some(usage) = p.usage {
            out.add(&[], usage.cpu().as_secs_f64());
        }
    }),
    Metric::gauges("process_threads", "Threads of the process.", |p, out| {
        if let Some(usage) = p.usage {
            out.add(&[], usage.threads);
        }
    }),
    Metric::gauges("process_resident_memory_bytes", "Resident set (Windows: working set) of the process, in bytes.", |p, out| {
        if let Some(memory) = p.memory {
            out.add(&[], memory.resident_kib * 1024);
        }
    }),
    Metric::gauges("process_peak_resident_memory_bytes", "The largest the resident set has been, in bytes.", |p, out| {
        if let Some(memory) = p.memory {
            out.add(&[], memory.peak_resident_kib * 1024);
        }
    }),
];

/// This process's usage and memory at one moment; `None` where the system would not say.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Process {
    usage: Option<iomodels_sys::process::Usage>,
    memory: Option<iomodels_sys::process::Memory>,
}

impl Process {
    /// Read them now.
    pub(crate) fn now() -> Process {
        let pid = std::process::id();
        Process {
            usage: iomodels_sys::process::usage(pid)
                .inspect_err(|e| tracing::debug!(error = %e, "no process CPU time for metrics"))
                .ok(),
            memory: iomodels_sys::process::memory(pid)
                .inspect_err(|e| tracing::debug!(error = %e, "no process memory for metrics"))
                .ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_plain() {
        let mut names: Vec<&str> = ENGINE
            .iter()
            .map(|m| m.name())
            .chain(CHAT.iter().map(|m| m.name()))
            .chain(PROCESS.iter().map(|m| m.name()))
            .collect();
        for name in &names {
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert!(!name.ends_with("_total"), "{name}: the encoder adds _total");
        }
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a name is used twice");
    }

    #[test]
    fn reads_this_process() {
        let process = Process::now();
        assert!(process.usage.is_some());
        assert!(process.memory.is_some_and(|m| m.resident_kib > 0));
    }
}
