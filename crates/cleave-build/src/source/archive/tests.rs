//! Hostile archives: whatever they hold, nothing is written outside the
//! target directory. Each case unpacks into `root/dest` with an `outside`
//! directory beside it (reached by relative and by absolute links) and
//! checks that `outside` is exactly as it was.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use super::*;

/// One tar entry, its name written as is (no checks of the tar crate).
enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Fifo(&'a str),
}

fn tar_bytes(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, kind, data, link): (&str, _, &[u8], Option<&str>) = match entry {
            Entry::File(name, data) => (name, tar::EntryType::Regular, data, None),
            Entry::Dir(name) => (name, tar::EntryType::Directory, b"", None),
            Entry::Symlink(name, to) => (name, tar::EntryType::Symlink, b"", Some(to)),
            Entry::HardLink(name, to) => (name, tar::EntryType::Link, b"", Some(to)),
            Entry::Fifo(name) => (name, tar::EntryType::Fifo, b"", None),
        };
        let slot = &mut header.as_gnu_mut().unwrap().name;
        slot[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            header.set_link_name_literal(link).unwrap();
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzipped(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(bytes).unwrap();
    xz.finish().unwrap()
}

/// One zip entry.
enum ZipEntry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

fn zip_bytes(entries: &[ZipEntry<'_>]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for entry in entries {
        match entry {
            ZipEntry::File(name, data) => {
                zip.start_file(*name, options).unwrap();
                zip.write_all(data).unwrap();
            }
            ZipEntry::Symlink(name, to) => zip.add_symlink(*name, *to, options).unwrap(),
        }
    }
    zip.finish().unwrap().into_inner()
}

/// `root/dest` (empty) and `root/outside` (holding `victim`).
struct Scene {
    root: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("dest")).unwrap();
        std::fs::create_dir(root.path().join("outside")).unwrap();
        std::fs::write(root.path().join("outside/victim"), "untouched").unwrap();
        Scene { root }
    }

    fn dest(&self) -> PathBuf {
        self.root.path().join("dest")
    }

    fn outside(&self) -> String {
        self.root.path().join("outside").display().to_string()
    }

    fn unpack(&self, bytes: &[u8], kind: ArchiveKind) -> Result<(), ArchiveError> {
        unpack(Cursor::new(bytes), kind, &self.dest())
    }

    /// Fails unless `outside` holds exactly its victim, unchanged, and
    /// `root` holds nothing new.
    fn assert_untouched(&self) {
        let list = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(list(self.root.path()), ["dest", "outside"]);
        assert_eq!(list(&self.root.path().join("outside")), ["victim"]);
        assert_eq!(
            std::fs::read_to_string(self.root.path().join("outside/victim")).unwrap(),
            "untouched"
        );
    }
}

fn refused(result: Result<(), ArchiveError>) -> String {
    match result {
        Err(ArchiveError::Entry { entry, source }) => format!("{entry}: {source}"),
        other => panic!("expected a refused entry, got {other:?}"),
    }
}

#[test]
fn archive_kinds_follow_the_file_name() {
    assert_eq!(ArchiveKind::of("a-1.0.tar.gz"), Some(ArchiveKind::TarGz));
    assert_eq!(ArchiveKind::of("A.TAR.XZ"), Some(ArchiveKind::TarXz));
    assert_eq!(ArchiveKind::of("x.tar.zst"), Some(ArchiveKind::TarZst));
    assert_eq!(ArchiveKind::of("x.zip"), Some(ArchiveKind::Zip));
    assert_eq!(ArchiveKind::of("x.c"), None);
}

#[test]
fn a_well_formed_tarball_unpacks_files_links_dirs_and_modes() {
    let scene = Scene::new();
    let bytes = tar_bytes(&[
        Entry::Dir("pkg/"),
        Entry::File("pkg/run.sh", b"#!/bin/sh\n"),
        Entry::Symlink("pkg/config.guess", "/usr/share/misc/config.guess"),
        Entry::Symlink("pkg/again.sh", "run.sh"),
        Entry::HardLink("pkg/hard.sh", "pkg/run.sh"),
        Entry::File("./pkg/sub/deep.txt", b"deep"),
    ]);
    scene.unpack(&gzipped(&bytes), ArchiveKind::TarGz).unwrap();
    let dest = scene.dest();
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(dest.join("pkg/run.sh")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(dest.join("pkg/config.guess")).unwrap(),
        Path::new("/usr/share/misc/config.guess")
    );
    assert_eq!(
        std::fs::read(dest.join("pkg/hard.sh")).unwrap(),
        b"#!/bin/sh\n"
    );
    assert_eq!(
        std::fs::read(dest.join("pkg/sub/deep.txt")).unwrap(),
        b"deep"
    );
    let mtime = filetime::FileTime::from_last_modification_time(&meta);
    assert_eq!(mtime.unix_seconds(), 1_600_000_000);
    scene.assert_untouched();
}

#[test]
fn names_that_leave_the_target_are_refused() {
    for name in ["../escape.txt", "pkg/../../escape.txt", "/tmp/escape.txt"] {
        let scene = Scene::new();
        let bytes = tar_bytes(&[Entry::File(name, b"x")]);
        let message = refused(scene.unpack(&bytes, ArchiveKind::Tar));
        assert!(message.contains("not a relative path"), "{message}");
        scene.assert_untouched();
    }
}

#[test]
fn nothing_is_written_through_a_link_the_archive_made() {
    let scene = Scene::new();
    let outside = scene.outside();
    for (link, to) in [("pkg/abs", outside.as_str()), ("pkg/rel", "../../outside")] {
        let bytes = tar_bytes(&[
            Entry::Symlink(link, to),
            Entry::File(&format!("{link}/victim"), b"overwritten"),
        ]);
        let message = refused(scene.unpack(&xz(&bytes), ArchiveKind::TarXz));
        assert!(message.contains("never writes through a link"), "{message}");
        let bytes = tar_bytes(&[
            Entry::Symlink(link, to),
            Entry::Dir(&format!("{link}/new/")),
        ]);
        refused(scene.unpack(&bytes, ArchiveKind::Tar));
        scene.assert_untouched();
    }
}

#[test]
fn nothing_is_written_through_a_link_already_in_the_target() {
    let scene = Scene::new();
    std::os::unix::fs::symlink(scene.outside(), scene.dest().join("link")).unwrap();
    let bytes = tar_bytes(&[Entry::File("link/victim", b"overwritten")]);
    refused(scene.unpack(&bytes, ArchiveKind::Tar));
    scene.assert_untouched();
}

#[test]
fn a_file_replaces_a_link_at_its_path_instead_of_writing_into_its_target() {
    let scene = Scene::new();
    let victim = format!("{}/victim", scene.outside());
    let bytes = tar_bytes(&[
        Entry::Symlink("pkg/f", &victim),
        Entry::File("pkg/f", b"the archive's own file"),
    ]);
    scene.unpack(&bytes, ArchiveKind::Tar).unwrap();
    let f = scene.dest().join("pkg/f");
    assert!(std::fs::symlink_metadata(&f).unwrap().is_file());
    assert_eq!(std::fs::read(&f).unwrap(), b"the archive's own file");
    scene.assert_untouched();
}

#[test]
fn hard_links_must_name_a_file_unpacked_before_them() {
    let scene = Scene::new();
    let outside = scene.outside();
    let victim = format!("{outside}/victim");
    let cases: Vec<Vec<Entry<'_>>> = vec![
        vec![Entry::HardLink("pkg/h", &victim)],
        vec![Entry::HardLink("pkg/h", "../outside/victim")],
        // A hard link to a symlink that points outside would be the
        // outside file once written through.
        vec![
            Entry::Symlink("pkg/s", &victim),
            Entry::HardLink("pkg/h", "pkg/s"),
        ],
        vec![
            Entry::Symlink("pkg/d", &outside),
            Entry::HardLink("pkg/h", "pkg/d/victim"),
        ],
    ];
    for entries in cases {
        assert!(
            scene
                .unpack(&tar_bytes(&entries), ArchiveKind::Tar)
                .is_err()
        );
        scene.assert_untouched();
    }
}

#[test]
fn devices_and_fifos_are_skipped() {
    let scene = Scene::new();
    let bytes = tar_bytes(&[Entry::Fifo("pkg/fifo"), Entry::File("pkg/a", b"a")]);
    scene.unpack(&bytes, ArchiveKind::Tar).unwrap();
    assert!(!scene.dest().join("pkg/fifo").exists());
    assert!(scene.dest().join("pkg/a").is_file());
}

#[test]
fn zip_archives_get_the_same_checks() {
    let scene = Scene::new();
    let outside = scene.outside();
    let bytes = zip_bytes(&[
        ZipEntry::File("pkg/a.txt", b"a"),
        ZipEntry::Symlink("pkg/link", &outside),
    ]);
    scene.unpack(&bytes, ArchiveKind::Zip).unwrap();
    assert_eq!(std::fs::read(scene.dest().join("pkg/a.txt")).unwrap(), b"a");
    assert!(
        std::fs::symlink_metadata(scene.dest().join("pkg/link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    for entries in [
        vec![
            ZipEntry::Symlink("z/link", &outside),
            ZipEntry::File("z/link/victim", b"overwritten"),
        ],
        vec![ZipEntry::File("../escape.txt", b"x")],
        vec![ZipEntry::File("/tmp/escape.txt", b"x")],
    ] {
        let scene = Scene::new();
        refused(scene.unpack(&zip_bytes(&entries), ArchiveKind::Zip));
        scene.assert_untouched();
    }
    scene.assert_untouched();
}

#[test]
fn damaged_data_is_an_error_not_a_panic() {
    let scene = Scene::new();
    for kind in [
        ArchiveKind::Tar,
        ArchiveKind::TarGz,
        ArchiveKind::TarBz2,
        ArchiveKind::TarXz,
        ArchiveKind::TarZst,
        ArchiveKind::Zip,
    ] {
        assert!(
            scene.unpack(b"not an archive at all", kind).is_err(),
            "{kind:?}"
        );
    }
    scene.assert_untouched();
}

/// splitmix64: a fixed sequence, so a failing case is the same on every
/// run and can be replayed by its number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Garbles `bytes` in place: flipped bits, overwritten bytes, pieces of
/// names that climb or reach a link, a truncation now and then.
fn garble(bytes: &mut Vec<u8>, rng: &mut Rng) {
    const TOKENS: [&[u8]; 7] = [
        b"../",
        b"/",
        b"up/",
        b"abs/",
        b"\0",
        b"7777777",
        b"\xff\xff",
    ];
    if bytes.is_empty() {
        return;
    }
    for _ in 0..=rng.below(8) {
        let at = rng.below(bytes.len());
        match rng.below(3) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = rng.next() as u8,
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let end = (at + token.len()).min(bytes.len());
                bytes[at..end].copy_from_slice(&token[..end - at]);
            }
        }
    }
    if rng.below(6) == 0 {
        bytes.truncate(rng.below(bytes.len()));
    }
}

/// Recomputes the checksum of each tar header reachable from the start,
/// so that garbled headers get past the checksum to the code that reads
/// names, sizes and link targets.
fn fix_tar_checksums(bytes: &mut [u8]) {
    let mut at = 0;
    while at + 512 <= bytes.len() {
        let header = &mut bytes[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size = std::str::from_utf8(&header[124..136])
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_matches(['\0', ' ']), 8).ok());
        let Some(size) = size else { break };
        at += 512 + usize::try_from(size.div_ceil(512) * 512).unwrap_or(usize::MAX / 2);
    }
}

fn compressed(bytes: &[u8], kind: ArchiveKind) -> Vec<u8> {
    match kind {
        ArchiveKind::TarGz => gzipped(bytes),
        ArchiveKind::TarXz => xz(bytes),
        ArchiveKind::TarBz2 => {
            let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            bz.write_all(bytes).unwrap();
            bz.finish().unwrap()
        }
        ArchiveKind::TarZst => zstd::encode_all(bytes, 1).unwrap(),
        _ => bytes.to_vec(),
    }
}

/// Tars and zips that each try one way out of the target (a link to
/// `outside` written through, a hard link to it, a name through a link
/// the target already holds, a name with `..`) among ordinary entries, so
/// that garbling reaches the entries after the trick as well.
fn hostile_seeds(outside: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let victim = format!("{outside}/victim");
    let tars = vec![
        tar_bytes(&[
            Entry::Dir("pkg/"),
            Entry::File("pkg/a.txt", b"some text to garble"),
            Entry::Symlink("pkg/abs", outside),
            Entry::File("pkg/b.txt", b"more"),
        ]),
        tar_bytes(&[
            Entry::Symlink("pkg/rel", "../../outside"),
            Entry::File("pkg/rel/victim", b"overwritten"),
        ]),
        tar_bytes(&[
            Entry::File("pkg/a.txt", b"text"),
            Entry::HardLink("pkg/h", "pkg/a.txt"),
            Entry::HardLink("pkg/v", &victim),
        ]),
        tar_bytes(&[
            Entry::File("pkg/a.txt", b"text"),
            Entry::File("up/victim", b"overwritten"),
        ]),
        tar_bytes(&[
            Entry::Fifo("pkg/fifo"),
            Entry::Symlink("pkg/s", &victim),
            Entry::File("pkg/s", b"replaces the link"),
        ]),
        tar_bytes(&[Entry::Dir("pkg/"), Entry::File("pkg/../../escape", b"x")]),
    ];
    let zips = vec![
        zip_bytes(&[
            ZipEntry::File("pkg/a.txt", b"some text to garble"),
            ZipEntry::Symlink("pkg/abs", outside),
        ]),
        zip_bytes(&[
            ZipEntry::Symlink("pkg/abs", outside),
            ZipEntry::File("pkg/abs/victim", b"overwritten"),
        ]),
        zip_bytes(&[
            ZipEntry::File("pkg/a.txt", b"text"),
            ZipEntry::File("abs/victim", b"overwritten"),
        ]),
    ];
    (tars, zips)
}

/// The deterministic counterpart of the `unpack_archive` fuzz target, run
/// with every test: hostile archives of every kind, garbled a few hundred
/// ways (the tar headers mostly with valid checksums, some compressed
/// streams garbled too), unpacked into a directory that already holds
/// links to `outside`. Each either unpacks or fails; none panics or
/// writes outside.
#[test]
fn garbled_hostile_archives_never_panic_or_write_outside() {
    let kinds = [
        ArchiveKind::Tar,
        ArchiveKind::TarGz,
        ArchiveKind::TarBz2,
        ArchiveKind::TarXz,
        ArchiveKind::TarZst,
        ArchiveKind::Zip,
    ];
    let mut rng = Rng(13);
    for case in 0..360 {
        let kind = kinds[case % kinds.len()];
        let scene = Scene::new();
        let (mut tars, mut zips) = hostile_seeds(&scene.outside());
        let bytes = if kind == ArchiveKind::Zip {
            let mut zip = zips.swap_remove(rng.below(zips.len()));
            garble(&mut zip, &mut rng);
            zip
        } else {
            let mut tar = tars.swap_remove(rng.below(tars.len()));
            garble(&mut tar, &mut rng);
            if rng.below(4) != 0 {
                fix_tar_checksums(&mut tar);
            }
            let mut bytes = compressed(&tar, kind);
            if kind != ArchiveKind::Tar && rng.below(3) == 0 {
                garble(&mut bytes, &mut rng);
            }
            bytes
        };
        let dest = scene.dest();
        std::os::unix::fs::symlink("../outside", dest.join("up")).unwrap();
        std::os::unix::fs::symlink(scene.outside(), dest.join("abs")).unwrap();
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = scene.unpack(&bytes, kind);
            scene.assert_untouched();
        }));
        assert!(checked.is_ok(), "case {case} ({kind:?}) failed");
    }
}
