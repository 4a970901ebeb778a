//! A store created by an earlier schema migrates at start and keeps what it held.

use std::str::FromStr;

use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use crate::helpers::{configure_sqlite, ids, spawn_with, Backend};

/// SQLite 0002 rebuilds the search tables clustered by resource: rows written under
/// 0001 must still be found, and an update must replace them, not add to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_search_rows_survive_migration_0002() {
    configure_sqlite();
    let dir = std::env::temp_dir().join(format!("handoff-mig-{}", uuid::Uuid::new_v4().simple()));
    let first_only = dir.join("migrations");
    std::fs::create_dir_all(&first_only).unwrap();
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/store/sqlite/migrations/0001_resources.sql"
    );
    std::fs::copy(src, first_only.join("0001_resources.sql")).unwrap();
    let url = format!("sqlite:{}", dir.join("old.db").display());

    // The database as a build with only migration 0001 left it, holding one Patient.
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::migrate::Migrator::new(first_only.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let body = json!({"resourceType": "Patient", "id": "old-1",
        "meta": {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00Z"}, "gender": "female"});
    for (sql, _) in [
        ("INSERT INTO resource_history (rtype, id, version, last_updated, deleted, body) VALUES ('Patient', 'old-1', 1, 1767225600000000, 0, $1)", ()),
        ("INSERT INTO resources (rtype, id, version, last_updated, deleted) VALUES ('Patient', 'old-1', 1, 1767225600000000, 0)", ()),
        ("INSERT INTO search_token (rtype, rid, param, system, code) VALUES ('Patient', 'old-1', 'gender', NULL, 'female')", ()),
    ] {
        sqlx::query(sql).bind(body.to_string()).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let app = spawn_with(Backend::Sqlite, |s| s.database_url = url.clone())
        .await
        .unwrap();
    assert_eq!(ids(&app.search("Patient?gender=female").await), ["old-1"]);
    let updated = json!({"resourceType": "Patient", "id": "old-1", "gender": "male"});
    assert_eq!(app.put_json("Patient/old-1", &updated).await.status(), 200);
    assert!(ids(&app.search("Patient?gender=female").await).is_empty());
    assert_eq!(ids(&app.search("Patient?gender=male").await), ["old-1"]);
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

/// 0011 (batches): an event row queued before batches existed may already have been
/// sent under its webhook id, so the migration makes it a batch of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rows_queued_before_batches_travel_alone() {
    configure_sqlite();
    let dir = std::env::temp_dir().join(format!("handoff-mig-{}", uuid::Uuid::new_v4().simple()));
    let before = dir.join("migrations");
    std::fs::create_dir_all(&before).unwrap();
    let all = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/sqlite/migrations");
    for f in std::fs::read_dir(all).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().into_string().unwrap();
        if name.as_str() < "0011" {
            std::fs::copy(f.path(), before.join(&name)).unwrap();
        }
    }
    let url = format!("sqlite:{}", dir.join("old.db").display());
    let options = SqliteConnectOptions::from_str(&url).unwrap();
    let pool = SqlitePool::connect_with(options.clone().create_if_missing(true))
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    // Two event rows and a heartbeat owed to a subscription that no longer exists.
    for (kind, seq) in [
        ("event-notification", Some(1)),
        ("event-notification", Some(2)),
        ("heartbeat", None),
    ] {
        sqlx::query(
            "INSERT INTO outbox (subscription_id, kind, event_seq, event_number, webhook_id, state, attempts, next_attempt, created) \
             VALUES ('gone', $1, $2, $2, $3, 'pending', 1, 0, 0)",
        )
        .bind(kind)
        .bind(seq)
        .bind(uuid::Uuid::new_v4().to_string())
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let app = spawn_with(Backend::Sqlite, |s| s.database_url = url.clone())
        .await
        .unwrap();
    drop(app);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    let rows: Vec<(i64, String, Option<i64>)> =
        sqlx::query_as("SELECT id, kind, batch_head FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(rows.len(), 3);
    for (id, kind, batch) in rows {
        let want = (kind == "event-notification").then_some(id);
        assert_eq!(batch, want, "{kind} row {id}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The suite's SQLite half runs on the page cache the gateway's `main` installs
/// (pcache.rs), not on SQLite's default: what it tests is what runs.
#[test]
fn the_suite_runs_on_the_gateways_page_cache() {
    configure_sqlite();
    assert!(handoff::store::sqlite::pcache::installed());
}
