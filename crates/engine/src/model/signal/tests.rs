//! Unit tests of the signal selector: merging, queue overflow, SIGIO, wake-ups, masks.
use super::*;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

/// Tests that expect no overflow must not run while another one shrinks the queue.
static QUEUE_LIMIT: Mutex<()> = Mutex::new(());

fn watched_pairs(selector: &mut Signal, count: usize) -> Vec<(UnixStream, UnixStream)> {
    let pairs: Vec<_> = (0..count).map(|_| UnixStream::pair().unwrap()).collect();
    for (token, (ours, _)) in pairs.iter().enumerate() {
        selector
            .register(ours.as_raw_fd(), token, Interest::BOTH)
            .unwrap();
    }
    pairs
}

fn readable_tokens(events: &[Event]) -> Vec<usize> {
    let mut tokens: Vec<usize> = events
        .iter()
        .filter(|e| e.readable)
        .map(|e| e.token)
        .collect();
    tokens.sort_unstable();
    tokens
}

#[test]
fn signals_name_their_descriptor_and_merge() {
    let _lock = QUEUE_LIMIT.lock().unwrap_or_else(|p| p.into_inner());
    let mut selector = Signal::new().unwrap();
    let pairs = watched_pairs(&mut selector, 3);
    // A write to a peer queues the signal before it returns.
    (&pairs[0].1).write_all(b"a").unwrap();
    (&pairs[0].1).write_all(b"b").unwrap();
    (&pairs[2].1).write_all(b"c").unwrap();
    let mut events = Vec::new();
    selector
        .select(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(selector.overflows, 0);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(readable_tokens(&events), [0, 2]);
    events.clear();
    selector.select(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn a_full_signal_queue_means_a_rescan() {
    let _lock = QUEUE_LIMIT.lock().unwrap_or_else(|p| p.into_inner());
    let mut selector = Signal::new().unwrap();
    let pairs = watched_pairs(&mut selector, 50);
    let mut saved = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `saved` is a valid rlimit to fill in, then to read back.
    unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut saved) };
    let tiny = libc::rlimit {
        rlim_cur: 1,
        rlim_max: saved.rlim_max,
    };
    // SAFETY: lowering the soft limit of this process is always allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_SIGPENDING, &tiny) };
    for (_, theirs) in &pairs {
        (&*theirs).write_all(b"x").unwrap();
    }
    // SAFETY: as above; this restores the saved limit.
    unsafe { libc::setrlimit(libc::RLIMIT_SIGPENDING, &saved) };
    let mut events = Vec::new();
    selector
        .select(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    assert!(
        selector.overflows > 0,
        "the queue of one signal did not overflow"
    );
    assert_eq!(readable_tokens(&events), (0..50).collect::<Vec<_>>());
}

#[test]
fn a_plain_sigio_means_a_rescan() {
    let mut selector = Signal::new().unwrap();
    let _pairs = watched_pairs(&mut selector, 5);
    // SAFETY: sends SIGIO to this thread, which blocks it (Signal::new).
    unsafe { libc::tgkill(libc::getpid(), libc::gettid(), libc::SIGIO) };
    let mut events = Vec::new();
    selector
        .select(&mut events, Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(readable_tokens(&events), [0, 1, 2, 3, 4]);
    assert!(events.iter().all(|e| e.writable));
}

#[test]
fn a_wake_from_another_thread_ends_the_wait() {
    let mut selector = Signal::new().unwrap();
    let waker = selector.waker();
    let other = std::thread::spawn(move || waker.wake());
    let mut events = Vec::new();
    let start = std::time::Instant::now();
    selector
        .select(&mut events, Some(Duration::from_secs(20)))
        .unwrap();
    other.join().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the wake was lost"
    );
    assert!(events.is_empty(), "{events:?}");
}

fn blocked_here(signo: c_int) -> bool {
    let mut mask = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: a null new mask only reads the current one into `mask`.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), mask.as_mut_ptr());
        libc::sigismember(mask.as_ptr(), signo) == 1
    }
}

#[test]
fn the_mask_stays_on_the_worker_thread() {
    let (ask, asked) = std::sync::mpsc::channel::<()>();
    let neighbour = std::thread::spawn(move || {
        asked.recv().unwrap();
        blocked_here(io_signal()) || blocked_here(libc::SIGIO)
    });
    let selector = Signal::new().unwrap();
    assert!(blocked_here(io_signal()) && blocked_here(libc::SIGIO));
    ask.send(()).unwrap();
    assert!(
        !neighbour.join().unwrap(),
        "the mask leaked to another thread"
    );
    drop(selector);
    assert!(!blocked_here(io_signal()) && !blocked_here(libc::SIGIO));
    // SAFETY: all-zero is a valid sigaction; a null new action only reads the current one.
    let action = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        libc::sigaction(io_signal(), std::ptr::null(), &mut action);
        action
    };
    assert_ne!(
        action.sa_sigaction,
        libc::SIG_DFL,
        "a process-directed copy would kill"
    );
}
