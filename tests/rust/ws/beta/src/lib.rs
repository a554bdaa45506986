//! The middle: a path dependency, a build script's file and a proc-macro.

include!(concat!(env!("OUT_DIR"), "/table.rs"));

/// The greeting, the table's sum and a macro's count.
pub fn message() -> String {
    let sum: u8 = TABLE.iter().sum();
    format!(
        "{}, sum {sum}, count {}, {}",
        alpha::greeting(),
        macros::count!(a b c d),
        env!("BETA_FLAVOUR")
    )
}
