//! Bookkeeping that the array-based selectors (poll, polling) share: a dense array of
//! per-descriptor items, kept in step with register and deregister, that can be handed to
//! the kernel as one slice.

use std::collections::HashMap;
use std::io;

/// Items kept densely (so `poll(2)` can take them as one array), each tagged by its token.
#[derive(Debug)]
pub(crate) struct Watched<T> {
    items: Vec<T>,
    tokens: Vec<usize>,
    positions: HashMap<usize, usize>,
}

impl<T> Watched<T> {
    pub(crate) fn new() -> Watched<T> {
        Watched {
            items: Vec::new(),
            tokens: Vec::new(),
            positions: HashMap::new(),
        }
    }

    /// Add `item` for `token`.
    pub(crate) fn insert(&mut self, token: usize, item: T) {
        self.positions.insert(token, self.items.len());
        self.items.push(item);
        self.tokens.push(token);
    }

    /// The item of `token`.
    pub(crate) fn get_mut(&mut self, token: usize) -> io::Result<&mut T> {
        let position = *self
            .positions
            .get(&token)
            .ok_or_else(|| not_watched(token))?;
        Ok(&mut self.items[position])
    }

    /// Remove `token`'s item; the last item moves into its place.
    pub(crate) fn remove(&mut self, token: usize) -> io::Result<T> {
        let position = self
            .positions
            .remove(&token)
            .ok_or_else(|| not_watched(token))?;
        let item = self.items.swap_remove(position);
        self.tokens.swap_remove(position);
        if let Some(&moved) = self.tokens.get(position) {
            self.positions.insert(moved, position);
        }
        Ok(item)
    }

    /// The items, in the order of [`Watched::tokens`].
    pub(crate) fn items(&self) -> &[T] {
        &self.items
    }

    /// The items, mutably (for the kernel to fill in results).
    pub(crate) fn items_mut(&mut self) -> &mut [T] {
        &mut self.items
    }

    /// The token of each item.
    pub(crate) fn tokens(&self) -> &[usize] {
        &self.tokens
    }
}

fn not_watched(token: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("token {token} is not watched"),
    )
}
