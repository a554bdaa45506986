//! A shared library for C callers, over a path dependency.

/// The length of alpha's greeting.
#[no_mangle]
pub extern "C" fn ffi_greeting_len() -> usize {
    alpha::greeting().len()
}
