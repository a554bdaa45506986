//! How an entry maps onto what a REAPI server keeps, and the checks of what
//! comes back.
//!
//! ```text
//! Command  {arguments: ["cleave-entry", "cleave-reapi-v1", "<key>"]}
//! Action   {command_digest, input_root_digest: the empty Directory}
//!          its digest is the entry's name in the Action Cache
//! ActionResult
//!   output_files        cleave/entry.json, cleave/files.json (as stored)
//!   output_directories  trees/<tree>: a Tree (and every Directory) per
//!                       tree of the entry: files by their SHA-256, with
//!                       executable bit, mode and mtime; symlinks; empty
//!                       directories
//! CAS      every file's contents, the Trees and Directories, the two
//!          entry files, the Command and the Action
//! ```
//!
//! The key is in the Command, so distinct keys give distinct Actions, and
//! the same key gives the same Action on every machine. Because the result
//! names every blob through output files and Trees, a server's own
//! garbage collection and its "every referenced blob exists" check work on
//! cleave's entries as on any build tool's.
//!
//! `files.json` stays what a restore reads: it is sealed by `entry.json`,
//! which names the key. The Trees say where each of its files is in the
//! CAS; a Tree that disagrees with the manifest (a missing file, another
//! size) is damage, and every blob read is checked against the BLAKE3
//! digest the manifest gives before the store takes it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::protobuf::{Timestamp, UInt32Value};
use prost::Message;
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::manifest::{Item, Manifest};

/// The layout's version, part of every Action.
pub const LAYOUT: &str = "cleave-reapi-v1";
/// Where `entry.json` is in an ActionResult.
pub const ENTRY_JSON: &str = "cleave/entry.json";
/// Where `files.json` is in an ActionResult.
pub const FILES_JSON: &str = "cleave/files.json";
/// Where a tree's output directory is in an ActionResult.
const TREES: &str = "trees/";

/// The most bytes of `entry.json` read back.
pub const MAX_ENTRY_JSON: u64 = 16 << 20;
/// The most bytes of `files.json` or of one Tree read back.
pub const MAX_LISTING: u64 = 256 << 20;
/// The most bytes of an entry's files and Trees together.
pub const MAX_LISTINGS: u64 = 512 << 20;

/// A blob as REAPI names it: SHA-256 in lowercase hex, and its size.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha {
    /// 64 lowercase hex digits.
    pub hash: String,
    /// Bytes.
    pub size: u64,
}

impl Sha {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha {
        Sha {
            hash: hex(&Sha256::digest(bytes)),
            size: bytes.len() as u64,
        }
    }

    /// The digest of a message as it is encoded.
    pub fn of_message(message: &impl Message) -> (Sha, Vec<u8>) {
        let bytes = message.encode_to_vec();
        (Sha::of(&bytes), bytes)
    }

    /// A digest read from the server, checked: 64 lowercase hex digits and
    /// a size that is not negative and at most `max`.
    pub fn checked(digest: Option<&re::Digest>, max: u64) -> Result<Sha, String> {
        let digest = digest.ok_or("a digest is missing")?;
        let hex_ok = digest.hash.len() == 64
            && digest
                .hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(format!("`{}` is not a SHA-256 digest", digest.hash));
        }
        let size = u64::try_from(digest.size_bytes)
            .map_err(|_| format!("blob {} has a negative size", digest.hash))?;
        if size > max {
            return Err(format!(
                "blob {} claims {size} bytes, more than the {max} allowed",
                digest.hash
            ));
        }
        Ok(Sha {
            hash: digest.hash.clone(),
            size,
        })
    }

    /// As the protocol sends it.
    pub fn to_proto(&self) -> re::Digest {
        re::Digest {
            hash: self.hash.clone(),
            size_bytes: self.size as i64,
        }
    }
}

impl std::fmt::Display for Sha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.hash, self.size)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Command and Action of the entry `key`: the Action's digest is the
/// entry's name in the Action Cache.
pub fn action(key: &Digest) -> [(Sha, Vec<u8>); 2] {
    let command = re::Command {
        arguments: vec!["cleave-entry".into(), LAYOUT.into(), key.to_hex()],
        ..Default::default()
    };
    let (command_digest, command_bytes) = Sha::of_message(&command);
    let action = re::Action {
        command_digest: Some(command_digest.to_proto()),
        input_root_digest: Some(Sha::of(&[]).to_proto()),
        ..Default::default()
    };
    [Sha::of_message(&action), (command_digest, command_bytes)]
}

/// One tree of an entry, as the server keeps it.
pub struct TreeUpload {
    /// Its output directory's path.
    pub path: String,
    /// The encoded Tree.
    pub tree: (Sha, Vec<u8>),
    /// The root Directory's digest.
    pub root: Sha,
    /// Every Directory, encoded (the root's among them), for servers that
    /// read directories rather than Trees.
    pub directories: Vec<(Sha, Vec<u8>)>,
}

/// A directory being built from a manifest.
#[derive(Default)]
struct DirBuild {
    files: BTreeMap<String, re::FileNode>,
    dirs: BTreeMap<String, DirBuild>,
    links: BTreeMap<String, re::SymlinkNode>,
    mode: Option<u32>,
}

impl DirBuild {
    /// Its Directory message, after its children's, which go to `out`.
    fn finish(self, out: &mut BTreeMap<Sha, (re::Directory, Vec<u8>)>) -> (Sha, re::Directory) {
        let directories = self
            .dirs
            .into_iter()
            .map(|(name, child)| {
                let (digest, _) = child.finish(out);
                re::DirectoryNode {
                    name,
                    digest: Some(digest.to_proto()),
                }
            })
            .collect();
        let directory = re::Directory {
            files: self.files.into_values().collect(),
            directories,
            symlinks: self.links.into_values().collect(),
            node_properties: self.mode.map(|mode| re::NodeProperties {
                unix_mode: Some(UInt32Value { value: mode }),
                ..Default::default()
            }),
        };
        let (digest, bytes) = Sha::of_message(&directory);
        out.insert(digest.clone(), (directory.clone(), bytes));
        (digest, directory)
    }
}

/// A tree name or path component that cannot be a REAPI name.
fn name_of(component: Component<'_>, path: &Path) -> Result<String, String> {
    match component {
        Component::Normal(name) => name
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{} is not UTF-8, which REAPI names must be", path.display())),
        _ => Err(format!("{} is not a plain relative path", path.display())),
    }
}

/// The Trees of an entry's manifest, each file named by the SHA-256 that
/// `sha_of` gives for its BLAKE3 digest. A symlink with an absolute target
/// is left out of its Tree where the server disallows them
/// (`absolute_links`): the manifest, which restores, keeps it.
pub fn trees(
    manifest: &Manifest,
    sha_of: &HashMap<Digest, Sha>,
    absolute_links: bool,
) -> Result<Vec<TreeUpload>, String> {
    let mut out = Vec::new();
    for (tree, items) in &manifest.trees {
        let tree_name = name_of(
            Path::new(tree)
                .components()
                .next()
                .ok_or("a tree has no name")?,
            Path::new(tree),
        )?;
        if Path::new(tree).components().count() != 1 {
            return Err(format!("tree `{tree}` is not one plain name"));
        }
        let mut root = DirBuild::default();
        for item in items {
            let path = item.path();
            let mut parts: Vec<String> = path
                .components()
                .map(|c| name_of(c, path))
                .collect::<Result<_, _>>()?;
            let Some(name) = parts.pop() else {
                return Err("an item has an empty path".into());
            };
            let mut dir = &mut root;
            for part in parts {
                dir = dir.dirs.entry(part).or_default();
            }
            match item {
                Item::Dir { mode, .. } => dir.dirs.entry(name).or_default().mode = Some(*mode),
                Item::File {
                    blob, mode, mtime, ..
                } => {
                    let sha = sha_of
                        .get(blob)
                        .ok_or_else(|| format!("no SHA-256 for blob {blob}"))?;
                    let node = re::FileNode {
                        name: name.clone(),
                        digest: Some(sha.to_proto()),
                        is_executable: mode & 0o111 != 0,
                        node_properties: Some(re::NodeProperties {
                            mtime: Some(Timestamp {
                                seconds: mtime.0,
                                nanos: mtime.1 as i32,
                            }),
                            unix_mode: Some(UInt32Value { value: *mode }),
                            ..Default::default()
                        }),
                    };
                    dir.files.insert(name, node);
                }
                Item::Symlink { target, .. } => {
                    let target = target
                        .to_str()
                        .ok_or_else(|| format!("the target of {} is not UTF-8", path.display()))?;
                    if absolute_links || !target.starts_with('/') {
                        let node = re::SymlinkNode {
                            name: name.clone(),
                            target: target.to_string(),
                            node_properties: None,
                        };
                        dir.links.insert(name, node);
                    }
                }
            }
        }
        let mut directories = BTreeMap::new();
        let (root_digest, root_directory) = root.finish(&mut directories);
        let children = directories
            .iter()
            .filter(|(digest, _)| **digest != root_digest)
            .map(|(_, (directory, _))| directory.clone())
            .collect();
        let tree_message = re::Tree {
            root: Some(root_directory),
            children,
        };
        out.push(TreeUpload {
            path: format!("{TREES}{tree_name}"),
            tree: Sha::of_message(&tree_message),
            root: root_digest,
            directories: directories
                .into_iter()
                .map(|(digest, (_, bytes))| (digest, bytes))
                .collect(),
        });
    }
    Ok(out)
}

/// The ActionResult of an entry.
pub fn action_result(entry_json: &Sha, files_json: &Sha, trees: &[TreeUpload]) -> re::ActionResult {
    let file = |path: &str, digest: &Sha| re::OutputFile {
        path: path.into(),
        digest: Some(digest.to_proto()),
        ..Default::default()
    };
    re::ActionResult {
        output_files: vec![file(ENTRY_JSON, entry_json), file(FILES_JSON, files_json)],
        output_directories: trees
            .iter()
            .map(|t| re::OutputDirectory {
                path: t.path.clone(),
                tree_digest: Some(t.tree.0.to_proto()),
                root_directory_digest: Some(t.root.to_proto()),
                is_topologically_sorted: false,
            })
            .collect(),
        ..Default::default()
    }
}

/// What an ActionResult read back says, checked.
#[derive(Debug)]
pub struct Found {
    /// `entry.json`.
    pub entry_json: Sha,
    /// `files.json`.
    pub files_json: Sha,
    /// Each tree's name and its Tree's digest.
    pub trees: HashMap<String, Sha>,
}

/// Reads an ActionResult as cleave wrote it. Any output path that is
/// absolute, has a `..` or `.` component or occurs twice, a digest that is
/// not SHA-256 or claims more than the limits, or a missing entry file is
/// refused.
pub fn found(result: &re::ActionResult) -> Result<Found, String> {
    let mut seen = std::collections::HashSet::new();
    let mut check = |path: &str| {
        let plain = !path.is_empty()
            && !path.starts_with('/')
            && path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !plain {
            return Err(format!("output path `{path}` is not a plain relative path"));
        }
        if !seen.insert(path.to_string()) {
            return Err(format!("output path `{path}` occurs twice"));
        }
        Ok(())
    };
    let (mut entry_json, mut files_json) = (None, None);
    for file in &result.output_files {
        check(&file.path)?;
        match file.path.as_str() {
            ENTRY_JSON => entry_json = Some(Sha::checked(file.digest.as_ref(), MAX_ENTRY_JSON)?),
            FILES_JSON => files_json = Some(Sha::checked(file.digest.as_ref(), MAX_LISTING)?),
            _ => {}
        }
    }
    let mut trees = HashMap::new();
    for dir in &result.output_directories {
        check(&dir.path)?;
        if let Some(name) = dir.path.strip_prefix(TREES) {
            trees.insert(
                name.to_string(),
                Sha::checked(dir.tree_digest.as_ref(), MAX_LISTING)?,
            );
        }
    }
    for link in &result.output_symlinks {
        check(&link.path)?;
    }
    Ok(Found {
        entry_json: entry_json.ok_or("the result has no cleave/entry.json")?,
        files_json: files_json.ok_or("the result has no cleave/files.json")?,
        trees,
    })
}

/// Where the files of one manifest tree are in the CAS, from its Tree:
/// each `(path, size)` asked for to its digest. A path the Tree lacks, or
/// whose size differs from the manifest's, is damage.
pub fn locate<'a>(
    tree: &re::Tree,
    wanted: impl Iterator<Item = (&'a Path, u64)>,
) -> Result<HashMap<&'a Path, Sha>, String> {
    // Directory 0 is the root; the children are found by their digest.
    let root = tree.root.as_ref().ok_or("the Tree has no root")?;
    let directories: Vec<&re::Directory> = std::iter::once(root).chain(&tree.children).collect();
    let by_digest: HashMap<String, usize> = (directories.iter().enumerate().skip(1))
        .map(|(i, d)| (Sha::of_message(*d).0.hash, i))
        .collect();
    // Each directory's names, indexed when a lookup first goes through it.
    let mut indexes: Vec<Option<Names<'_>>> = vec![None; directories.len()];
    let mut out = HashMap::new();
    for (path, size) in wanted {
        let lacks = || format!("the Tree lacks {}", path.display());
        let parts: Vec<&str> = path
            .components()
            .map(|c| match c {
                Component::Normal(n) => n.to_str().ok_or("a path is not UTF-8"),
                _ => Err("a path is not plain"),
            })
            .collect::<Result<_, _>>()?;
        let Some((file, dirs)) = parts.split_last() else {
            return Err("an empty path".into());
        };
        let mut at = 0;
        for part in dirs {
            let names = indexes[at].get_or_insert_with(|| names(directories[at]));
            let node = names.dirs.get(part).ok_or_else(lacks)?;
            let digest = Sha::checked(node.digest.as_ref(), MAX_LISTING)?;
            at = *by_digest.get(&digest.hash).ok_or_else(lacks)?;
        }
        let names = indexes[at].get_or_insert_with(|| names(directories[at]));
        let node = names.files.get(file).ok_or_else(lacks)?;
        let digest = Sha::checked(node.digest.as_ref(), size)?;
        if digest.size != size {
            return Err(format!(
                "the Tree gives {} {} bytes, the manifest {size}",
                path.display(),
                digest.size
            ));
        }
        out.insert(path, digest);
    }
    Ok(out)
}

/// The names in one directory.
#[derive(Clone)]
struct Names<'t> {
    dirs: HashMap<&'t str, &'t re::DirectoryNode>,
    files: HashMap<&'t str, &'t re::FileNode>,
}

fn names(dir: &re::Directory) -> Names<'_> {
    Names {
        dirs: (dir.directories.iter())
            .map(|d| (d.name.as_str(), d))
            .collect(),
        files: dir.files.iter().map(|f| (f.name.as_str(), f)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, contents: &[u8], mode: u32) -> Item {
        Item::File {
            path: path.into(),
            blob: Digest::of(contents),
            size: contents.len() as u64,
            mode,
            mtime: (1_700_000_000, 5),
            roots: vec![],
            binary: false,
        }
    }

    fn manifest() -> Manifest {
        let items = vec![
            Item::Dir {
                path: "empty".into(),
                mode: 0o700,
            },
            file("lib/a.so", b"aaa", 0o755),
            file("lib/sub/b.txt", b"bb", 0o644),
            file("c", b"bb", 0o644),
            Item::Symlink {
                path: "lib/link".into(),
                target: "/abs/target".into(),
            },
        ];
        Manifest {
            roots: BTreeMap::new(),
            trees: [("prefix".to_string(), items)].into(),
        }
    }

    fn shas() -> HashMap<Digest, Sha> {
        [&b"aaa"[..], b"bb"]
            .into_iter()
            .map(|b| (Digest::of(b), Sha::of(b)))
            .collect()
    }

    #[test]
    fn each_key_has_its_own_stable_action() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        assert_eq!(action(&a)[0].0, action(&a)[0].0);
        assert_ne!(action(&a)[0].0, action(&b)[0].0);
        assert_eq!(action(&a)[0].0, Sha::of(&action(&a)[0].1));
    }

    #[test]
    fn a_tree_locates_every_file_of_its_manifest() {
        let manifest = manifest();
        let made = trees(&manifest, &shas(), false).unwrap();
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].path, "trees/prefix");
        let tree = re::Tree::decode(made[0].tree.1.as_slice()).unwrap();
        let root = tree.root.as_ref().unwrap();
        assert!(root.symlinks.is_empty(), "an absolute link left out");
        let names: Vec<&str> = root.directories.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["empty", "lib"]);
        let with_link = trees(&manifest, &shas(), true).unwrap();
        assert_ne!(
            with_link[0].tree.0, made[0].tree.0,
            "the link kept where allowed"
        );
        let wanted = [
            (Path::new("lib/a.so"), 3),
            (Path::new("lib/sub/b.txt"), 2),
            (Path::new("c"), 2),
        ];
        let found = locate(&tree, wanted.iter().copied()).unwrap();
        assert_eq!(found[Path::new("lib/a.so")], Sha::of(b"aaa"));
        assert_eq!(found[Path::new("lib/sub/b.txt")], Sha::of(b"bb"));
        let err = locate(&tree, [(Path::new("lib/a.so"), 4)].into_iter()).unwrap_err();
        assert!(err.contains("bytes"), "{err}");
        let err = locate(&tree, [(Path::new("lib/none"), 1)].into_iter()).unwrap_err();
        assert!(err.contains("lacks"), "{err}");
    }

    #[test]
    fn a_result_with_unsafe_paths_or_claims_is_refused() {
        let good = action_result(&Sha::of(b"e"), &Sha::of(b"f"), &[]);
        assert!(found(&good).is_ok());
        type Damage = fn(&mut re::ActionResult);
        let cases: [(&str, Damage); 5] = [
            ("not a plain", |r| {
                r.output_files[0].path = "cleave/../x".into()
            }),
            ("not a plain", |r| {
                r.output_files[0].path = "/cleave/entry.json".into()
            }),
            ("twice", |r| r.output_files[1].path = ENTRY_JSON.into()),
            ("more than", |r| {
                r.output_files[1].digest.as_mut().unwrap().size_bytes = i64::MAX
            }),
            ("negative", |r| {
                r.output_files[0].digest.as_mut().unwrap().size_bytes = -1
            }),
        ];
        for (says, damage) in cases {
            let mut result = good.clone();
            damage(&mut result);
            let err = found(&result).unwrap_err();
            assert!(err.contains(says), "{says}: {err}");
        }
        let mut result = good;
        result.output_files.remove(0);
        assert!(found(&result).unwrap_err().contains("entry.json"));
    }
}
