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
