fn main() {
    println!("sincut");
}
