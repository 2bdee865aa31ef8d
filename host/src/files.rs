//! The disk side of file transfers, shared by every runtime: opening sources, keeping partial
//! downloads for resume, never overwriting, and disk jobs that can run on any thread.
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
//! (each component opened relative to the one above with `O_NOFOLLOW`, made with `mkdirat`
//! when missing), the transfer keeps the innermost folder's handle, and the partial file is
//! opened, placed (`linkat`) and removed relative to that handle. Someone who swaps a
//! checked folder for a link meanwhile (even hours later, before the file is complete)
//! changes nothing: the file lands in the folder that was checked, wherever it now is.
//!
//! On the sending side, [`walk`] lists a folder for sending: regular files and empty
//! folders, in name order, named by their path below the folder's parent. Symbolic links are
//! **skipped**, files and folders alike, so that sending a folder never sends what lies
//! outside it; they are listed in [`Walk::skipped`] for the user.
//!
//! # Disk jobs
//!
//! Reads and writes are [`DiskJob`] values holding a shared handle to the open file and using
//! positioned I/O (`pread`/`pwrite`), so a blocking runtime runs them in place and an async
//! runtime hands them to a thread pool without blocking its executor.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::Hash;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use tidings_core::transfer::{safe_file_name, safe_path};

/// Suffix of a partial download.
pub const PART_SUFFIX: &str = ".part";

/// A file opened for sending, checked before anything is offered.
#[derive(Debug, Clone)]
pub struct Source {
    /// The open file.
    pub file: Arc<File>,
    /// The base name offered to the peer.
    pub name: String,
    /// Size in bytes when opened.
    pub size: u64,
    /// The media type offered: empty for a file, [`FOLDER_MEDIA_TYPE`] for an empty folder.
    pub media_type: String,
}

/// The media type of an empty folder's offer (spec §7.8, "Folders").
pub const FOLDER_MEDIA_TYPE: &str = "inode/directory";

/// The most folder levels [`walk`] descends (as deep as a receiver keeps by default).
pub const MAX_WALK_DEPTH: usize = 32;

impl Source {
    /// Opens `path` for sending. Fails for a missing file, anything but a regular file (a
    /// FIFO is refused at once, not waited on) or a name that cannot be offered. A symbolic
    /// link at `path` is followed: the user named it.
    pub fn open(path: &Path) -> io::Result<Source> {
        let file = open_regular(path, OFlags::empty())?;
        let meta = file.metadata()?;
        let raw = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = safe_file_name(&raw)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unusable file name"))?;
        Ok(Source {
            file: Arc::new(file),
            name,
            size: meta.len(),
            media_type: String::new(),
        })
    }

    /// Opens the regular file at `path` to be offered as `name`, a relative path such as
    /// `photos/a.jpg` (reduced by the folder rules of spec §7.8). A symbolic link at `path`
    /// is refused, not followed.
    pub fn open_as(path: &Path, name: &str) -> io::Result<Source> {
        let file = open_regular(path, OFlags::NOFOLLOW)?;
        let meta = file.metadata()?;
        Ok(Source {
            file: Arc::new(file),
            name: offered_path(name, false)?,
            size: meta.len(),
            media_type: String::new(),
        })
    }

    /// An empty folder at `path`, offered as `name/` with size 0 and media type
    /// [`FOLDER_MEDIA_TYPE`].
    pub fn folder(path: &Path, name: &str) -> io::Result<Source> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Source {
            file: Arc::new(File::from(fd)),
            name: offered_path(name, true)?,
            size: 0,
            media_type: FOLDER_MEDIA_TYPE.to_string(),
        })
    }

    /// Whether this is an empty folder rather than a file.
    pub fn is_folder(&self) -> bool {
        self.media_type == FOLDER_MEDIA_TYPE
    }
}

/// Opens `path` for reading (with `extra` flags) and checks that it is a regular file. The
/// open itself must not wait or take over a terminal: a FIFO would block until someone writes
/// to it, so it is opened with `O_NONBLOCK` (cleared once checked) and refused like a
/// device.
fn open_regular(path: &Path, extra: OFlags) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY | extra,
        Mode::empty(),
    )?;
    if !FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode).is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    rustix::fs::fcntl_setfl(&fd, rustix::fs::fcntl_getfl(&fd)? - OFlags::NONBLOCK)?;
    Ok(File::from(fd))
}

/// `name` reduced by the folder rules, with a trailing `/` for a folder.
fn offered_path(name: &str, folder: bool) -> io::Result<String> {
    let wanted = if folder {
        format!("{}/", name.trim_end_matches('/'))
    } else {
        name.to_string()
    };
    safe_path(&wanted, usize::MAX)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unusable file name"))
}

/// What [`walk`] found in a folder.
#[derive(Debug, Default)]
pub struct Walk {
    /// Regular files and empty folders: (where it is, the name to offer).
    pub entries: Vec<(PathBuf, String, EntryKind)>,
    /// Symbolic links and special files that are not sent.
    pub skipped: Vec<PathBuf>,
}

/// A file or an empty folder found by [`walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file, of this size when listed.
    File(u64),
    /// A folder with nothing in it.
    EmptyFolder,
}

/// Lists the folder `root` for sending: its regular files and empty folders, in name order,
/// each named by its path below `root`'s parent (`root` itself is the first component), at
/// most [`MAX_WALK_DEPTH`] levels deep. Symbolic links inside are skipped, never followed
/// (see the [module docs](self)); `root` itself may be a link to a folder, named after its
/// target. An empty `root` is one empty folder.
pub fn walk(root: &Path) -> io::Result<Walk> {
    // The folder named by the user may itself be a link (followed: the user chose it); what
    // lies inside is listed without following links.
    let meta = std::fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a folder"));
    }
    let real = root.canonicalize()?;
    let top = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "folder".to_string());
    let mut out = Walk::default();
    walk_into(root, &top, 1, &mut out)?;
    // An empty `root` is listed as itself; it is opened without following links
    // ([`Source::folder`]), so it is named by the folder the link leads to.
    for entry in &mut out.entries {
        if entry.0 == root {
            entry.0 = real.clone();
        }
    }
    Ok(out)
}

fn walk_into(dir: &Path, name: &str, depth: usize, out: &mut Walk) -> io::Result<()> {
    if depth >= MAX_WALK_DEPTH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is more than {MAX_WALK_DEPTH} levels deep",
                dir.display()
            ),
        ));
    }
    let mut children: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    children.sort_by_key(|e| e.file_name());
    if children.is_empty() {
        out.entries.push((
            dir.to_path_buf(),
            format!("{name}/"),
            EntryKind::EmptyFolder,
        ));
        return Ok(());
    }
    for child in children {
        let path = child.path();
        let child_name = format!("{name}/{}", child.file_name().to_string_lossy());
        // The entry's own type: a symbolic link is reported as one, not as its target.
        let kind = child.file_type()?;
        if kind.is_dir() {
            walk_into(&path, &child_name, depth + 1, out)?;
        } else if kind.is_file() {
            let size = child.metadata()?.len();
            out.entries.push((path, child_name, EntryKind::File(size)));
        } else {
            out.skipped.push(path);
        }
    }
    Ok(())
}

/// A download in progress: its partial file and where it will go (or, for an empty folder,
/// the folder made).
#[derive(Debug)]
struct Download {
    file: Arc<File>,
    /// The folder it arrives in, as opened on the way down: the partial file is placed and
    /// removed relative to it, never by its path again.
    dir: Arc<OwnedFd>,
    /// The partial file's path (or the folder's), for showing and for telling two
    /// downloads of the same name apart.
    part: PathBuf,
    /// The partial file's name in `dir`.
    part_name: String,
    name: String,
    folder: bool,
}

/// Read buffers handed back once their bytes went out, so that the next read reuses memory
/// that is already mapped and initialised. A fresh zeroed buffer per read cost a sender 14 %
/// of its CPU (`memset` and page faults for every 256 KiB chunk).
///
/// Clones share one pool; it keeps at most a few buffers, so it never holds more memory than
/// the reads in flight did.
#[derive(Debug, Clone, Default)]
pub struct BufferPool(Arc<Mutex<Vec<BytesMut>>>);

impl BufferPool {
    /// Buffers kept for reuse: the default read-ahead (1 MiB) is four 256 KiB chunks; a few
    /// more cover chunks still in the socket's queue.
    const KEEP: usize = 16;
    /// Smaller buffers (frame headers, short last chunks) are not worth keeping.
    const MIN_LEN: usize = 16 << 10;

    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer of exactly `len` initialised bytes (old contents when reused; the caller
    /// overwrites them).
    pub fn take(&self, len: usize) -> BytesMut {
        let reused = self.0.lock().map(|mut v| v.pop()).unwrap_or(None);
        match reused {
            // Its bytes are initialised already: only a shortfall gets zeroed.
            Some(mut buf) if buf.len() >= len => {
                buf.truncate(len);
                buf
            }
            Some(mut buf) => {
                buf.resize(len, 0);
                buf
            }
            None => BytesMut::zeroed(len),
        }
    }

    /// Hands back bytes that are no longer needed. They are kept only if nothing else still
    /// refers to their memory (otherwise dropping them here is all that happens).
    pub fn give(&self, bytes: Bytes) {
        if bytes.len() < Self::MIN_LEN {
            return;
        }
        if let Ok(buf) = bytes.try_into_mut() {
            if let Ok(mut v) = self.0.lock() {
                if v.len() < Self::KEEP {
                    v.push(buf);
                }
            }
        }
    }

    /// How many buffers wait for reuse.
    pub fn len(&self) -> usize {
        self.0.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Whether no buffer waits for reuse.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The open files of one side's transfers, keyed by the runtime's transfer key (a transfer id
/// on a client, a hub file handle on a server).
#[derive(Debug)]
pub struct Files<K> {
    dir: Option<PathBuf>,
    sources: HashMap<K, Source>,
    downloads: HashMap<K, Download>,
    parts_in_use: HashSet<PathBuf>,
    buffers: BufferPool,
}

impl<K: Hash + Eq + Copy> Files<K> {
    /// A store that receives into `dir` (`None`: this side does not take files).
    pub fn new(dir: Option<PathBuf>) -> Self {
        Files {
            dir,
            sources: HashMap::new(),
            downloads: HashMap::new(),
            parts_in_use: HashSet::new(),
            buffers: BufferPool::new(),
        }
    }

    /// The pool read jobs take their buffers from; hand it the bytes of a read once they
    /// are written to the socket ([`BufferPool::give`]).
    pub fn buffers(&self) -> &BufferPool {
        &self.buffers
    }

    /// The download folder, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Registers an opened source under its transfer key.
    pub fn add_source(&mut self, key: K, source: Source) {
        self.sources.insert(key, source);
    }

    /// Opens (or reopens) the partial file for an offered `name` of `size` bytes and returns
    /// the offset to accept from: the kept partial length, or 0. Errors carry a reason
    /// suitable for the peer.
    pub fn start_download(&mut self, key: K, name: &str, size: u64) -> Result<u64, String> {
        let dir = self
            .dir
            .clone()
            .ok_or_else(|| "this side does not accept files".to_string())?;
        // The session reduced the name already (to a base name, or to a relative path with
        // its own depth limit); reducing again keeps this safe for any caller.
        let path = safe_path(name, usize::MAX).ok_or_else(|| "unusable file name".to_string())?;
        let folder = path.ends_with('/');
        let mut parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let name = if folder {
            String::new()
        } else {
            parts.pop().unwrap_or_default().to_string()
        };
        let (handle, dir) = open_folders(&dir, &parts)?;
        if folder {
            if size != 0 {
                return Err("a folder is offered with a size".to_string());
            }
            let file = handle
                .try_clone()
                .map_err(|e| format!("cannot open the folder: {}", plain(&e)))?;
            self.downloads.insert(
                key,
                Download {
                    file: Arc::new(File::from(file)),
                    dir: Arc::new(handle),
                    part: dir,
                    part_name: String::new(),
                    name,
                    folder: true,
                },
            );
            return Ok(0);
        }
        // Two offers of the same name at once each get their own partial file, and a name
        // taken by something that is not a usable partial file is passed over.
        let (stem, ext) = split_ext(&name);
        let mut n = 0;
        let (part, part_name, file) = loop {
            if n >= MAX_NAMES {
                return Err(format!(
                    "cannot write {name}{PART_SUFFIX}: no usable partial file name"
                ));
            }
            let part_name = if n == 0 {
                format!("{name}{PART_SUFFIX}")
            } else {
                format!("{stem} ({n}){ext}{PART_SUFFIX}")
            };
            n += 1;
            let part = dir.join(&part_name);
            if self.parts_in_use.contains(&part) {
                continue;
            }
            match open_part(&handle, &part_name) {
                Ok(Some(file)) => break (part, part_name, file),
                Ok(None) => continue,
                // The reason travels to the peer: the file name only, never our folders.
                Err(e) => return Err(format!("cannot write {part_name}: {}", plain(&e))),
            }
        };
        let kept = file
            .metadata()
            .map_err(|e| format!("cannot inspect {part_name}: {}", plain(&e)))?
            .len();
        let offset = if kept <= size {
            kept
        } else {
            // Longer than the offered file: not a prefix of it; start over.
            file.set_len(0)
                .map_err(|e| format!("cannot truncate: {}", plain(&e)))?;
            0
        };
        self.parts_in_use.insert(part.clone());
        self.downloads.insert(
            key,
            Download {
                file: Arc::new(file),
                dir: Arc::new(handle),
                part,
                part_name,
                name,
                folder: false,
            },
        );
        Ok(offset)
    }

    /// A job reading `len` bytes at `offset` of the transfer's file (the source when
    /// sending, the kept partial file when resuming a download).
    pub fn read_job(&self, key: K, offset: u64, len: usize) -> Option<DiskJob> {
        let file = match (self.sources.get(&key), self.downloads.get(&key)) {
            (Some(s), _) => s.file.clone(),
            (None, Some(d)) => d.file.clone(),
            (None, None) => return None,
        };
        Some(DiskJob::Read {
            file,
            offset,
            len,
            buffers: self.buffers.clone(),
        })
    }

    /// A job writing received `data` at `offset` of the partial file.
    pub fn write_job(&self, key: K, offset: u64, data: Bytes) -> Option<DiskJob> {
        let d = self.downloads.get(&key)?;
        Some(DiskJob::Write {
            file: d.file.clone(),
            offset,
            data,
        })
    }

    /// The transfer succeeded: for a download, a job that moves the partial file to its
    /// final, never-overwriting name. Forgets the transfer either way.
    pub fn finish_ok(&mut self, key: K) -> Option<DiskJob> {
        self.sources.remove(&key);
        let d = self.downloads.remove(&key)?;
        if d.folder {
            return Some(DiskJob::Folder { path: d.part });
        }
        self.parts_in_use.remove(&d.part);
        Some(DiskJob::Finalize {
            file: d.file,
            dir: d.dir,
            part: d.part,
            part_name: d.part_name,
            name: d.name,
        })
    }

    /// The transfer failed: forgets it, keeping a partial file for resume unless its bytes
    /// are known to be wrong (`discard`). Returns the kept partial file.
    pub fn finish_failed(&mut self, key: K, discard: bool) -> Option<PathBuf> {
        self.sources.remove(&key);
        let d = self.downloads.remove(&key)?;
        if d.folder {
            // The folder stays: it holds nothing partial.
            return None;
        }
        self.parts_in_use.remove(&d.part);
        if discard {
            let _ = rustix::fs::unlinkat(&*d.dir, &d.part_name, AtFlags::empty());
            return None;
        }
        Some(d.part)
    }

    /// Whether `key` is a download (rather than a file being sent).
    pub fn is_download(&self, key: K) -> bool {
        self.downloads.contains_key(&key)
    }

    /// Whether `key` is a known transfer.
    pub fn contains(&self, key: K) -> bool {
        self.sources.contains_key(&key) || self.downloads.contains_key(&key)
    }
}

/// One disk operation, runnable on any thread.
#[derive(Debug)]
pub enum DiskJob {
    /// Read exactly `len` bytes at `offset`.
    Read {
        /// Shared handle.
        file: Arc<File>,
        /// Where.
        offset: u64,
        /// How much.
        len: usize,
        /// Where the buffer comes from.
        buffers: BufferPool,
    },
    /// Write `data` at `offset`.
    Write {
        /// Shared handle.
        file: Arc<File>,
        /// Where.
        offset: u64,
        /// What.
        data: Bytes,
    },
    /// Flush and move a finished partial file to its final name.
    Finalize {
        /// Shared handle, synced before the rename.
        file: Arc<File>,
        /// The folder holding the partial file, opened when the transfer started: the file
        /// is placed relative to it, not by path.
        dir: Arc<OwnedFd>,
        /// The partial file's path, as it was when the transfer started (for showing).
        part: PathBuf,
        /// The partial file's name in `dir`.
        part_name: String,
        /// The wanted final base name.
        name: String,
    },
    /// An empty folder that was made when it was offered: nothing to do but report it.
    Folder {
        /// The folder.
        path: PathBuf,
    },
}

/// What a [`DiskJob`] produced.
#[derive(Debug)]
pub enum DiskDone {
    /// The bytes read.
    Read(io::Result<Bytes>),
    /// How many bytes were written.
    Written(io::Result<u64>),
    /// The final path.
    Finalized(io::Result<PathBuf>),
}

impl DiskJob {
    /// Performs the operation (blocking).
    pub fn run(self) -> DiskDone {
        match self {
            DiskJob::Read {
                file,
                offset,
                len,
                buffers,
            } => {
                let mut buf = buffers.take(len);
                DiskDone::Read(match file.read_exact_at(&mut buf, offset) {
                    Ok(()) => Ok(buf.freeze()),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(io::Error::new(
                        e.kind(),
                        "the file became shorter while it was being sent",
                    )),
                    Err(e) => Err(e),
                })
            }
            DiskJob::Write { file, offset, data } => {
                DiskDone::Written(file.write_all_at(&data, offset).map(|()| data.len() as u64))
            }
            DiskJob::Finalize {
                file,
                dir,
                part,
                part_name,
                name,
            } => DiskDone::Finalized(
                file.sync_all()
                    .and_then(|()| place_without_overwrite(dir.as_fd(), &file, &part_name, &name))
                    .map(|placed| part.with_file_name(placed)),
            ),
            DiskJob::Folder { path } => DiskDone::Finalized(Ok(path)),
        }
    }
}

/// The most names tried for one file (`STEM (1).EXT` … and the same for partial files).
const MAX_NAMES: u32 = 10_000;

/// Moves the partial file `part`, a name in the folder `dir` whose open handle is `file`, to
/// `name` in the same folder, or to `STEM (n).EXT` when taken, and returns the name used.
/// Uses a hard link, which fails instead of replacing, so a file that appears meanwhile is
/// safe too. Everything is relative to `dir`, so a folder on the way that was swapped for a
/// link since `dir` was opened changes nothing; and what is placed must be `file` itself, so
/// something else put under the partial file's name meanwhile is not placed.
pub fn place_without_overwrite(
    dir: std::os::fd::BorrowedFd<'_>,
    file: &File,
    part: &str,
    name: &str,
) -> io::Result<String> {
    let ours = rustix::fs::fstat(file)?;
    let is_ours = |at: &str| {
        rustix::fs::statat(dir, at, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino))
    };
    let replaced = || {
        io::Error::other(format!(
            "{part} was replaced by something else before it was complete"
        ))
    };
    if !is_ours(part) {
        return Err(replaced());
    }
    let (stem, ext) = split_ext(name);
    for n in 0..MAX_NAMES {
        let target = if n == 0 {
            name.to_string()
        } else {
            format!("{stem} ({n}){ext}")
        };
        match rustix::fs::linkat(dir, part, dir, &target, AtFlags::empty()) {
            Ok(()) => {
                // Swapped between the look above and the link: take the link back.
                if !is_ours(&target) {
                    let _ = rustix::fs::unlinkat(dir, &target, AtFlags::empty());
                    return Err(replaced());
                }
                rustix::fs::unlinkat(dir, part, AtFlags::empty())?;
                return Ok(target);
            }
            Err(Errno::EXIST) => continue,
            Err(e) => match rustix::fs::statat(dir, &target, AtFlags::SYMLINK_NOFOLLOW) {
                // File systems without hard links: rename after the existence check.
                Err(Errno::NOENT) => {
                    rustix::fs::renameat(dir, part, dir, &target)?;
                    return Ok(target);
                }
                _ => return Err(e.into()),
            },
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free file name",
    ))
}

/// A regular file with no other hard link: the only thing a partial file may be.
fn usable_part(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode).is_file() && st.st_nlink == 1
}

/// Opens (making it if missing) the partial file `name` in the folder `dir`. `None` when
/// something else has that name: a symbolic link, a folder, a FIFO, a device, a socket, or a
/// file with other hard links (writing into it would change a file elsewhere, maybe outside
/// the download folder). That is left alone, untouched.
fn open_part(dir: &OwnedFd, name: &str) -> io::Result<Option<File>> {
    // A look first, so that a FIFO or device is not even opened in the common case; the
    // check of the open file below is the one that counts.
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if !usable_part(&st) => return Ok(None),
        Ok(_) | Err(Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = match rustix::fs::openat(
        dir,
        name,
        // O_NONBLOCK: a FIFO put there meanwhile must not block the open.
        OFlags::RDWR
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NONBLOCK
            | OFlags::NOCTTY,
        Mode::from_raw_mode(0o666),
    ) {
        Ok(fd) => fd,
        // A link (O_NOFOLLOW), a folder, a FIFO or socket without a reader.
        Err(Errno::LOOP | Errno::ISDIR | Errno::NXIO) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !usable_part(&rustix::fs::fstat(&fd)?) {
        return Ok(None);
    }
    rustix::fs::fcntl_setfl(&fd, rustix::fs::fcntl_getfl(&fd)? - OFlags::NONBLOCK)?;
    Ok(Some(File::from(fd)))
}

/// Opens the download folder `dir`, then each folder of `parts` below it, making the missing
/// ones, and returns the innermost folder's handle and path. Each component is opened
/// relative to the handle of the one above, with `O_NOFOLLOW`: it must be a folder itself,
/// not a symbolic link to one, since a link planted in the download folder (`photos` →
/// `/etc`) would lead the download out of it. The handle stays valid whatever happens to the
/// path afterwards; the path is for showing only. The download folder itself may be a link
/// (the operator chose it). Reasons name the component only, never the receiver's folders.
fn open_folders(dir: &Path, parts: &[&str]) -> Result<(OwnedFd, PathBuf), String> {
    const FOLDER: OFlags = OFlags::RDONLY
        .union(OFlags::DIRECTORY)
        .union(OFlags::CLOEXEC);
    let mut at = rustix::fs::open(dir, FOLDER, Mode::empty()).map_err(|e| {
        format!(
            "cannot write into the download folder: {}",
            plain(&e.into())
        )
    })?;
    let mut path = dir.to_path_buf();
    for part in parts {
        path.push(part);
        let open =
            |at: &OwnedFd| rustix::fs::openat(at, *part, FOLDER | OFlags::NOFOLLOW, Mode::empty());
        let next = match open(&at) {
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&at, *part, Mode::from_raw_mode(0o777)) {
                    // Made meanwhile by another transfer of the same folder: opened alike.
                    Ok(()) | Err(Errno::EXIST) => open(&at),
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        at = next.map_err(|e| folder_reason(&at, part, e))?;
    }
    Ok((at, path))
}

/// Why the folder `part` below `at` could not be opened or made.
fn folder_reason(at: &OwnedFd, part: &str, e: Errno) -> String {
    let why = match rustix::fs::statat(at, part, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode).is_symlink() => "a symbolic link".to_string(),
        Ok(st) if !FileType::from_raw_mode(st.st_mode).is_dir() => {
            "a file is in the way".to_string()
        }
        _ => plain(&e.into()),
    };
    format!("cannot make folder {part}: {why}")
}

/// An I/O error's message without the "(os error N)" suffix, for people and peers.
fn plain(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// `"photo.jpg"` → `("photo", ".jpg")`; `"README"` → `("README", "")`.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn mkfifo(at: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            at,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    /// Writes `data` as the whole of download `key` and finishes it: where it landed.
    fn complete(files: &mut Files<u64>, key: u64, data: &[u8]) -> io::Result<PathBuf> {
        match files
            .write_job(key, 0, Bytes::copy_from_slice(data))
            .unwrap()
            .run()
        {
            DiskDone::Written(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
        match files.finish_ok(key).unwrap().run() {
            DiskDone::Finalized(placed) => placed,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"old").unwrap();
        let mut files = Files::<u64>::new(Some(dir.path().to_path_buf()));
        assert_eq!(files.start_download(2, "a.txt", 3), Ok(0));
        let placed = complete(&mut files, 2, b"new").unwrap();
        assert_eq!(placed, dir.path().join("a (1).txt"));
        assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"old");
        assert_eq!(std::fs::read(placed).unwrap(), b"new");
        assert!(!dir.path().join("a.txt.part").exists());
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let link = dir.path().join("f.bin.part");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let mut files = Files::<u64>::new(Some(dir.path().to_path_buf()));
        // Passed over like a taken name: the download goes to the next partial name.
        assert_eq!(files.start_download(2, "f.bin", 3), Ok(0));
        assert!(dir.path().join("f (1).bin.part").is_file());
        let placed = complete(&mut files, 2, b"new").unwrap();
        assert_eq!(placed, dir.path().join("f.bin"));
        assert_eq!(std::fs::read(&placed).unwrap(), b"new");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    }

    #[test]
    fn a_planted_hard_link_fifo_or_folder_part_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        // A hard link to a file elsewhere (same file system): writing into it would change
        // that file, and a resume would even start from its length.
        let outside = tempfile::tempdir_in(dir.path().parent().unwrap()).unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        std::fs::hard_link(&victim, dir.path().join("h.bin.part")).unwrap();
        let fifo = dir.path().join("g.bin.part");
        mkfifo(&fifo);
        let mut files = Files::<u64>::new(Some(dir.path().to_path_buf()));
        // Another peer's empty folder named like the partial file of `report.pdf`.
        assert_eq!(files.start_download(2, "report.pdf.part/", 0), Ok(0));
        assert!(matches!(files.finish_ok(2), Some(DiskJob::Folder { .. })));

        assert_eq!(files.start_download(4, "h.bin", 100), Ok(0));
        assert!(dir.path().join("h (1).bin.part").is_file());
        assert_eq!(files.start_download(6, "g.bin", 100), Ok(0));
        assert!(dir.path().join("g (1).bin.part").is_file());
        assert_eq!(files.start_download(8, "report.pdf", 3), Ok(0));
        assert!(dir.path().join("report (1).pdf.part").is_file());

        let placed = complete(&mut files, 4, b"hhh").unwrap();
        assert_eq!(placed, dir.path().join("h.bin"));
        assert_eq!(std::fs::read(&placed).unwrap(), b"hhh");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        let placed = complete(&mut files, 8, b"pdf").unwrap();
        assert_eq!(placed, dir.path().join("report.pdf"));
        assert!(dir.path().join("report.pdf.part").is_dir());

        // A failed download keeps its partial file under the name it got, and the next offer
        // of the same name finds it again, passing over the FIFO.
        files
            .write_job(6, 0, Bytes::from_static(b"gg"))
            .unwrap()
            .run();
        assert_eq!(
            files.finish_failed(6, false),
            Some(dir.path().join("g (1).bin.part"))
        );
        assert_eq!(files.start_download(10, "g.bin", 100), Ok(2));
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
    }

    #[test]
    fn a_folder_swapped_for_a_link_meanwhile_does_not_lead_the_file_out() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut files = Files::<u64>::new(Some(dir.path().to_path_buf()));
        assert_eq!(files.start_download(2, "photos/sub/a.jpg", 3), Ok(0));
        assert_eq!(files.start_download(4, "photos/sub/b.jpg", 3), Ok(0));
        // The checked folder is moved away and a link to a folder outside takes its name,
        // holding a file under the partial file's name: by path, the link would be followed
        // and that file placed outside.
        std::fs::rename(dir.path().join("photos"), dir.path().join("moved")).unwrap();
        std::fs::create_dir(outside.path().join("sub")).unwrap();
        std::fs::write(outside.path().join("sub/a.jpg.part"), b"bad").unwrap();
        std::fs::write(outside.path().join("sub/b.jpg.part"), b"bad").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("photos")).unwrap();

        let placed = complete(&mut files, 2, b"abc").unwrap();
        // Reported by the path it had; it lies in the folder that was checked.
        assert_eq!(placed, dir.path().join("photos/sub/a.jpg"));
        assert_eq!(
            std::fs::read(dir.path().join("moved/sub/a.jpg")).unwrap(),
            b"abc"
        );
        assert!(!dir.path().join("moved/sub/a.jpg.part").exists());
        // A discarded partial file is removed where it is, too.
        files
            .write_job(4, 0, Bytes::from_static(b"x"))
            .unwrap()
            .run();
        files.finish_failed(4, true);
        assert!(!dir.path().join("moved/sub/b.jpg.part").exists());

        let mut outside_now: Vec<_> = std::fs::read_dir(outside.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        outside_now.sort();
        assert_eq!(outside_now, ["a.jpg.part", "b.jpg.part"]);
    }

    #[test]
    fn a_partial_file_replaced_meanwhile_is_not_placed() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::<u64>::new(Some(dir.path().to_path_buf()));
        assert_eq!(files.start_download(2, "a.txt", 3), Ok(0));
        let part = dir.path().join("a.txt.part");
        std::fs::remove_file(&part).unwrap();
        std::fs::write(&part, b"not ours").unwrap();
        let refused = complete(&mut files, 2, b"abc").unwrap_err();
        assert!(refused.to_string().contains("replaced"), "{refused}");
        assert!(!dir.path().join("a.txt").exists());
    }

    #[test]
    fn an_empty_folder_named_through_a_link_is_sent() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("empty")).unwrap();
        let alias = root.path().join("alias");
        std::os::unix::fs::symlink(root.path().join("empty"), &alias).unwrap();
        let w = walk(&alias).unwrap();
        assert_eq!(w.entries.len(), 1);
        let (at, name, kind) = &w.entries[0];
        assert_eq!((name.as_str(), *kind), ("empty/", EntryKind::EmptyFolder));
        let folder = Source::folder(at, name).unwrap();
        assert_eq!(folder.name, "empty/");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        mkfifo(&fifo);
        let (tx, rx) = std::sync::mpsc::channel();
        let at = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send((
                Source::open(&at).map(|_| ()),
                Source::open_as(&at, "d/pipe").map(|_| ()),
            ));
        });
        let (open, open_as) = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("opening a FIFO returns at once");
        for e in [open.unwrap_err(), open_as.unwrap_err()] {
            assert_eq!(e.to_string(), "not a regular file");
        }
    }

    #[test]
    fn folders_are_made_below_the_download_folder() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::<u64>::new(Some(dir.path().to_path_buf()));
        assert_eq!(files.start_download(2, "top/sub/f.bin", 3), Ok(0));
        assert!(dir.path().join("top/sub/f.bin.part").is_file());
        assert_eq!(files.start_download(4, "top/empty/", 0), Ok(0));
        let Some(DiskJob::Folder { path }) = files.finish_ok(4) else {
            panic!("a folder finishes as a folder");
        };
        assert_eq!(path, dir.path().join("top/empty"));
        assert!(path.is_dir());
        // Escapes are refused even if a caller did not reduce the name.
        assert!(files.start_download(6, "../x", 1).is_err());
        assert!(files.start_download(8, "/etc/x", 1).is_err());
        assert!(!dir.path().parent().unwrap().join("x").exists());
    }

    #[test]
    fn a_planted_symlink_to_a_folder_outside_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("photos")).unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("real/deeper")).unwrap();
        let mut files = Files::<u64>::new(Some(dir.path().to_path_buf()));
        for name in [
            "photos/a.jpg",
            "photos/new/a.jpg",
            "real/deeper/a.jpg",
            "photos/",
        ] {
            let refused = files.start_download(2, name, 1).unwrap_err();
            assert!(refused.contains("a symbolic link"), "{name}: {refused}");
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn walk_lists_files_and_empty_folders_and_skips_links() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("tree");
        std::fs::create_dir_all(top.join("a/b")).unwrap();
        std::fs::create_dir_all(top.join("empty")).unwrap();
        std::fs::write(top.join("a/b/f.txt"), b"abc").unwrap();
        std::fs::write(top.join("z.txt"), b"").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path(), top.join("link-dir")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), top.join("link-file")).unwrap();
        let w = walk(&top).unwrap();
        let names: Vec<_> = w.entries.iter().map(|e| (e.1.as_str(), e.2)).collect();
        assert_eq!(
            names,
            vec![
                ("tree/a/b/f.txt", EntryKind::File(3)),
                ("tree/empty/", EntryKind::EmptyFolder),
                ("tree/z.txt", EntryKind::File(0)),
            ]
        );
        assert_eq!(w.skipped, vec![top.join("link-dir"), top.join("link-file")]);
        let src = Source::open_as(&w.entries[0].0, &w.entries[0].1).unwrap();
        assert_eq!((src.name.as_str(), src.size), ("tree/a/b/f.txt", 3));
        let folder = Source::folder(&w.entries[1].0, &w.entries[1].1).unwrap();
        assert_eq!(folder.name, "tree/empty/");
        assert!(folder.is_folder());
        assert!(Source::open_as(&top.join("link-file"), "tree/link-file").is_err());
        // A link named as the folder to send is followed, and named after its target.
        std::os::unix::fs::symlink(&top, root.path().join("alias")).unwrap();
        let via = walk(&root.path().join("alias")).unwrap();
        assert_eq!(via.entries.len(), 3);
        assert_eq!(via.entries[0].1, "tree/a/b/f.txt");
    }

    #[test]
    fn resumes_from_kept_partial() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.bin.part"), [1u8; 10]).unwrap();
        let mut files = Files::<u64>::new(Some(dir.path().to_path_buf()));
        assert_eq!(files.start_download(2, "f.bin", 100), Ok(10));
        // A second offer of the same name at once does not share the partial file.
        assert_eq!(files.start_download(4, "f.bin", 100), Ok(0));
        assert!(dir.path().join("f (1).bin.part").exists());
    }

    #[test]
    fn read_buffers_are_reused_once_unshared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("src.bin");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let mut files = Files::<u64>::new(None);
        files.add_source(0, Source::open(&path).unwrap());
        let read = |files: &Files<u64>, offset: u64, len: usize| match files
            .read_job(0, offset, len)
            .unwrap()
            .run()
        {
            DiskDone::Read(Ok(b)) => b,
            other => panic!("{other:?}"),
        };
        let first = read(&files, 0, 100_000);
        assert_eq!(&first[..], &content[..100_000]);
        let ptr = first.as_ptr();
        // Still shared: not taken.
        let copy = first.clone();
        files.buffers().give(first);
        assert!(files.buffers().is_empty());
        files.buffers().give(copy);
        assert_eq!(files.buffers().len(), 1);
        // The same memory, overwritten with the new range (shorter and then longer).
        let second = read(&files, 100_000, 60_000);
        assert_eq!(second.as_ptr(), ptr);
        assert_eq!(&second[..], &content[100_000..160_000]);
        files.buffers().give(second);
        let third = read(&files, 50_000, 150_000);
        assert_eq!(&third[..], &content[50_000..]);
        // Small pieces are not kept.
        files.buffers().give(Bytes::from(vec![0u8; 100]));
        assert!(files.buffers().is_empty());
    }

    #[test]
    fn longer_partial_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.bin.part"), [1u8; 10]).unwrap();
        let mut files = Files::<u64>::new(Some(dir.path().to_path_buf()));
        assert_eq!(files.start_download(2, "f.bin", 5), Ok(0));
    }
}
