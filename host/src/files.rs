//! The disk side of file transfers as a protocol: the bookkeeping of one side's open files
//! ([`Files`]) and the [`DiskJob`]s it hands out, each answered by a [`DiskDone`]. Nothing
//! here touches the file system: `tidings-disk` runs the jobs (and opens the files to send),
//! on whatever thread the runtime allows to block.
//!
//! A transfer's disk work, in order:
//!
//! - receiving: [`DiskJob::Prepare`] walks (and makes) the folders of the offered name below
//!   the download folder and opens its partial file, answered by a [`Download`] (handles and
//!   the offset to resume from) or a reason to refuse the offer; then a [`DiskJob::Write`] for
//!   each chunk; then [`DiskJob::Finalize`] moves the complete file to its final,
//!   never-overwriting name (or [`DiskJob::Discard`] removes a partial file whose bytes are
//!   wrong);
//! - sending: a [`Source`] opened by `tidings-disk`, then a [`DiskJob::Read`] for each chunk
//!   (also to hash a kept partial file when a download resumes).
//!
//! Handles are plain values (`Arc<File>`, folders included), so a job can be sent to any
//! thread and the bookkeeping is the same on every platform. What the names, folders and
//! handles guarantee (no path resolved twice, planted links refused, never overwriting,
//! resume) is written down in `tidings-disk`, which implements it.
//!
//! The one [`Ticket`] type identifies a job handed out by the server's `Host` or the client's
//! `Agent`, for reporting its result back to the same.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::Hash;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tidings_core::transfer::safe_path;

/// Suffix of a partial download.
pub const PART_SUFFIX: &str = ".part";

/// The most names tried for one file (`STEM (1).EXT` … and the same for partial files).
pub const MAX_NAMES: u32 = 10_000;

/// The media type of an empty folder's offer (spec §7.8, "Folders").
pub const FOLDER_MEDIA_TYPE: &str = "inode/directory";

/// A file opened for sending, checked before anything is offered. `tidings-disk` opens it
/// (`OpenSource`): a regular file, or an empty folder of a folder being sent.
#[derive(Debug, Clone)]
pub struct Source {
    /// The open file.
    pub file: Arc<File>,
    /// The name offered to the peer: a base name, or a relative path below a folder sent.
    pub name: String,
    /// Size in bytes when opened.
    pub size: u64,
    /// The media type offered: empty for a file, [`FOLDER_MEDIA_TYPE`] for an empty folder.
    pub media_type: String,
}

impl Source {
    /// Whether this is an empty folder rather than a file.
    pub fn is_folder(&self) -> bool {
        self.media_type == FOLDER_MEDIA_TYPE
    }
}

/// The partial file names taken by the downloads of one [`Files`], shared with the
/// [`DiskJob::Prepare`] jobs it hands out: a job picks a free name and takes it in one step,
/// so two offers of the same name prepared at once (a client's disk thread runs several
/// jobs before it reports the first) never share a partial file.
#[derive(Debug, Clone, Default)]
pub struct PartNames(Arc<Mutex<HashSet<PathBuf>>>);

impl PartNames {
    /// Takes `path` for a download, unless another download has it; the name is free again
    /// when the returned [`PartName`] is dropped.
    pub fn take(&self, path: &Path) -> Option<PartName> {
        let mut taken = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !taken.insert(path.to_path_buf()) {
            return None;
        }
        Some(PartName {
            names: self.clone(),
            path: path.to_path_buf(),
        })
    }

    /// Whether `path` is taken.
    pub fn is_taken(&self, path: &Path) -> bool {
        let taken = self.0.lock().unwrap_or_else(|e| e.into_inner());
        taken.contains(path)
    }
}

/// A partial file name taken by one download (see [`PartNames`]); dropping it frees the name.
#[derive(Debug)]
pub struct PartName {
    names: PartNames,
    path: PathBuf,
}

impl PartName {
    /// The partial file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PartName {
    fn drop(&mut self) {
        let mut taken = self.names.0.lock().unwrap_or_else(|e| e.into_inner());
        taken.remove(&self.path);
    }
}

/// A download made ready by [`DiskJob::Prepare`]: its partial file (or, for an empty folder,
/// the folder made) with the handles it is written, placed and removed through.
#[derive(Debug)]
pub struct Download {
    /// The partial file, open for reading and writing (for an empty folder: the folder).
    pub file: Arc<File>,
    /// The folder it arrives in, as opened on the way down: the partial file is placed and
    /// removed relative to it, never by its path again.
    pub dir: Arc<File>,
    /// The partial file's path (or the folder's), for showing.
    pub path: PathBuf,
    /// The partial file's name in `dir` (empty for a folder).
    pub part_name: String,
    /// The wanted final base name (empty for a folder).
    pub name: String,
    /// An empty folder rather than a file.
    pub folder: bool,
    /// Where the transfer starts: the length of the kept partial file, or 0.
    pub offset: u64,
    /// The partial file name, taken while the download lasts (`None` for a folder).
    pub part: Option<PartName>,
}

/// What [`DiskJob::Prepare`] is to make ready: `file` in `folders` below the download
/// folder `dir`, or the empty folder `folders` itself.
#[derive(Debug)]
pub struct Prepare {
    /// The download folder (may be a link: the operator chose it).
    pub dir: PathBuf,
    /// The folders of the offered name below `dir`, outermost first, each one plain name.
    pub folders: Vec<String>,
    /// The file's base name; `None` for an empty folder (`folders` is the folder).
    pub file: Option<String>,
    /// The offered size: a kept partial file longer than this starts over.
    pub size: u64,
    /// The names other downloads hold; the job takes one for this download.
    pub names: PartNames,
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
    names: PartNames,
    buffers: BufferPool,
}

impl<K: Hash + Eq + Copy> Files<K> {
    /// A store that receives into `dir` (`None`: this side does not take files).
    pub fn new(dir: Option<PathBuf>) -> Self {
        Files {
            dir,
            sources: HashMap::new(),
            downloads: HashMap::new(),
            names: PartNames::default(),
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

    /// A job making a download of the offered `name` of `size` bytes ready; once it is done,
    /// register its [`Download`] with [`Files::add_download`] and accept from its offset.
    ///
    /// # Errors
    ///
    /// A reason for the peer when the offer cannot be taken at all (no download folder, an
    /// unusable name, a folder offered with a size).
    pub fn prepare_download(&self, name: &str, size: u64) -> Result<DiskJob, String> {
        let dir = self
            .dir
            .clone()
            .ok_or_else(|| "this side does not accept files".to_string())?;
        // The session reduced the name already (to a base name, or to a relative path with
        // its own depth limit); reducing again keeps this safe for any caller.
        let path = safe_path(name, usize::MAX).ok_or_else(|| "unusable file name".to_string())?;
        let folder = path.ends_with('/');
        if folder && size != 0 {
            return Err("a folder is offered with a size".to_string());
        }
        let mut folders: Vec<String> = path
            .trim_end_matches('/')
            .split('/')
            .map(str::to_string)
            .collect();
        let file = if folder { None } else { folders.pop() };
        Ok(DiskJob::Prepare(Prepare {
            dir,
            folders,
            file,
            size,
            names: self.names.clone(),
        }))
    }

    /// Registers a download made ready by [`DiskJob::Prepare`] under its transfer key.
    pub fn add_download(&mut self, key: K, download: Download) {
        self.downloads.insert(key, download);
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
            return Some(DiskJob::Folder { path: d.path });
        }
        Some(DiskJob::Finalize {
            file: d.file,
            dir: d.dir,
            part: d.path,
            part_name: d.part_name,
            name: d.name,
        })
    }

    /// The transfer failed: forgets it, keeping a partial file for resume. Returns the kept
    /// partial file.
    pub fn finish_failed(&mut self, key: K) -> Option<PathBuf> {
        self.sources.remove(&key);
        let d = self.downloads.remove(&key)?;
        // A folder stays too, but it holds nothing partial.
        (!d.folder).then_some(d.path)
    }

    /// The transfer failed and its received bytes are known to be wrong (a digest
    /// mismatch): forgets it, with a job that removes its partial file.
    pub fn discard(&mut self, key: K) -> Option<DiskJob> {
        self.sources.remove(&key);
        let d = self.downloads.remove(&key)?;
        (!d.folder).then_some(DiskJob::Discard {
            dir: d.dir,
            part_name: d.part_name,
        })
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

/// One disk operation, runnable on any thread (by `tidings-disk`).
#[derive(Debug)]
pub enum DiskJob {
    /// Make a download ready: answered by [`DiskDone::Prepared`].
    Prepare(Prepare),
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
        /// Shared handle, synced before the move.
        file: Arc<File>,
        /// The folder holding the partial file, opened when the transfer started: the file
        /// is placed relative to it, not by path.
        dir: Arc<File>,
        /// The partial file's path, as it was when the transfer started (for showing).
        part: PathBuf,
        /// The partial file's name in `dir`.
        part_name: String,
        /// The wanted final base name.
        name: String,
    },
    /// Remove a partial file whose bytes are wrong.
    Discard {
        /// The folder holding it, opened when the transfer started.
        dir: Arc<File>,
        /// Its name in `dir`.
        part_name: String,
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
    /// The download is ready, or the reason (for the peer) why not.
    Prepared(Result<Download, String>),
    /// The bytes read.
    Read(io::Result<Bytes>),
    /// How many bytes were written.
    Written(io::Result<u64>),
    /// The final path.
    Finalized(io::Result<PathBuf>),
    /// The partial file is removed (or could not be: nothing more is done about it).
    Discarded(io::Result<()>),
}

/// Identifies a disk job handed out by the server's `Host` (keyed by a hub file handle) or
/// a client's `Agent` (keyed by a transfer id), for reporting its result to the same.
#[derive(Debug, Clone, Copy)]
pub struct Ticket<K> {
    pub(crate) key: K,
    pub(crate) kind: JobKind,
}

impl<K: Copy> Ticket<K> {
    /// The transfer the job belongs to.
    pub fn key(&self) -> K {
        self.key
    }
}

/// What a job was for, and what its result needs to be matched with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum JobKind {
    Prepare,
    Read { offset: u64 },
    Write,
    Finalize { digest: [u8; 32] },
    Discard,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_that_cannot_be_taken_are_refused_before_any_job() {
        let none = Files::<u64>::new(None);
        assert_eq!(
            none.prepare_download("a.txt", 1).unwrap_err(),
            "this side does not accept files"
        );
        let files = Files::<u64>::new(Some(PathBuf::from("in")));
        for name in ["", "..", "a/../b", "/etc/x", "C:x"] {
            assert_eq!(
                files.prepare_download(name, 1).unwrap_err(),
                "unusable file name",
                "{name:?}"
            );
        }
        assert_eq!(
            files.prepare_download("empty/", 1).unwrap_err(),
            "a folder is offered with a size"
        );
    }

    #[test]
    fn a_prepare_job_names_the_folders_and_the_file_reduced() {
        let files = Files::<u64>::new(Some(PathBuf::from("in")));
        let Ok(DiskJob::Prepare(job)) = files.prepare_download("b//./c\\.txt", 7) else {
            panic!("a job");
        };
        assert_eq!(job.dir, PathBuf::from("in"));
        // Both separators split; a hidden name is renamed.
        assert_eq!(job.folders, ["b", "c"]);
        assert_eq!(job.file.as_deref(), Some("_txt"));
        assert_eq!(job.size, 7);
        let Ok(DiskJob::Prepare(job)) = files.prepare_download("x/y/", 0) else {
            panic!("a job");
        };
        assert_eq!(
            (job.folders, job.file),
            (vec!["x".into(), "y".into()], None)
        );
    }

    #[test]
    fn a_part_name_is_taken_once_until_dropped() {
        let names = PartNames::default();
        let path = Path::new("in/a.txt.part");
        let taken = names.take(path).unwrap();
        assert!(names.take(path).is_none());
        assert!(names.is_taken(path));
        drop(taken);
        assert!(!names.is_taken(path));
        assert!(names.take(path).is_some());
    }
}
