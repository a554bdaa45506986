use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(Path::new(&out).join("table.rs"), "pub const TABLE: [u8; 3] = [1, 2, 3];\n").unwrap();
    println!("cargo:rustc-env=BETA_FLAVOUR=plain");
    println!("cargo:rerun-if-changed=build.rs");
}
