//! `sqlx::migrate!` embeds `migrations/` at compile time; without this, adding
//! a migration file would not rebuild the server, and a stale binary would run
//! without it.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
