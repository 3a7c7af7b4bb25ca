// Migrations are embedded by `sqlx::migrate!`; without this, adding a
// migration file would not rebuild the binary that should apply it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
