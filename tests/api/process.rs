//! The `handoff` binary itself: settings from the environment and a config file,
//! `migrate`, and graceful shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "handoff-proc-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn migrate_creates_the_sqlite_store() {
    let dir = temp_dir("migrate");
    let db = dir.join("m.db");
    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args([
            "migrate",
            "--database-url",
            &format!("sqlite:{}", db.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_settings_fail_at_start_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["serve"])
        .env("HANDOFF_HTTP_ADDR", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http_addr"));
}

#[tokio::test]
async fn serves_from_env_and_config_file_then_stops_on_sigterm() {
    let dir = temp_dir("serve");
    let port = free_port();
    let config = dir.join("handoff.toml");
    std::fs::write(
        &config,
        format!("http_addr = \"127.0.0.1:{port}\"\nmax_body_bytes = 2048\nmllp_addr = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("serve")
        .env("HANDOFF_CONFIG", &config)
        .env(
            "HANDOFF_DATABASE_URL",
            format!("sqlite:{}", dir.join("s.db").display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed when the test fails part-way, so no server outlives it.
    let mut gw = crate::faults::Gateway {
        child,
        base: String::new(),
    };
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The file's body limit is in force.
    let r = client
        .post(format!("{base}/fhir/Patient"))
        .header("Content-Type", "application/fhir+json")
        .body(format!(
            "{{\"resourceType\":\"Patient\",\"gender\":\"{}\"}}",
            "x".repeat(4000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = client
        .post(format!("{base}/fhir/Patient"))
        .header("Content-Type", "application/fhir+json")
        .body("{\"resourceType\":\"Patient\",\"active\":true}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    gw.sigterm();
    let exit = gw.exit_within(Duration::from_secs(15));
    assert!(exit.success(), "exit status {exit:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn validate_command_reports_issues_and_exit_status() {
    let dir = temp_dir("validate");
    let good = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/encounter-discharge.xml"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["validate", good])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"resourceType": "Encounter", "status": "done", "class": {"code": "IMP"}}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["issue"][0]["code"], "code-invalid");
    assert_eq!(outcome["issue"][0]["expression"][0], "Encounter.status");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn validate_command_checks_profiles() {
    let dir = temp_dir("validate-profile");
    let repo = env!("CARGO_MANIFEST_DIR");
    let profile = "http://handoff.example.org/fhir/StructureDefinition/handoff-discharge-encounter";
    // A discharge without an end time that claims no profile: valid R4 on its own.
    let mut no_end: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{repo}/fixtures/profiles/discharge-no-end.json")).unwrap(),
    )
    .unwrap();
    no_end.as_object_mut().unwrap().remove("meta");
    let file = dir.join("discharge.json");
    std::fs::write(&file, no_end.to_string()).unwrap();
    let run = |args: &[&str], cwd: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_handoff"))
            .arg("validate")
            .args(args)
            .arg(&file)
            .current_dir(cwd)
            .env_remove("HANDOFF_PROFILES_DIR")
            .output()
            .unwrap()
    };
    let repo_dir = std::path::Path::new(repo);
    assert_eq!(run(&[], repo_dir).status.code(), Some(0));
    // --profile: the issue, with its path, and exit status 1.
    let out = run(&["--profile", profile], repo_dir);
    assert_eq!(out.status.code(), Some(1));
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["issue"][0]["code"], "required");
    assert_eq!(outcome["issue"][0]["expression"][0], "Encounter.period.end");
    // Elsewhere there is no ./profiles: no profiles, a warning on stderr only, and the
    // profile asked for is unknown.
    let out = run(&["--profile", profile], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no profiles"));
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["issue"][0]["code"], "not-found");
    // --profiles-dir from anywhere; a directory that is not there is an error.
    let profiles = format!("{repo}/profiles");
    let out = run(&["--profile", profile, "--profiles-dir", &profiles], &dir);
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["issue"][0]["expression"][0], "Encounter.period.end");
    let out = run(&["--profiles-dir", "/nonexistent/profiles"], &dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("profiles_dir"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_malformed_profile_stops_the_server_at_start() {
    let dir = temp_dir("bad-profile");
    std::fs::write(
        dir.join("broken.json"),
        "{\"resourceType\": \"StructureDefinition\"",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--profiles-dir"])
        .arg(&dir)
        .env(
            "HANDOFF_DATABASE_URL",
            format!("sqlite:{}", dir.join("s.db").display()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.json"));
    let _ = std::fs::remove_dir_all(dir);
}
