//! Declares the `skinny_backend` cfg (see the crate docs, "Forcing the portable backend").

fn main() {
    println!("cargo::rustc-check-cfg=cfg(skinny_backend, values(\"portable\"))");
    println!("cargo::rerun-if-changed=build.rs");
}
