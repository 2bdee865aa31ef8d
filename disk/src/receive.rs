//! The receiving side: making a download ready below the download folder through folder
//! handles, and placing it without overwriting (see the [crate docs](crate)).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_fs_ext::{DirExt, FollowSymlinks, MetadataExt, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, OpenOptions};
use tidings_host::files::{Download, Prepare, MAX_NAMES, PART_SUFFIX};

use crate::open::{made_blocking, without_waiting};

/// Carries out [`DiskJob::Prepare`](tidings_host::files::DiskJob::Prepare): the folders,
/// then a partial file whose name is free or a usable kept part, and the offset to accept
/// from. Errors are reasons for the peer: they name the offered file or folder only, never
/// the receiver's folders.
pub(crate) fn prepare(job: Prepare) -> Result<Download, String> {
    let Prepare {
        dir,
        folders,
        file,
        size,
        names,
    } = job;
    let (handle, dir) = open_folders(&dir, &folders)?;
    let Some(name) = file else {
        let handle = Arc::new(handle.into_std_file());
        return Ok(Download {
            file: handle.clone(),
            dir: handle,
            path: dir,
            part_name: String::new(),
            name: String::new(),
            folder: true,
            offset: 0,
            part: None,
        });
    };
    // Two offers of the same name at once each get their own partial file, and a name
    // taken by something that is not a usable partial file is passed over.
    let (stem, ext) = split_ext(&name);
    let mut n = 0;
    let (taken, part_name, file) = loop {
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
        let Some(taken) = names.take(&dir.join(&part_name)) else {
            continue;
        };
        match open_part(&handle, &part_name) {
            Ok(Some(file)) => break (taken, part_name, file),
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
    Ok(Download {
        file: Arc::new(file),
        dir: Arc::new(handle.into_std_file()),
        path: taken.path().to_path_buf(),
        part_name,
        name,
        folder: false,
        offset,
        part: Some(taken),
    })
}

/// Moves the partial file `part`, a name in the folder `dir` whose open handle is `file`, to
/// `name` in the same folder, or to `STEM (n).EXT` when taken, and returns the name used.
/// Uses a hard link, which fails instead of replacing, so a file that appears meanwhile is
/// safe too. Everything is relative to `dir`, so a folder on the way that was swapped for a
/// link since `dir` was opened changes nothing; and what is placed must be `file` itself, so
/// something else put under the partial file's name meanwhile is not placed.
pub(crate) fn place_without_overwrite(
    dir: &Dir,
    file: &File,
    part: &str,
    name: &str,
) -> io::Result<String> {
    let ours = Metadata::from_file(file)?;
    let is_ours = |at: &str| {
        dir.symlink_metadata(at)
            .is_ok_and(|m| (m.dev(), m.ino()) == (ours.dev(), ours.ino()))
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
        match dir.hard_link(part, dir, &target) {
            Ok(()) => {
                // Swapped between the look above and the link: take the link back.
                if !is_ours(&target) {
                    let _ = dir.remove_file(&target);
                    return Err(replaced());
                }
                dir.remove_file(part)?;
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => match dir.symlink_metadata(&target) {
                // File systems without hard links: rename after the existence check.
                Err(none) if none.kind() == io::ErrorKind::NotFound => {
                    dir.rename(part, dir, &target)?;
                    return Ok(target);
                }
                _ => return Err(e),
            },
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free file name",
    ))
}

/// A regular file with no other hard link: the only thing a partial file may be.
fn usable_part(m: &Metadata) -> bool {
    m.is_file() && m.nlink() == 1
}

/// Opens (making it if missing) the partial file `name` in the folder `dir`. `None` when
/// something else has that name: a symbolic link, a folder, a FIFO, a device, a socket, or a
/// file with other hard links (writing into it would change a file elsewhere, maybe outside
/// the download folder). That is left alone, untouched.
fn open_part(dir: &Dir, name: &str) -> io::Result<Option<File>> {
    // A look first, so that a FIFO or device is not even opened in the common case; the
    // check of the open file below is the one that counts.
    let something_else = || matches!(dir.symlink_metadata(name), Ok(m) if !usable_part(&m));
    match dir.symlink_metadata(name) {
        Ok(m) if !usable_part(&m) => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(true)
        .follow(FollowSymlinks::No);
    let file = match dir.open_with(name, without_waiting(&mut options)) {
        Ok(file) => file.into_std(),
        // Put there meanwhile, and not openable as a file: a link (not followed), a
        // folder, a socket.
        Err(_) if something_else() => return Ok(None),
        Err(e) => return Err(e),
    };
    if !usable_part(&Metadata::from_file(&file)?) {
        return Ok(None);
    }
    made_blocking(file).map(Some)
}

/// Opens the download folder `dir`, then each folder of `parts` below it, making the missing
/// ones, and returns the innermost folder's handle and path. Each component is opened
/// relative to the handle of the one above, without following a link: it must be a folder
/// itself, not a symbolic link to one, since a link planted in the download folder
/// (`photos` → `/etc`) would lead the download out of it. The handle stays valid whatever
/// happens to the path afterwards; the path is for showing only. The download folder itself
/// may be a link (the operator chose it). Reasons name the component only, never the
/// receiver's folders.
fn open_folders(dir: &Path, parts: &[String]) -> Result<(Dir, PathBuf), String> {
    let mut at = Dir::open_ambient_dir(dir, ambient_authority())
        .map_err(|e| format!("cannot write into the download folder: {}", plain(&e)))?;
    let mut path = dir.to_path_buf();
    for part in parts {
        path.push(part);
        let next = match at.open_dir_nofollow(part) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match at.create_dir(part) {
                // Made meanwhile by another transfer of the same folder: opened alike.
                Ok(()) => at.open_dir_nofollow(part),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => at.open_dir_nofollow(part),
                Err(e) => Err(e),
            },
            other => other,
        };
        at = next.map_err(|e| folder_reason(&at, part, &e))?;
    }
    Ok((at, path))
}

/// Why the folder `part` below `at` could not be opened or made.
fn folder_reason(at: &Dir, part: &str, e: &io::Error) -> String {
    let why = match at.symlink_metadata(part) {
        Ok(m) if m.file_type().is_symlink() => "a symbolic link".to_string(),
        Ok(m) if !m.is_dir() => "a file is in the way".to_string(),
        _ => plain(e),
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
