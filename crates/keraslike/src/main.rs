fn main() {
    println!("keraslike");
}
