fn main() {
    println!("ferrentd");
}
