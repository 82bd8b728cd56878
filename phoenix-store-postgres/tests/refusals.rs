//! What PostgreSQL refuses reaches callers as `Invalid` with a message of this layer: no
//! driver text, constraint or schema name (they would reach HTTP clients). The facade
//! refuses such values before any store sees them (`phoenix_core::inputs`); this is the
//! safety net for callers of the store itself.

mod common;

use common::pg;
use phoenix_conformance::TestBackend;
use phoenix_core::ids::AgentId;
use phoenix_core::measure::{CardinalitySnapshot, PackedSnapshot};
use phoenix_core::store::StoreError;

#[tokio::test]
async fn refused_values_are_invalid_without_driver_text() {
    let Some(backend) = pg().await else {
        return;
    };
    let snapshot = PackedSnapshot::pack(&CardinalitySnapshot {
        agent_id: AgentId::new(),
        source: phoenix_core::measure::SnapshotSource::Input,
        host: "web\0".to_owned(),
        taken_at: backend.clock().now(),
        interval_secs: 10,
        series: Vec::new(),
    });
    match backend.stores().metrics.put_snapshot(&snapshot).await {
        Err(StoreError::Invalid(message)) => {
            for internal in [
                "jsonb",
                "\\u0000",
                "22P05",
                "Unicode",
                "phx_t_",
                "snapshots",
            ] {
                assert!(
                    !message.contains(internal),
                    "`{internal}` leaked into `{message}`"
                );
            }
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(
        backend
            .stores()
            .metrics
            .snapshot(snapshot.agent_id)
            .await
            .unwrap(),
        None
    );
    backend.cleanup().await;
}
