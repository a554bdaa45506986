fn main() {
    println!("{}", beta::message());
}
