//! Server configuration and the list of models.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// A socket I/O model: one driver each. The set depends on the platform: Linux has the
/// kin of the book's models, Windows the book's own Winsock models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Model {
    /// Blocking sockets, a thread per connection.
    Blocking,
    /// Non-blocking sockets swept by one thread.
    Polling,
    /// select(2) on Linux, Winsock `select` on Windows.
    Select,
    /// poll(2).
    #[cfg(target_os = "linux")]
    Poll,
    /// Signal-driven I/O (O_ASYNC, F_SETSIG, a real-time signal per event).
    #[cfg(target_os = "linux")]
    Signal,
    /// epoll(7), one instance per worker.
    #[cfg(target_os = "linux")]
    Epoll,
    /// io_uring completions, one ring per worker.
    #[cfg(target_os = "linux")]
    Uring,
    /// `WSAPoll`: an array of `WSAPOLLFD`, Winsock's poll.
    #[cfg(windows)]
    WsaPoll,
    /// `WSAAsyncSelect`: network events as window messages.
    #[cfg(windows)]
    AsyncSelect,
    /// `WSAEventSelect`: network events as event objects, waited on 64 at a time.
    #[cfg(windows)]
    EventSelect,
    /// Overlapped `WSARecv`/`WSASend` completed through event objects.
    #[cfg(windows)]
    OverlappedEvent,
    /// Overlapped `WSARecv`/`WSASend` completed by completion routines in an alertable wait.
    #[cfg(windows)]
    OverlappedRoutine,
    /// I/O completion ports: pre-posted `AcceptEx`, a pool of workers.
    #[cfg(windows)]
    Iocp,
}

impl Model {
    /// Every model of this platform, from the simplest to the most scalable.
    #[cfg(target_os = "linux")]
    pub const ALL: &'static [Model] = &[
        Model::Blocking,
        Model::Polling,
        Model::Select,
        Model::Poll,
        Model::Signal,
        Model::Epoll,
        Model::Uring,
    ];

    /// Every model of this platform, from the simplest to the most scalable.
    #[cfg(windows)]
    pub const ALL: &'static [Model] = &[
        Model::Blocking,
        Model::Polling,
        Model::Select,
        Model::WsaPoll,
        Model::AsyncSelect,
        Model::EventSelect,
        Model::OverlappedEvent,
        Model::OverlappedRoutine,
        Model::Iocp,
    ];

    /// The models built to scale on this platform (what a comparison of the best runs).
    #[cfg(target_os = "linux")]
    pub const SCALABLE: &'static [Model] = &[Model::Epoll, Model::Uring];

    /// The models built to scale on this platform (what a comparison of the best runs).
    #[cfg(windows)]
    pub const SCALABLE: &'static [Model] = &[Model::Iocp];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Model::Blocking => "blocking",
            Model::Polling => "polling",
            Model::Select => "select",
            #[cfg(target_os = "linux")]
            Model::Poll => "poll",
            #[cfg(target_os = "linux")]
            Model::Signal => "signal",
            #[cfg(target_os = "linux")]
            Model::Epoll => "epoll",
            #[cfg(target_os = "linux")]
            Model::Uring => "uring",
            #[cfg(windows)]
            Model::WsaPoll => "wsapoll",
            #[cfg(windows)]
            Model::AsyncSelect => "asyncselect",
            #[cfg(windows)]
            Model::EventSelect => "eventselect",
            #[cfg(windows)]
            Model::OverlappedEvent => "overlapped-event",
            #[cfg(windows)]
            Model::OverlappedRoutine => "overlapped-routine",
            #[cfg(windows)]
            Model::Iocp => "iocp",
        }
    }

    /// One line on how the model works.
    pub fn description(self) -> &'static str {
        match self {
            #[cfg(target_os = "linux")]
            Model::Blocking => "blocking sockets, one reader and one writer thread per connection",
            #[cfg(target_os = "linux")]
            Model::Polling => "non-blocking sockets swept by one thread; sleeps 1 ms after an idle sweep",
            #[cfg(target_os = "linux")]
            Model::Select => "select(2) over fd_sets; descriptors at or above FD_SETSIZE (1024) are refused",
            #[cfg(target_os = "linux")]
            Model::Poll => "poll(2) over an array of pollfd, rebuilt only when interest changes",
            #[cfg(target_os = "linux")]
            Model::Signal => "O_ASYNC + F_SETSIG: the kernel queues a real-time signal per event, read from a signalfd",
            #[cfg(target_os = "linux")]
            Model::Epoll => "edge-triggered epoll, one instance and one SO_REUSEPORT listener per worker",
            #[cfg(target_os = "linux")]
            Model::Uring => "io_uring: accepts into direct descriptors, multishot receive, provided-buffer ring, owned sends; a ring per worker, more past the descriptor limit",
            #[cfg(windows)]
            Model::Blocking => "blocking recv/send, one reader and one writer thread per connection",
            #[cfg(windows)]
            Model::Polling => "ioctlsocket(FIONBIO) sockets swept by one thread; Sleep(1) after an idle sweep",
            #[cfg(windows)]
            Model::Select => "select over counted fd_sets sized for every socket; past the set size connections are refused",
            #[cfg(windows)]
            Model::WsaPoll => "WSAPoll over an array of WSAPOLLFD, rebuilt only when interest changes",
            #[cfg(windows)]
            Model::AsyncSelect => "WSAAsyncSelect: FD_READ/FD_WRITE/FD_CLOSE as messages to a message-only window",
            #[cfg(windows)]
            Model::EventSelect => "WSAEventSelect: an event per socket, waited 64 at a time by a thread per 63 sockets",
            #[cfg(windows)]
            Model::OverlappedEvent => "overlapped WSARecv/WSASend, completions signalled through event objects waited 64 at a time",
            #[cfg(windows)]
            Model::OverlappedRoutine => "overlapped WSARecv/WSASend, completion routines run by an alertable wait on one thread",
            #[cfg(windows)]
            Model::Iocp => "I/O completion port: pre-posted AcceptEx, owned buffers, a pool of workers on GetQueuedCompletionStatusEx",
        }
    }

    /// The book's Windows model this one is, or corresponds to.
    pub fn windows_original(self) -> &'static str {
        match self {
            Model::Blocking => "blocking sockets",
            Model::Polling => "ioctlsocket(FIONBIO) loop",
            Model::Select => "select",
            #[cfg(target_os = "linux")]
            Model::Poll => "WSAPoll",
            #[cfg(target_os = "linux")]
            Model::Signal => "WSAAsyncSelect",
            #[cfg(target_os = "linux")]
            Model::Epoll => "WSAEventSelect",
            #[cfg(target_os = "linux")]
            Model::Uring => "overlapped I/O and IOCP",
            #[cfg(windows)]
            Model::WsaPoll => "WSAPoll",
            #[cfg(windows)]
            Model::AsyncSelect => "WSAAsyncSelect",
            #[cfg(windows)]
            Model::EventSelect => "WSAEventSelect",
            #[cfg(windows)]
            Model::OverlappedEvent => "overlapped I/O with events",
            #[cfg(windows)]
            Model::OverlappedRoutine => "overlapped I/O with completion routines",
            #[cfg(windows)]
            Model::Iocp => "IOCP",
        }
    }

    /// Whether `--workers` means anything for this model.
    pub fn has_workers(self) -> bool {
        #[cfg(target_os = "linux")]
        return self != Model::Blocking;
        #[cfg(windows)]
        return self == Model::Iocp;
    }

    /// The worker count used when none is given.
    ///
    /// The single-threaded loops of the book (polling, select, poll, signal, and on Windows
    /// every model but IOCP) keep one thread. epoll and io_uring default to one worker per
    /// core: every worker runs its own event loop and never blocks, so a second thread per
    /// core only adds context switches. IOCP takes the book's two per core: its workers
    /// run the handler, which may block.
    pub fn default_workers(self) -> usize {
        let cores = || {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        };
        match self {
            #[cfg(target_os = "linux")]
            Model::Epoll | Model::Uring => cores(),
            #[cfg(windows)]
            Model::Iocp => 2 * cores(),
            _ => 1,
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given was not a model.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown model '{name}'; the models are: {}", Model::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownModel {
    /// What was asked for.
    pub name: String,
}

impl FromStr for Model {
    type Err = UnknownModel;
    fn from_str(s: &str) -> Result<Model, UnknownModel> {
        Model::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownModel { name: s.to_owned() })
    }
}

/// The rings a uring server runs on direct descriptors (see [`UringDescriptors`]), as
/// [`crate::Server::direct_rings`] reports them once it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectRings {
    /// Rings in all, each on a thread of its own.
    pub rings: usize,
    /// The rings that always accept: one per worker. The others accept only while every
    /// one of these is full.
    pub workers: usize,
    /// Slots of each ring's table: the connections it can hold.
    pub slots: u32,
}

/// [`Config::max_connections`] unless set otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;

/// How a server runs. Start from [`Config::new`] and change what differs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The driver.
    pub model: Model,
    /// Where to listen. Port 0 picks a free port (see [`crate::Server::local_addr`]).
    pub addr: SocketAddr,
    /// Worker threads; `None` for [`Model::default_workers`].
    pub workers: Option<usize>,
    /// Sessions open at once; connections past it are refused.
    pub max_connections: usize,
    /// Close sessions that show no activity for this long. Off when `None`.
    ///
    /// Activity is bytes from the peer, bytes written to it, or the peer acknowledging
    /// earlier output (it is reading, even while back-pressure stops the server from
    /// reading it or a full socket buffer from writing more). The drivers look every
    /// quarter of the timeout (at most every second), so a session is closed between one
    /// and one and a quarter timeouts after its last activity; one whose peer has not
    /// taken all its output yet, after two (TCP shows a slow reader's progress only when
    /// its receive window reopens, which can take as long as the timeout). The blocking
    /// model sees a stalled peer only when a `recv` or `send` times out: within two.
    pub idle_timeout: Option<Duration>,
    /// Bytes a session may have queued for sending before it is closed with
    /// [`crate::CloseReason::SendQueueFull`]. At most 4 GiB: a larger value acts as 4 GiB.
    pub send_queue_limit: usize,
    /// Unconsumed input a session may keep before it is closed with
    /// [`crate::CloseReason::InputOverflow`].
    pub input_limit: usize,
    /// How long a graceful shutdown waits for queued output before closing anyway.
    pub shutdown_timeout: Duration,
    /// How long a graceful close keeps reading (and discarding) what the peer still sends
    /// after everything queued was sent with a FIN behind it, waiting for the peer's own
    /// FIN. A close with unread input would reset the connection and could lose the end
    /// of the output; the linger ends earlier once the peer has acknowledged every byte
    /// and fallen silent for 100 ms, and never outlasts a shutdown's deadline.
    pub linger_timeout: Duration,
    /// The listen backlog.
    pub backlog: i32,
    /// Stack size of the blocking model's per-connection threads.
    pub thread_stack: usize,
    /// How the uring model sets up its rings (the best the kernel accepts by default).
    pub uring_setup: UringSetup,
    /// Whether the uring model accepts connections into io_uring direct descriptors,
    /// which do not count against the open-file limit (by default when the kernel can).
    pub uring_descriptors: UringDescriptors,
}

/// Which descriptors the uring model accepts connections into.
///
/// A direct descriptor is a slot of a ring's own table of files (a "fixed file"), not of
/// the process's descriptor table, so it does not count against `RLIMIT_NOFILE`: the
/// kernel caps each ring's table at the soft limit, but the tables of several rings add
/// up, so one process can hold several times the limit in connections. With direct
/// descriptors the model starts a ring per worker ([`Config::worker_count`]), and more
/// rings (each on a thread of its own, at most 64 in all) when [`Config::max_connections`]
/// needs more slots than the workers' tables hold at the soft limit: those extra rings
/// accept only while every worker's table is full, so below that they cost nothing. The
/// connections the tables can hold are the cap: connections past it wait in the listen
/// backlog until a slot frees (never accepted and dropped).
///
/// What a direct descriptor lacks: it has no number in the process's table, so every
/// call on it goes through the ring: `IORING_OP_SHUTDOWN`, `IORING_OP_CLOSE`, `SO_LINGER`
/// through `IORING_OP_URING_CMD` (Linux 6.7); `TCP_NODELAY` is inherited from the
/// listener; the peer's address comes from the accept itself; and `getsockopt(TCP_INFO)`
/// is not available (io_uring passes on only `SOL_SOCKET` options), so the idle timeout
/// and lingering closes read the unacknowledged bytes (`SIOCOUTQ`) instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UringDescriptors {
    /// Direct descriptors if the kernel supports everything the driver does with them
    /// (probed once per process; Linux 6.7), else normal descriptors (logged at debug).
    #[default]
    Auto,
    /// Direct descriptors, or fail to start ([`crate::Error::Unsupported`]).
    Direct,
    /// Normal descriptors, one per connection, under the open-file limit.
    Normal,
}

impl UringDescriptors {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            UringDescriptors::Auto => "auto",
            UringDescriptors::Direct => "direct",
            UringDescriptors::Normal => "normal",
        }
    }
}

/// The name given was not a [`UringDescriptors`] value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown descriptor kind '{name}'; the kinds are: auto, direct, normal")]
pub struct UnknownDescriptors {
    /// What was asked for.
    pub name: String,
}

impl FromStr for UringDescriptors {
    type Err = UnknownDescriptors;
    fn from_str(s: &str) -> Result<UringDescriptors, UnknownDescriptors> {
        [
            UringDescriptors::Auto,
            UringDescriptors::Direct,
            UringDescriptors::Normal,
        ]
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or_else(|| UnknownDescriptors { name: s.to_owned() })
    }
}

/// How the uring model sets up each worker's ring.
///
/// The default takes the best mode the kernel accepts and falls back from there; the other
/// values force a fallback, so that it can be tested (and compared) on a kernel that
/// would never choose it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UringSetup {
    /// SINGLE_ISSUER + DEFER_TASKRUN (Linux 6.1) if the kernel accepts it, else
    /// [`UringSetup::CoopTaskrun`], else [`UringSetup::Plain`].
    #[default]
    Best,
    /// COOP_TASKRUN (Linux 5.19): completion work runs at the next kernel entry, without
    /// interrupting the thread; completions may arrive in any `io_uring_enter`.
    CoopTaskrun,
    /// No setup flags: completion work may interrupt the thread at any time.
    Plain,
}

impl Config {
    /// Defaults for `model` listening on `addr`.
    pub fn new(model: Model, addr: SocketAddr) -> Config {
        Config {
            model,
            addr,
            workers: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: None,
            send_queue_limit: 1024 * 1024,
            input_limit: 1024 * 1024,
            shutdown_timeout: Duration::from_secs(5),
            linger_timeout: Duration::from_secs(2),
            backlog: 4096,
            thread_stack: 128 * 1024,
            uring_setup: UringSetup::Best,
            uring_descriptors: UringDescriptors::Auto,
        }
    }

    /// The worker count in force.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| self.model.default_workers())
            .max(1)
    }

    /// Output above this stops reading from the same connection until it drains below
    /// [`Config::low_water`]: an echo never outgrows the send queue on its own.
    pub fn high_water(&self) -> usize {
        self.send_queue_limit / 4
    }

    /// Output below this lets a paused connection read again.
    pub fn low_water(&self) -> usize {
        self.send_queue_limit / 16
    }
}
