//! Any text given to the recipe parser and renderer yields a recipe or
//! errors, never a panic.

#![no_main]

use std::path::PathBuf;

use cleave_recipe::{RenderConfig, SourceFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = SourceFile::new("recipe.yaml", text);
    if let Ok(recipe) = cleave_recipe::parse(source, PathBuf::from("/nonexistent")) {
        let _ = cleave_recipe::render(&recipe, &RenderConfig::native());
    }
});
