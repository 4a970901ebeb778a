// Stamp the build date into the CapabilityStatement (`date` is required there).
fn main() {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| s.len() == 10)
        .unwrap_or_else(|| "2026-01-01".to_owned());
    println!("cargo:rustc-env=HANDOFF_BUILD_DATE={date}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/store/sqlite/migrations");
    println!("cargo:rerun-if-changed=src/store/postgres/migrations");
}
