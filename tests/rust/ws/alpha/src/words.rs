pub const HELLO: &str = "hello";
