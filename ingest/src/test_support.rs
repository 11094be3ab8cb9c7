//! Helpers shared by the crate's unit tests.

use std::io::{self, Read};

/// A reader that returns at most `sizes[i % len]` bytes per read, to split magic bytes,
/// headers and records at arbitrary points.
pub(crate) struct Trickle<R> {
    pub(crate) inner: R,
    pub(crate) sizes: Vec<usize>,
    pub(crate) next: usize,
}

impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()].max(1);
        self.next += 1;
        let n = size.min(buf.len());
        self.inner.read(&mut buf[..n])
    }
}
