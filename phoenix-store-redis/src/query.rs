//! [`QueryStore`] on Redis: `qs:<id>` hashes (id, n name, j record), the `qss` lex index
//! and `qsn`, name -> id.

use async_trait::async_trait;
use phoenix_core::error::StoreError;
use phoenix_core::queries::QuerySource;
use phoenix_core::store::QueryStore;
use uuid::Uuid;

use crate::RedisStore;
use crate::codec::{Status, corrupt, encode_json};
use crate::scripts::SCRIPTS;

/// Sources read per scan call when listing all of them.
const LIST_BATCH: usize = 500;

#[async_trait]
impl QueryStore for RedisStore {
    async fn put_query_source(&self, source: &QuerySource) -> Result<Uuid, StoreError> {
        let json = encode_json(source)?;
        let mut reply = self
            .run(&SCRIPTS.query_source_put, |inv| {
                inv.arg(source.id.to_string()).arg(&source.name).arg(&json);
            })
            .await?;
        match reply.status {
            Status::Ok => {
                let id = reply.next_text()?;
                id.parse()
                    .map_err(|e| corrupt(format!("stored query source id {id:?}: {e}")))
            }
            other => Err(corrupt(format!("unexpected script status {other:?}"))),
        }
    }

    async fn list_query_sources(&self) -> Result<Vec<QuerySource>, StoreError> {
        let mut sources = Vec::new();
        let mut after = None;
        loop {
            let batch = self
                .scan("qss", "qs", after.take(), LIST_BATCH, &[])
                .await?;
            let full = batch.len() == LIST_BATCH;
            let mut last = None;
            for fields in &batch {
                let mut source: QuerySource = fields.json("j")?;
                let id = fields.get("id")?;
                source.id = id
                    .parse()
                    .map_err(|e| corrupt(format!("stored query source id {id:?}: {e}")))?;
                last = Some(id.to_owned());
                sources.push(source);
            }
            match last {
                Some(last) if full => after = Some(last),
                _ => break,
            }
        }
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(sources)
    }

    async fn delete_query_source(&self, id: Uuid) -> Result<(), StoreError> {
        let reply = self
            .run(&SCRIPTS.query_source_delete, |inv| {
                inv.arg(id.to_string());
            })
            .await?;
        match reply.status {
            Status::Ok => Ok(()),
            Status::NotFound => Err(StoreError::not_found("query source", id)),
            other => Err(corrupt(format!("unexpected script status {other:?}"))),
        }
    }
}
