//! The disk jobs run against real files: naming, resume, never overwriting, planted links
//! and special files, folders made through handles, and the sending side's opening and
//! walking (see the crate docs). The attacks need symbolic links and FIFOs, so those tests
//! are Unix-only; the rest run on Windows too.

use std::io;
#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;

use bytes::Bytes;
use tidings_disk::{run, DiskDone, DiskJob, OpenSource, Source};
#[cfg(unix)]
use tidings_disk::{walk, EntryKind};
use tidings_host::files::Files;

/// An empty download folder and the files of a side receiving into it.
fn receiver() -> (tempfile::TempDir, Files<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(Some(dir.path().to_path_buf()));
    (dir, files)
}

/// Makes download `key` of the offered `name` ready as a host would: the prepare job, then
/// the download registered. The offset to accept from, or the reason to refuse.
fn start(files: &mut Files<u64>, key: u64, name: &str, size: u64) -> Result<u64, String> {
    let job = files.prepare_download(name, size)?;
    match run(job) {
        DiskDone::Prepared(Ok(download)) => {
            let offset = download.offset;
            files.add_download(key, download);
            Ok(offset)
        }
        DiskDone::Prepared(Err(reason)) => Err(reason),
        other => panic!("{other:?}"),
    }
}

/// Fails download `key` as after a digest mismatch: its partial file is removed.
fn discard(files: &mut Files<u64>, key: u64) {
    match run(files.discard(key).unwrap()) {
        DiskDone::Discarded(Ok(())) => {}
        other => panic!("{other:?}"),
    }
}

/// Makes a FIFO at `at` (with the `mkfifo` program: rustix has no `mkfifoat` on macOS).
#[cfg(unix)]
fn mkfifo(at: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(at)
        .status()
        .unwrap();
    assert!(made.success());
}

/// Writes `data` as the whole of download `key` and finishes it: where it landed.
fn complete(files: &mut Files<u64>, key: u64, data: &[u8]) -> io::Result<PathBuf> {
    match run(files
        .write_job(key, 0, Bytes::copy_from_slice(data))
        .unwrap())
    {
        DiskDone::Written(Ok(_)) => {}
        other => panic!("{other:?}"),
    }
    match run(files.finish_ok(key).unwrap()) {
        DiskDone::Finalized(placed) => placed,
        other => panic!("{other:?}"),
    }
}

#[test]
fn never_overwrites() {
    let (dir, mut files) = receiver();
    std::fs::write(dir.path().join("a.txt"), b"old").unwrap();
    assert_eq!(start(&mut files, 2, "a.txt", 3), Ok(0));
    let placed = complete(&mut files, 2, b"new").unwrap();
    assert_eq!(placed, dir.path().join("a (1).txt"));
    assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"old");
    assert_eq!(std::fs::read(placed).unwrap(), b"new");
    assert!(!dir.path().join("a.txt.part").exists());
}

#[test]
#[cfg(unix)]
fn a_planted_symlink_is_not_followed() {
    let (dir, mut files) = receiver();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    let link = dir.path().join("f.bin.part");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    // Passed over like a taken name: the download goes to the next partial name.
    assert_eq!(start(&mut files, 2, "f.bin", 3), Ok(0));
    assert!(dir.path().join("f (1).bin.part").is_file());
    let placed = complete(&mut files, 2, b"new").unwrap();
    assert_eq!(placed, dir.path().join("f.bin"));
    assert_eq!(std::fs::read(&placed).unwrap(), b"new");
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
}

#[test]
#[cfg(unix)]
fn a_planted_hard_link_fifo_or_folder_part_is_passed_over() {
    let (dir, mut files) = receiver();
    // A hard link to a file elsewhere (same file system): writing into it would change
    // that file, and a resume would even start from its length.
    let outside = tempfile::tempdir_in(dir.path().parent().unwrap()).unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    std::fs::hard_link(&victim, dir.path().join("h.bin.part")).unwrap();
    let fifo = dir.path().join("g.bin.part");
    mkfifo(&fifo);
    // Another peer's empty folder named like the partial file of `report.pdf`.
    assert_eq!(start(&mut files, 2, "report.pdf.part/", 0), Ok(0));
    assert!(matches!(files.finish_ok(2), Some(DiskJob::Folder { .. })));

    assert_eq!(start(&mut files, 4, "h.bin", 100), Ok(0));
    assert!(dir.path().join("h (1).bin.part").is_file());
    assert_eq!(start(&mut files, 6, "g.bin", 100), Ok(0));
    assert!(dir.path().join("g (1).bin.part").is_file());
    assert_eq!(start(&mut files, 8, "report.pdf", 3), Ok(0));
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
    run(files.write_job(6, 0, Bytes::from_static(b"gg")).unwrap());
    assert_eq!(
        files.finish_failed(6),
        Some(dir.path().join("g (1).bin.part"))
    );
    assert_eq!(start(&mut files, 10, "g.bin", 100), Ok(2));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &std::fs::symlink_metadata(&fifo).unwrap().file_type()
    ));
}

#[test]
#[cfg(unix)]
fn a_folder_swapped_for_a_link_meanwhile_does_not_lead_the_file_out() {
    let (dir, mut files) = receiver();
    let outside = tempfile::tempdir().unwrap();
    assert_eq!(start(&mut files, 2, "photos/sub/a.jpg", 3), Ok(0));
    assert_eq!(start(&mut files, 4, "photos/sub/b.jpg", 3), Ok(0));
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
    run(files.write_job(4, 0, Bytes::from_static(b"x")).unwrap());
    discard(&mut files, 4);
    assert!(!dir.path().join("moved/sub/b.jpg.part").exists());

    let mut outside_now: Vec<_> = std::fs::read_dir(outside.path().join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    outside_now.sort();
    assert_eq!(outside_now, ["a.jpg.part", "b.jpg.part"]);
}

#[test]
#[cfg(unix)]
fn a_partial_file_replaced_meanwhile_is_not_placed() {
    let (dir, mut files) = receiver();
    assert_eq!(start(&mut files, 2, "a.txt", 3), Ok(0));
    let part = dir.path().join("a.txt.part");
    std::fs::remove_file(&part).unwrap();
    std::fs::write(&part, b"not ours").unwrap();
    let refused = complete(&mut files, 2, b"abc").unwrap_err();
    assert!(refused.to_string().contains("replaced"), "{refused}");
    assert!(!dir.path().join("a.txt").exists());
}

#[test]
#[cfg(unix)]
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
#[cfg(unix)]
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
    let (dir, mut files) = receiver();
    assert_eq!(start(&mut files, 2, "top/sub/f.bin", 3), Ok(0));
    assert!(dir.path().join("top/sub/f.bin.part").is_file());
    assert_eq!(start(&mut files, 4, "top/empty/", 0), Ok(0));
    let Some(DiskJob::Folder { path }) = files.finish_ok(4) else {
        panic!("a folder finishes as a folder");
    };
    assert_eq!(path, dir.path().join("top/empty"));
    assert!(path.is_dir());
    // Escapes are refused even if a caller did not reduce the name.
    assert!(start(&mut files, 6, "../x", 1).is_err());
    assert!(start(&mut files, 8, "/etc/x", 1).is_err());
    assert!(!dir.path().parent().unwrap().join("x").exists());
}

#[test]
#[cfg(unix)]
fn a_planted_symlink_to_a_folder_outside_is_not_followed() {
    let (dir, mut files) = receiver();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("photos")).unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("real/deeper")).unwrap();
    for (name, size) in [
        ("photos/a.jpg", 1),
        ("photos/new/a.jpg", 1),
        ("real/deeper/a.jpg", 1),
        ("photos/", 0),
    ] {
        let refused = start(&mut files, 2, name, size).unwrap_err();
        assert!(refused.contains("a symbolic link"), "{name}: {refused}");
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    // A folder offered with a size is refused before anything is made.
    let refused = start(&mut files, 4, "new/", 1).unwrap_err();
    assert_eq!(refused, "a folder is offered with a size");
    assert!(!dir.path().join("new").exists());
}

#[test]
#[cfg(unix)]
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
    let (dir, mut files) = receiver();
    std::fs::write(dir.path().join("f.bin.part"), [1u8; 10]).unwrap();
    assert_eq!(start(&mut files, 2, "f.bin", 100), Ok(10));
    // A second offer of the same name at once does not share the partial file.
    assert_eq!(start(&mut files, 4, "f.bin", 100), Ok(0));
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
    let read = |files: &Files<u64>, offset: u64, len: usize| match run(files
        .read_job(0, offset, len)
        .unwrap())
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
    let (dir, mut files) = receiver();
    std::fs::write(dir.path().join("f.bin.part"), [1u8; 10]).unwrap();
    assert_eq!(start(&mut files, 2, "f.bin", 5), Ok(0));
}

#[test]
fn two_offers_of_one_name_prepared_at_once_get_their_own_partial_files() {
    let (dir, mut files) = receiver();
    std::fs::write(dir.path().join("f.bin.part"), [1u8; 10]).unwrap();
    // A client's disk thread may run both jobs before the first result is reported.
    let first = run(files.prepare_download("f.bin", 100).unwrap());
    let second = run(files.prepare_download("f.bin", 100).unwrap());
    let (DiskDone::Prepared(Ok(first)), DiskDone::Prepared(Ok(second))) = (first, second) else {
        panic!("both are made ready");
    };
    assert_eq!((first.offset, second.offset), (10, 0));
    assert_eq!(first.path, dir.path().join("f.bin.part"));
    assert_eq!(second.path, dir.path().join("f (1).bin.part"));
    // A download never registered (its offer ended meanwhile) frees its name.
    drop(second);
    files.add_download(2, first);
    let third = run(files.prepare_download("f.bin", 100).unwrap());
    let DiskDone::Prepared(Ok(third)) = third else {
        panic!("made ready");
    };
    assert_eq!(third.path, dir.path().join("f (1).bin.part"));
}

#[test]
fn a_discarded_partial_file_is_removed_and_a_kept_one_resumes() {
    let (dir, mut files) = receiver();
    assert_eq!(start(&mut files, 2, "a.bin", 10), Ok(0));
    run(files.write_job(2, 0, Bytes::from_static(b"abcd")).unwrap());
    assert_eq!(files.finish_failed(2), Some(dir.path().join("a.bin.part")));
    assert_eq!(start(&mut files, 4, "a.bin", 10), Ok(4));
    discard(&mut files, 4);
    assert!(!dir.path().join("a.bin.part").exists());
    assert!(!files.contains(4));
}

/// Windows has no `linkat`: the file is placed by its folder's path as read back from the
/// folder's handle when the file is placed, and the folder, held open by the download,
/// cannot be moved away (and so not swapped for a link) meanwhile.
#[test]
#[cfg(windows)]
fn a_folder_in_use_cannot_be_moved_away() {
    let (dir, mut files) = receiver();
    assert_eq!(start(&mut files, 2, "photos/sub/a.jpg", 3), Ok(0));
    let moved = dir.path().join("moved");
    assert!(std::fs::rename(dir.path().join("photos/sub"), &moved).is_err());
    let placed = complete(&mut files, 2, b"abc").unwrap();
    assert_eq!(placed, dir.path().join("photos/sub/a.jpg"));
    assert_eq!(std::fs::read(&placed).unwrap(), b"abc");
    // Free again once the download is over.
    std::fs::rename(dir.path().join("photos/sub"), &moved).unwrap();
}
