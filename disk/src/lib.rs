//! tidings-disk: runs the disk jobs of `tidings-host` ([`run`]) and opens the files a user
//! sends ([`OpenSource`], [`walk`]); the one tidings crate that touches the file system.
//!
//! `tidings-host` decides what to read, write, make ready and place ([`DiskJob`]s, a plain
//! protocol with handles as values); this crate carries it out, blocking, on whatever thread
//! the runtime gives it. Both runtimes call [`run`] and nothing else of the disk.
//!
//! # Naming on the receiving side
//!
//! A file offered as `NAME` is written to `NAME.part` in the download folder while it
//! arrives. When a later offer of the same `NAME` finds `NAME.part` (no longer than the
//! offered size) it accepts from the partial file's length, so the transfer resumes. Once the
//! digest is confirmed the partial file is renamed to `NAME`, or to `STEM (1).EXT`,
//! `STEM (2).EXT` … when that name exists: an existing file is never overwritten. A partial
//! file is kept when a transfer fails, except after a digest mismatch (its bytes are wrong).
//!
//! Something else already named `NAME.part` (a symbolic link, a folder, a FIFO, a device or
//! a file with other hard links, such as one planted by someone who can write into the
//! download folder) is left alone as if the name were taken: the download goes to the next
//! `STEM (1).EXT.part`, `STEM (2).EXT.part` … that is free or a usable partial file, and a
//! later offer of `NAME` resumes the first usable one in that order. It never writes into
//! something that is not a regular file of its own, and a planted name cannot block a file.
//! Two downloads of the same name at once each get their own partial file
//! ([`PartNames`](tidings_host::files::PartNames)).
//!
//! # Folders
//!
//! An offered name may be a relative path (`photos/2024/a.jpg`, spec §7.8 "Folders", already
//! reduced by the session). Its folders are made below the download folder one component at
//! a time, and each existing component must be a real folder: a symbolic link planted
//! anywhere on the path (`photos` → `/etc`) refuses the offer instead of leading the file
//! out of the download folder. A name ending in `/` (media type `inode/directory`, size 0) is
//! an empty folder: it is made, and the transfer completes with nothing written.
//!
//! No path below the download folder is resolved twice. The folders are walked with handles
//! (each component opened relative to the one above without following a link, made relative
//! to it when missing), the transfer keeps the innermost folder's handle, and the partial
//! file is opened, placed (a hard link) and removed relative to that handle. Someone who
//! swaps a checked folder for a link meanwhile (even hours later, before the file is
//! complete) changes nothing: the file lands in the folder that was checked, wherever it now
//! is.
//!
//! On the sending side, [`walk`] lists a folder for sending: regular files and empty
//! folders, in name order, named by their path below the folder's parent. Symbolic links are
//! **skipped**, files and folders alike, so that sending a folder never sends what lies
//! outside it; they are listed in [`Walk::skipped`] for the user.
//!
//! # Reads and writes
//!
//! Reads and writes use positioned I/O (`pread`/`pwrite` on Unix, `seek_read`/`seek_write`
//! on Windows, behind one pair of functions) on a shared handle, so jobs of one file never
//! contend for a file position and an async runtime can hand them to another thread.
//!
//! A received file is synced before its transfer is confirmed (the digest says the bytes are
//! right; the sync makes them stay). On Linux the writes also start the disk's writeback as
//! they go, 8 MiB at a time, so that the final sync finds little left to write instead of
//! the whole file (half a second per GiB on a fast disk, after the last byte arrived, while
//! sender and receiver wait).
//!
//! # One implementation for Unix and Windows: cap-std
//!
//! The folder handles come from [`cap_std::fs::Dir`] and [`cap_fs_ext`] (Bytecode Alliance):
//! a `Dir` opens, makes, links, renames and removes names relative to itself, refuses to
//! follow a link where asked (`open_dir_nofollow`, `FollowSymlinks::No`), and reports the
//! device, inode and link count of what it finds on both platforms. The alternative was
//! rustix (`openat`, `mkdirat`, `linkat`, `O_NOFOLLOW`) plus a second, hand-written Windows
//! version of every step; one implementation used on both is one place to get the safety
//! right, and cap-std is well kept and made for exactly this (WASI's sandboxing stands on
//! it). On Linux it resolves with `openat2(RESOLVE_BENEATH)` where available, so even a
//! name that slipped through could not leave the folder.
//!
//! Windows has no `linkat` or `renameat`: opens and looks are relative to the folder's
//! handle there too, but cap-std links, renames and removes by the folder's own path, read
//! back from its handle at that moment. It opens folders without `FILE_SHARE_DELETE`, so a
//! folder held open by a download cannot be renamed, removed or replaced by a link
//! meanwhile, and the path read back names the folder that was checked. Were a folder
//! further up swapped in the instant between that read-back and the link, the check that
//! the placed file is our own (made relative to the handle) refuses it: a file is never
//! placed elsewhere. What stays Unix-only is small and has no Windows counterpart:
//! `O_NONBLOCK` and `O_NOCTTY` on opens, so a FIFO or a terminal named like a file is
//! refused without waiting (Windows has neither in its file system).
//!
//! The tests that need no symbolic link or FIFO also run on Windows
//! (`.ci/test-windows-disk`: built with mingw-w64, run under Wine).
#![warn(missing_docs)]

mod open;
mod positioned;
mod receive;
mod send;

use std::io;

use cap_std::fs::Dir;
pub use send::{open_to_send, walk, EntryKind, OpenSource, Walk, MAX_WALK_DEPTH};
pub use tidings_host::files::{DiskDone, DiskJob, Source};

/// Carries out `job` (blocking) and returns its result, for the `job_done` of whoever handed
/// it out.
pub fn run(job: DiskJob) -> DiskDone {
    match job {
        DiskJob::Prepare(prepare) => DiskDone::Prepared(receive::prepare(prepare)),
        DiskJob::Read {
            file,
            offset,
            len,
            buffers,
        } => {
            let mut buf = buffers.take(len);
            DiskDone::Read(match positioned::read_exact_at(&file, &mut buf, offset) {
                Ok(()) => Ok(buf.freeze()),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(io::Error::new(
                    e.kind(),
                    "the file became shorter while it was being sent",
                )),
                Err(e) => Err(e),
            })
        }
        DiskJob::Write { file, offset, data } => {
            DiskDone::Written(positioned::write_all_at(&file, &data, offset).map(|()| {
                positioned::start_writeback(&file, offset, data.len() as u64);
                data.len() as u64
            }))
        }
        DiskJob::Finalize {
            file,
            dir,
            part,
            part_name,
            name,
        } => DiskDone::Finalized(
            file.sync_all()
                .and_then(|()| {
                    let dir = Dir::from_std_file(dir.try_clone()?);
                    receive::place_without_overwrite(&dir, &file, &part_name, &name)
                })
                .map(|placed| part.with_file_name(placed)),
        ),
        DiskJob::Discard { dir, part_name } => DiskDone::Discarded(
            dir.try_clone()
                .and_then(|dir| Dir::from_std_file(dir).remove_file(&part_name)),
        ),
        DiskJob::Folder { path } => DiskDone::Finalized(Ok(path)),
    }
}
