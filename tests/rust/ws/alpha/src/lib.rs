//! The bottom of the graph.

mod words;

/// A greeting built from the words module.
pub fn greeting() -> String {
    format!("{} from {}", words::HELLO, env!("CARGO_PKG_NAME"))
}
