//! The provided-buffer ring: the book's memory pool, shared with the kernel.
//!
//! One ring per worker. The kernel picks a free buffer when a multishot receive has data
//! and names it in the completion (`IORING_CQE_F_BUFFER`, buffer id in the upper flag bits).
//! From then on the buffer is ours: [`BufRing::filled`] wraps it in a [`Filled`] token, the
//! worker reads it with [`BufRing::data`] and hands it back with [`BufRing::recycle`], which
//! consumes the token. A token is neither `Clone` nor `Copy`, so a buffer is read only while
//! the kernel cannot write it, and given back once.
//!
//! Memory: `COUNT * SIZE` bytes of anonymous memory per worker, paged in as the kernel uses
//! the buffers (it takes them in ring order, so all of them after a while).

use io_uring::types::BufRingEntry;
use io_uring::Submitter;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

/// The buffer group id every worker's receives use (each ring has its own groups).
pub(super) const GROUP: u16 = 0;

/// A buffer the kernel filled and handed over with a completion. Give it back with
/// [`BufRing::recycle`].
#[derive(Debug)]
#[must_use = "a filled buffer must be recycled or the ring shrinks"]
pub(super) struct Filled {
    id: u16,
    len: u32,
}

/// A ring of `count` buffers of `size` bytes registered as buffer group [`GROUP`].
pub(super) struct BufRing {
    /// `count` ring entries; the kernel reads them and our tail (which overlays the first
    /// entry's reserved field).
    entries: Mapping,
    /// The buffers, `size` bytes each, back to back.
    memory: Mapping,
    count: u16,
    size: u32,
    /// Our producer tail; the kernel sees it after [`BufRing::publish`].
    tail: u16,
    /// Whether [`BufRing::publish`] has work to do.
    dirty: bool,
}

impl BufRing {
    /// Allocate the ring and its buffers and register them with the kernel.
    ///
    /// The registration stays in force until the io_uring is destroyed, so the owner must
    /// drop the ring (its `IoUring`) before this value: see the field order of
    /// [`super::ring::Ring`].
    pub(super) fn new(submitter: &Submitter<'_>, count: u16, size: u32) -> io::Result<BufRing> {
        assert!(
            count.is_power_of_two(),
            "buffer count must be a power of two"
        );
        let entries = Mapping::new(count as usize * std::mem::size_of::<BufRingEntry>())?;
        let memory = Mapping::new(count as usize * size as usize)?;
        let mut ring = BufRing {
            entries,
            memory,
            count,
            size,
            tail: 0,
            dirty: false,
        };
        for id in 0..count {
            ring.push(id);
        }
        ring.publish();
        // SAFETY: `entries` is a page-aligned mapping of `count` ring entries that lives as
        // long as this value, and the owner drops the io_uring (which ends the
        // registration) before this value, as documented above.
        unsafe {
            submitter.register_buf_ring_with_flags(
                ring.entries.ptr.as_ptr() as u64,
                count,
                GROUP,
                0,
            )?;
        }
        Ok(ring)
    }

    /// Take the buffer a receive completion names, if it names one.
    pub(super) fn filled(&self, flags: u32, result: i32) -> Option<Filled> {
        let id = io_uring::cqueue::buffer_select(flags)?;
        debug_assert!(id < self.count);
        let len = u32::try_from(result).unwrap_or(0).min(self.size);
        Some(Filled { id, len })
    }

    /// The bytes the kernel put in a buffer it handed over.
    pub(super) fn data(&self, filled: &Filled) -> &[u8] {
        let offset = filled.id as usize * self.size as usize;
        // SAFETY: `filled` came from a completion, so the kernel took this buffer out of the
        // ring and will not write it until `recycle` puts it back, which needs `&mut self`
        // and so cannot happen while the returned slice lives. The range lies inside
        // `memory` (id < count, len <= size), which is initialised (zeroed by mmap).
        unsafe {
            std::slice::from_raw_parts(self.memory.ptr.as_ptr().add(offset), filled.len as usize)
        }
    }

    /// Give a buffer back to the kernel (visible after the next [`BufRing::publish`]).
    pub(super) fn recycle(&mut self, filled: Filled) {
        self.push(filled.id);
    }

    fn push(&mut self, id: u16) {
        let index = (self.tail & (self.count - 1)) as usize;
        let addr = self.memory.ptr.as_ptr() as u64 + id as u64 * self.size as u64;
        let entry = self.entries.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: `index < count`, so the entry lies inside the mapping. The kernel reads
        // only entries between its head and the published tail; this one is at or after our
        // tail, so it is not read until `publish` (a release store) makes it visible.
        // `set_*` touch addr, len and bid, never the tail overlaid on entry 0.
        unsafe {
            let entry = &mut *entry.add(index);
            entry.set_addr(addr);
            entry.set_len(self.size);
            entry.set_bid(id);
        }
        self.tail = self.tail.wrapping_add(1);
        self.dirty = true;
    }

    /// Never unmap the ring or its buffers: for a ring whose exit left operations in
    /// flight, which the kernel may still complete into them after it closed.
    pub(super) fn leak(&mut self) {
        self.entries.leaked = true;
        self.memory.leaked = true;
    }

    /// Make recycled buffers visible to the kernel. Called once per loop turn, before
    /// submitting.
    pub(super) fn publish(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let base = self.entries.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: `base` is the first entry of the ring, valid for the mapping's life;
        // `BufRingEntry::tail` only computes the address of its reserved field.
        let tail = unsafe { BufRingEntry::tail(base) } as *mut u16;
        // SAFETY: the tail is a naturally aligned u16 inside our mapping that the kernel
        // only reads, and only ever through atomic loads, so an atomic view of it is sound.
        let tail = unsafe { AtomicU16::from_ptr(tail) };
        tail.store(self.tail, Ordering::Release);
    }
}

/// An anonymous, page-aligned, zeroed memory mapping.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Left mapped on drop (see [`BufRing::leak`]).
    leaked: bool,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping with no address hint touches no existing
        // memory; the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping {
            ptr,
            len,
            leaked: false,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: `ptr` and `len` describe a mapping made by `Mapping::new` and unmapped
        // only here; nothing borrows it any more (borrows are tied to `&BufRing`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
