//! Any bytes given to the source archive unpacker, as any of its formats,
//! yield files below the target directory or an error: never a panic, and
//! never a write outside it.
//!
//! The first byte picks the format, the rest is the archive. Each run
//! unpacks into `dest` below a fresh directory that also holds `outside/`
//! (with one file); `dest` starts with links to `outside/` by a relative
//! and by an absolute path, as an earlier source could leave them, and
//! inputs can make more of their own. Afterwards the directory must hold
//! just `dest` and `outside`, and `outside` its one untouched file.

#![no_main]

use std::io::Cursor;
use std::path::Path;

use cleave_build::source::archive::{ArchiveKind, unpack};
use libfuzzer_sys::fuzz_target;

const KINDS: [ArchiveKind; 6] = [
    ArchiveKind::Tar,
    ArchiveKind::TarGz,
    ArchiveKind::TarBz2,
    ArchiveKind::TarXz,
    ArchiveKind::TarZst,
    ArchiveKind::Zip,
];

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, archive)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(first) % KINDS.len()];
    let root = tempfile::tempdir().expect("temporary directory");
    let (dest, outside) = (root.path().join("dest"), root.path().join("outside"));
    std::fs::create_dir(&dest).expect("dest");
    std::fs::create_dir(&outside).expect("outside");
    std::fs::write(outside.join("victim"), "untouched").expect("victim");
    std::os::unix::fs::symlink("../outside", dest.join("up")).expect("link");
    std::os::unix::fs::symlink(&outside, dest.join("abs")).expect("link");

    let _ = unpack(Cursor::new(archive), kind, &dest);

    assert_eq!(names(root.path()), ["dest", "outside"]);
    assert_eq!(names(&outside), ["victim"]);
    assert_eq!(
        std::fs::read(outside.join("victim")).expect("victim"),
        b"untouched"
    );
});
