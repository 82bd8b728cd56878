//! Phoenix on PostgreSQL, as two server replicas would run it: two independent
//! [`PgStore`] connections on one database (each with its own pool and LISTEN/NOTIFY
//! listener). A real agent enrolls and long-polls through replica B; the experiment is
//! created, started and driven by the controller through replica A. The deploy task
//! enqueued by A wakes the agent waiting on B through the database's notifications.
//!
//! Run (PostgreSQL on the default local port, trust auth):
//!
//! ```sh
//! cargo run -p example-postgres -- postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! The tables live in the schema `phoenix_example` (created and migrated on connect; pass a
//! second argument to choose another). `tests/runs.rs` runs it in a throwaway schema when
//! `PHOENIX_TEST_POSTGRES_URL` is set.

use std::error::Error;
use std::sync::Arc;

use phoenix_core::Phoenix;
use phoenix_core::experiment::Experiment;
use phoenix_store_postgres::{PgStore, PgStoreOptions};

pub use example_embed_core::Options;

/// One replica: its own pool, listener and facade.
async fn replica(
    url: &str,
    schema: &str,
) -> Result<(PgStore, Phoenix), Box<dyn Error + Send + Sync>> {
    let store = PgStore::connect_with(
        url,
        PgStoreOptions {
            schema: schema.to_owned(),
            application_name: "phoenix-example".to_owned(),
            ..PgStoreOptions::default()
        },
    )
    .await?;
    // The database's clock is the deployment's time source (leases, `run_at`).
    let phoenix = Phoenix::new(
        store.stores(),
        Arc::new(store.clock()),
        example_embed_core::config(),
    );
    Ok((store, phoenix))
}

/// Runs one experiment to its verdict across two replicas on `url`, in `schema`.
///
/// # Errors
/// When the database is unreachable, or as [`example_embed_core::run_on`].
pub async fn run(
    url: &str,
    schema: &str,
    options: Options,
) -> Result<Experiment, Box<dyn Error + Send + Sync>> {
    let (store_a, replica_a) = replica(url, schema).await?;
    let (store_b, replica_b) = replica(url, schema).await?;
    println!("replicas A and B connected to schema {schema}");
    let finished = example_embed_core::run_on(replica_b, replica_a, options).await;
    store_a.close().await;
    store_b.close().await;
    finished
}

/// Drops `schema` and everything in it (for throwaway runs).
///
/// # Errors
/// When the database is unreachable.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), Box<dyn Error + Send + Sync>> {
    // Schema names are the ones `PgStoreOptions` accepts: nothing to quote or escape.
    if !schema
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!("not a schema name PgStore accepts: {schema:?}").into());
    }
    let pool = sqlx::PgPool::connect(url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&pool)
    .await?;
    pool.close().await;
    Ok(())
}
