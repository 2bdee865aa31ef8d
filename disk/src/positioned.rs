//! Positioned reads and writes: at an offset, without moving a shared file position, so
//! that jobs on one handle never depend on each other's order.

use std::fs::File;
use std::io;

/// The writeback started by [`start_writeback`] goes in whole steps of this size.
#[cfg(target_os = "linux")]
pub(crate) const WRITEBACK_STEP: u64 = 8 << 20;

/// After a write of `len` bytes at `offset`: when it crossed the end of a [`WRITEBACK_STEP`]
/// of the file, asks the kernel to start writing the steps it ended in to the disk
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait for the disk, though it may
/// wait for room in the device's queue), so that the sync at the end of a download has little
/// left to do. Downloads are written in order, so those steps are complete. Only a hint: it
/// needs no state (steps are found from the offsets) and a failure changes nothing, since the
/// final `sync_all` reports any error that matters.
#[cfg(target_os = "linux")]
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (first, end) = (offset / WRITEBACK_STEP, (offset + len) / WRITEBACK_STEP);
    if end > first {
        let from = first * WRITEBACK_STEP;
        let bytes = (end - first) * WRITEBACK_STEP;
        // SAFETY: sync_file_range reads only its integer arguments; the descriptor is open
        // for as long as `file` lives.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                from as libc::off64_t,
                bytes as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
}

/// Elsewhere the final sync writes the whole file.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

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

/// Reads exactly `buf.len()` bytes at `offset` (`UnexpectedEof` if the file is shorter).
/// `seek_read` also moves the handle's position, which no job uses.
#[cfg(windows)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    let short = || io::Error::new(io::ErrorKind::UnexpectedEof, "failed to fill whole buffer");
    whole(buf.len(), offset, short, |done, at| {
        file.seek_read(&mut buf[done..], at)
    })
}

/// Writes all of `data` at `offset`.
#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    let short = || io::Error::new(io::ErrorKind::WriteZero, "failed to write whole buffer");
    whole(data.len(), offset, short, |done, at| {
        file.seek_write(&data[done..], at)
    })
}

/// Repeats `step(done, at)` (one positioned read or write of what remains, at `at`) until
/// `len` bytes are done; a step that moves nothing fails with `short()`.
#[cfg(windows)]
fn whole(
    len: usize,
    mut at: u64,
    short: impl Fn() -> io::Error,
    mut step: impl FnMut(usize, u64) -> io::Result<usize>,
) -> io::Result<()> {
    let mut done = 0;
    while done < len {
        match step(done, at) {
            Ok(0) => return Err(short()),
            Ok(n) => {
                done += n;
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
