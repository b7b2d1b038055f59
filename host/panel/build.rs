//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the
//! migration directories, and Cargo does not watch them on its own.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
