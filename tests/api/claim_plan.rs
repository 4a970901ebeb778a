//! Query plans that must hold however the tables grow. The delivery log finds each
//! notification's last attempt by the `delivery_attempts_outbox` index (both stores).
//!
//! PostgreSQL plans the claim's head query as probes of the outbox's keys, however
//! large the outbox has grown since its statistics were taken. Planned as a join (its
//! `IN` form), it scanned the whole outbox at every claim once the table outgrew what
//! PostgreSQL believed of it: claims slowed as delivered rows accumulated (README,
//! "The claim's round trips"). Autovacuum is off on the CI machine, so the outbox here
//! has never been analysed: the planner goes by its pages alone.

use handoff::store::outbox::{pick_text, BEHIND_LISTED, SELECT_DELIVERIES, STAMP_LISTED};
use handoff::store::postgres::{claimer, in_list, SKIP_LOCKED};

use crate::helpers::{spawn, Backend};
use crate::receiver::Receiver;
use crate::subscriptions::{subscribe, subscription};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_claim_probes_the_outbox_by_key() {
    let Some(app) = spawn(Backend::Postgres).await else {
        return;
    };
    let rx = Receiver::start().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            subscribe(
                &app,
                &subscription("encounter-end", &[], &rx.url, "id-only"),
            )
            .await,
        );
    }
    let mut c = app.pg_connection().await;
    // A delivered history of 20,000 rows and one pending row per subscription, due
    // only in a far future, so that the gateway's own worker leaves them alone.
    sqlx::query(
        "INSERT INTO outbox (subscription_id, kind, webhook_id, state, next_attempt, created, done_at) \
         SELECT s, 'event-notification', 'w' || g, 'delivered', 0, 0, 0 \
         FROM unnest($1::text[]) s, generate_series(1, 1000) g",
    )
    .bind(&ids)
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbox (subscription_id, kind, webhook_id, state, next_attempt, created) \
         SELECT s, 'event-notification', 'p-' || s, 'pending', 1000000000000000000, 0 \
         FROM unnest($1::text[]) s",
    )
    .bind(&ids)
    .execute(&mut c)
    .await
    .unwrap();
    let pick = pick_text(&in_list, SKIP_LOCKED, &claimer::gone("o.claimed_by"))
        .replace("$1", "2000000000000000000")
        .replace("$3", "32");
    let plan = explain(&mut c, &pick).await;
    assert!(
        !plan.contains("Seq Scan on outbox"),
        "the heads are looked up by key, not by reading the outbox:\n{plan}"
    );
    assert!(plan.contains("outbox_pkey"), "{plan}");
    // The query itself finds every subscription's pending row.
    let found: Vec<(i64,)> = sqlx::query_as(&pick).fetch_all(&mut c).await.unwrap();
    assert_eq!(found.len(), 20);

    // The claim's other statements over all its notifications (`outbox/rows.rs`) probe
    // by key too: the rows behind each head, and the stamps.
    let asks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, s)| serde_json::json!({"i": i, "sub": s, "head": 0, "stamped": null, "lim": 5}))
        .collect();
    let asks = serde_json::Value::from(asks).to_string();
    let behind = BEHIND_LISTED.replace("$1", &format!("'{asks}'"));
    let plan = explain(&mut c, &behind).await;
    assert!(!plan.contains("Seq Scan on outbox"), "{plan}");
    // Each subscription's one pending row lies behind a head of 0, none delivered.
    let rows: Vec<(i64, i64)> = sqlx::query_as(&format!("SELECT i, id FROM ({behind}) b"))
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    let stamps: Vec<_> = found
        .iter()
        .map(|(id,)| serde_json::json!({"id": id, "n": 1, "b": id}))
        .collect();
    let stamps = serde_json::Value::from(stamps).to_string();
    let stamp = STAMP_LISTED
        .replace("$1", &format!("'{stamps}'"))
        .replace("$2", "2000000000000000000");
    let plan = explain(&mut c, &stamp).await;
    assert!(!plan.contains("Seq Scan on outbox"), "{plan}");
}

async fn explain(c: &mut sqlx::PgConnection, statement: &str) -> String {
    let plan: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {statement}"))
        .fetch_all(c)
        .await
        .unwrap();
    plan.into_iter()
        .map(|(l,)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The delivery log's statement with its parameters written in.
fn deliveries_query() -> String {
    SELECT_DELIVERIES
        .replace("$1", "'some-subscription'")
        .replace("$2", "50")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_delivery_log_finds_last_attempts_by_key() {
    let Some(app) = spawn(Backend::Sqlite).await else {
        return;
    };
    let path = app.sqlite_path().unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", deliveries_query()))
        .unwrap();
    let plan: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let attempts: Vec<&String> = plan.iter().filter(|l| l.contains(" a ")).collect();
    assert!(
        !attempts.is_empty()
            && attempts
                .iter()
                .all(|l| l.contains("delivery_attempts_outbox")),
        "the attempts are searched by their outbox row: {plan:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_delivery_log_finds_last_attempts_by_key() {
    let Some(app) = spawn(Backend::Postgres).await else {
        return;
    };
    let mut c = app.pg_connection().await;
    // 20,000 attempts of other notifications, newer than any of this subscription's.
    sqlx::query(
        "INSERT INTO delivery_attempts (outbox_id, subscription_id, at, http_status, latency_us) \
         SELECT g, 'other', g, 200, 1 FROM generate_series(1, 20000) g",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let plan = explain(&mut c, &deliveries_query()).await;
    assert_eq!(
        plan.matches("delivery_attempts_outbox").count(),
        2,
        "both subqueries search the attempts by their outbox row:\n{plan}"
    );
}
