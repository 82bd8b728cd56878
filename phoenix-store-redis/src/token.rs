//! [`TokenStore`] on Redis: `tok:<id>` hashes (j record, rev revoked), the `toks` lex index,
//! and `tokh`, secret hash -> id.

use async_trait::async_trait;
use phoenix_core::agent::SecretHash;
use phoenix_core::auth::ApiToken;
use phoenix_core::error::StoreError;
use phoenix_core::store::TokenStore;

use crate::RedisStore;
use crate::codec::{Fields, Status, corrupt, encode_json};
use crate::scripts::SCRIPTS;

/// Tokens read per scan call when listing all of them.
const LIST_BATCH: usize = 500;

fn token(fields: &Fields) -> Result<ApiToken, StoreError> {
    let mut token: ApiToken = fields.json("j")?;
    token.revoked = fields.get("rev")? == "1";
    Ok(token)
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn create_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        let json = encode_json(token)?;
        let reply = self
            .run(&SCRIPTS.token_create, |inv| {
                inv.arg(token.id.to_string()).arg(&json).arg(&token.hash.0);
            })
            .await?;
        match reply.status {
            Status::Ok => Ok(()),
            Status::Conflict => Err(StoreError::conflict("token", token.id)),
            other => Err(corrupt(format!("unexpected script status {other:?}"))),
        }
    }

    async fn find_token(&self, hash: &SecretHash) -> Result<Option<ApiToken>, StoreError> {
        let mut reply = self
            .run(&SCRIPTS.token_find, |inv| {
                inv.arg(&hash.0);
            })
            .await?;
        if reply.status != Status::Ok {
            return Ok(None);
        }
        let found = token(&Fields::parse(reply.next()?)?)?;
        Ok((!found.revoked && found.hash.verify_hash(hash)).then_some(found))
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let mut tokens = Vec::new();
        let mut after = None;
        loop {
            let batch = self
                .scan("toks", "tok", after.take(), LIST_BATCH, &[])
                .await?;
            let full = batch.len() == LIST_BATCH;
            for fields in &batch {
                tokens.push(token(fields)?);
            }
            match tokens.last() {
                Some(last) if full => after = Some(last.id.to_string()),
                _ => return Ok(tokens),
            }
        }
    }

    async fn revoke_token(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        let reply = self
            .run(&SCRIPTS.token_revoke, |inv| {
                inv.arg(id.to_string());
            })
            .await?;
        match reply.status {
            Status::Ok => Ok(()),
            Status::NotFound => Err(StoreError::not_found("token", id)),
            other => Err(corrupt(format!("unexpected script status {other:?}"))),
        }
    }
}
