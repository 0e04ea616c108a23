// The built-in catalog is embedded with include_dir!, which does not track files added later.
fn main() {
    println!("cargo:rerun-if-changed=config/services");
}
