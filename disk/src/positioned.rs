//! Positioned reads and writes: at an offset, without moving a shared file position, so
//! that jobs on one handle never depend on each other's order.

use std::fs::File;
use std::io;

/// Reads exactly `buf.len()` bytes at `offset` (`UnexpectedEof` if the file is shorter).
#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Writes all of `data` at `offset`.
#[cfg(unix)]
pub(crate) fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}
