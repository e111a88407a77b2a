//! The table of connections a worker owns, indexed by the small integer the kernel hands
//! back with every event (an epoll token, an io_uring slot).
//!
//! Storage comes in fixed chunks that never move. A plain `Vec` doubles as it grows: at
//! 10,000 connections it holds the old and the new array at once while it copies (the
//! peak resident set counts both) and keeps up to half its capacity unused afterwards.
//! Chunks cost one small allocation per [`CHUNK`] connections instead, and a key stays
//! valid (and its entry in place) for as long as the entry lives.

/// Entries per chunk.
const CHUNK: usize = 256;

/// Keyed storage with stable keys; freed keys are reused, most recently freed first.
pub(crate) struct Slab<T> {
    chunks: Vec<Box<[Option<T>]>>,
    /// Keys below `next` that hold nothing and are not reserved.
    free: Vec<u32>,
    /// Every key below this one has been handed out at least once.
    next: usize,
    /// Entries present.
    len: usize,
}

impl<T> Slab<T> {
    /// An empty slab; nothing is allocated until the first key is reserved.
    pub(crate) fn new() -> Slab<T> {
        Slab {
            chunks: Vec::new(),
            free: Vec::new(),
            next: 0,
            len: 0,
        }
    }

    /// Reserve a vacant key: fill it with [`Slab::put`] or give it back with
    /// [`Slab::unreserve`]. (The key is needed before the entry exists: the session built
    /// into the entry, and the kernel registration, both name it.)
    pub(crate) fn reserve(&mut self) -> usize {
        if let Some(key) = self.free.pop() {
            return key as usize;
        }
        let key = self.next;
        if key == self.chunks.len() * CHUNK {
            self.chunks
                .push(std::iter::repeat_with(|| None).take(CHUNK).collect());
        }
        self.next += 1;
        key
    }

    /// Give back a reserved key that was never filled.
    pub(crate) fn unreserve(&mut self, key: usize) {
        debug_assert!(self.get(key).is_none());
        self.free.push(key as u32);
    }

    /// Fill a reserved key.
    pub(crate) fn put(&mut self, key: usize, value: T) {
        let place = &mut self.chunks[key / CHUNK][key % CHUNK];
        debug_assert!(place.is_none(), "slab key {key} filled twice");
        *place = Some(value);
        self.len += 1;
    }

    /// The entry at `key`, if one is there.
    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        self.chunks.get(key / CHUNK)?[key % CHUNK].as_ref()
    }

    /// The entry at `key`, mutably, if one is there.
    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.chunks.get_mut(key / CHUNK)?[key % CHUNK].as_mut()
    }

    /// Take the entry out and free its key.
    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let value = self.chunks.get_mut(key / CHUNK)?[key % CHUNK].take()?;
        self.free.push(key as u32);
        self.len -= 1;
        Some(value)
    }

    /// No entry is present.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries present.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every key that may hold an entry, for sweeps (look each up with [`Slab::get`]).
    pub(crate) fn keys(&self) -> std::ops::Range<usize> {
        0..self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_reused_last_freed_first() {
        let mut slab = Slab::new();
        let keys: Vec<usize> = (0..CHUNK * 2 + 3)
            .map(|i| {
                let key = slab.reserve();
                slab.put(key, i);
                key
            })
            .collect();
        assert_eq!(keys, (0..CHUNK * 2 + 3).collect::<Vec<_>>());
        assert_eq!(slab.len(), CHUNK * 2 + 3);
        assert_eq!(slab.get(CHUNK + 1), Some(&(CHUNK + 1)));
        assert_eq!(slab.remove(7), Some(7));
        assert_eq!(slab.remove(7), None);
        assert_eq!(slab.remove(CHUNK * 2), Some(CHUNK * 2));
        assert_eq!(slab.get(7), None);
        assert_eq!(slab.len(), CHUNK * 2 + 1);
        assert_eq!(slab.reserve(), CHUNK * 2);
        assert_eq!(slab.reserve(), 7);
        assert_eq!(slab.reserve(), CHUNK * 2 + 3);
        assert_eq!(slab.keys(), 0..CHUNK * 2 + 4);
    }

    #[test]
    fn an_unreserved_key_comes_back_and_lookups_past_the_end_are_none() {
        let mut slab: Slab<u8> = Slab::new();
        assert_eq!(slab.get(0), None);
        assert_eq!(slab.get_mut(10_000), None);
        assert_eq!(slab.remove(3), None);
        let key = slab.reserve();
        slab.unreserve(key);
        assert_eq!(slab.reserve(), key);
        slab.put(key, 9);
        *slab.get_mut(key).unwrap() += 1;
        assert_eq!(slab.get(key), Some(&10));
        assert_eq!(slab.len(), 1);
    }
}
