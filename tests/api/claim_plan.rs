//! PostgreSQL plans the claim's head query as probes of the outbox's keys, however
//! large the outbox has grown since its statistics were taken. Planned as a join (its
//! `IN` form), it scanned the whole outbox at every claim once the table outgrew what
//! PostgreSQL believed of it: claims slowed as delivered rows accumulated (README,
//! "The claim's round trips"). Autovacuum is off on the CI machine, so the outbox here
//! has never been analysed: the planner goes by its pages alone.

use handoff::store::outbox::pick_text;
use handoff::store::postgres::{in_list, SKIP_LOCKED};

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
    let pick = pick_text(&in_list, SKIP_LOCKED)
        .replace("$1", "2000000000000000000")
        .replace("$3", "32");
    let plan: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {pick}"))
        .fetch_all(&mut c)
        .await
        .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|(l,)| l).collect();
    let plan = plan.join("\n");
    assert!(
        !plan.contains("Seq Scan on outbox"),
        "the heads are looked up by key, not by reading the outbox:\n{plan}"
    );
    assert!(plan.contains("outbox_pkey"), "{plan}");
    // The query itself finds every subscription's pending row.
    let found: Vec<(i64,)> = sqlx::query_as(&pick).fetch_all(&mut c).await.unwrap();
    assert_eq!(found.len(), 20);
}
