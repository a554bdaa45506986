//! A static library for C callers, without dependencies.

/// The answer.
#[no_mangle]
pub extern "C" fn clib_answer() -> u32 {
    42
}
