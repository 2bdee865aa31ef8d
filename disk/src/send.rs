//! The sending side: opening what a user sends, and listing a folder to send (see the
//! [crate docs](crate)).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use cap_std::ambient_authority;
use cap_std::fs::OpenOptions;
use tidings_core::transfer::{safe_file_name, safe_path};
use tidings_host::files::{Source, FOLDER_MEDIA_TYPE};

use crate::open::{made_blocking, without_waiting};

/// The most folder levels [`walk`] descends (as deep as a receiver keeps by default).
pub const MAX_WALK_DEPTH: usize = 32;

/// Opening a [`Source`]: what a user sends is checked and opened before anything is offered.
/// (The type is `tidings-host`'s, which does no I/O; opening it is this crate's.)
pub trait OpenSource: Sized {
    /// Opens `path` for sending. Fails for a missing file, anything but a regular file (a
    /// FIFO is refused at once, not waited on) or a name that cannot be offered. A symbolic
    /// link at `path` is followed: the user named it.
    fn open(path: &Path) -> io::Result<Self>;

    /// Opens the regular file at `path` to be offered as `name`, a relative path such as
    /// `photos/a.jpg` (reduced by the folder rules of spec §7.8). A symbolic link at `path`
    /// is refused, not followed.
    fn open_as(path: &Path, name: &str) -> io::Result<Self>;

    /// An empty folder at `path`, offered as `name/` with size 0 and media type
    /// [`FOLDER_MEDIA_TYPE`]. A symbolic link at `path` is refused, not followed.
    fn folder(path: &Path, name: &str) -> io::Result<Self>;
}

/// Opens the file at `path` for a driver's `send_file` ([`OpenSource::open`]), with an
/// error that names the path.
///
/// # Errors
///
/// [`Error::File`](tidings_host::Error::File): the path and why it cannot be sent.
pub fn open_to_send(path: &Path) -> Result<Source, tidings_host::Error> {
    Source::open(path).map_err(|source| tidings_host::Error::File {
        path: path.to_path_buf(),
        source,
    })
}

impl OpenSource for Source {
    fn open(path: &Path) -> io::Result<Source> {
        let file = open_regular(path, FollowSymlinks::Yes)?;
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

    fn open_as(path: &Path, name: &str) -> io::Result<Source> {
        let file = open_regular(path, FollowSymlinks::No)?;
        let meta = file.metadata()?;
        Ok(Source {
            file: Arc::new(file),
            name: offered_path(name, false)?,
            size: meta.len(),
            media_type: String::new(),
        })
    }

    fn folder(path: &Path, name: &str) -> io::Result<Source> {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .follow(FollowSymlinks::No)
            .maybe_dir(true);
        let file = open_without_waiting(path, &mut options)?;
        if !file.metadata()?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a folder"));
        }
        Ok(Source {
            file: Arc::new(made_blocking(file)?),
            name: offered_path(name, true)?,
            size: 0,
            media_type: FOLDER_MEDIA_TYPE.to_string(),
        })
    }
}

/// Opens `path` for reading and checks that it is a regular file. The open itself must not
/// wait or take over a terminal (see [`without_waiting`]): a FIFO would block until someone
/// writes to it, so it is refused like a device.
fn open_regular(path: &Path, follow: FollowSymlinks) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).follow(follow);
    let file = open_without_waiting(path, &mut options)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    made_blocking(file)
}

/// Opens `path` as the user named it (the folders on the way are followed) with `options`,
/// without waiting (see [`without_waiting`]).
fn open_without_waiting(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let file =
        cap_std::fs::File::open_ambient_with(path, without_waiting(options), ambient_authority())?;
    Ok(file.into_std())
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
/// (see the [crate docs](crate)); `root` itself may be a link to a folder, named after its
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
    // ([`OpenSource::folder`]), so it is named by the folder the link leads to.
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
