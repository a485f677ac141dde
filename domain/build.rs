//! `sqlx::migrate!` embeds the migrations at compile time; a new or changed file must rebuild
//! the crate (as sqlx's documentation advises for stable Rust).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
