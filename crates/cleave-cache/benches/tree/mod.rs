//! Trees of files for the benches: contents that do not compress, the same
//! on every run.

use std::path::Path;

/// Deterministic incompressible bytes, different for every file.
fn fill(buf: &mut [u8], mut seed: u64) {
    for chunk in buf.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
    }
}

/// `files` files in 100 directories, sizes spread around `mean`.
pub fn make_tree(root: &Path, files: usize, mean: usize) -> u64 {
    let mut total = 0;
    let mut buf = vec![0u8; mean * 2];
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i % 100));
        std::fs::create_dir_all(&dir).unwrap();
        let size = mean / 2 + (i * 7919) % mean;
        fill(&mut buf[..size], i as u64 + 1);
        std::fs::write(dir.join(format!("f{i}.dat")), &buf[..size]).unwrap();
        total += size as u64;
    }
    total
}
