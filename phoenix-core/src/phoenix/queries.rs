//! The query inventory: importing, listing and deleting sources of PromQL queries.

use uuid::Uuid;

use super::{Phoenix, PhoenixError};
use crate::inputs;
use crate::queries::{InventoryQuery, MAX_SOURCES, QuerySource, SourceKind};
use crate::validation::ValidationErrors;

impl Phoenix {
    /// Reads `content` as a source of `kind` named `name` and stores it, replacing the
    /// source of the same name (which keeps its id). A query that does not parse refuses
    /// the whole source, with one field error per query naming the rule or panel and the
    /// position; nothing is stored then.
    pub async fn import_query_source(
        &self,
        name: &str,
        kind: SourceKind,
        content: &str,
        imported_by: &str,
    ) -> Result<QuerySource, PhoenixError> {
        let mut errors = ValidationErrors::new();
        inputs::query_source(&mut errors, name, content);
        errors.into_result()?;
        let mut source = QuerySource::import(name, kind, content, imported_by, self.now())
            .map_err(|parse_errors| {
                let mut errors = ValidationErrors::new();
                for e in parse_errors {
                    errors.push("content", e.to_string());
                }
                errors
            })?;
        let existing = self.stores().queries.list_query_sources().await?;
        if existing.len() >= MAX_SOURCES && !existing.iter().any(|s| s.name == name) {
            let mut errors = ValidationErrors::new();
            errors.push(
                "name",
                format!("the inventory holds {MAX_SOURCES} sources already; delete one first"),
            );
            return Err(errors.into());
        }
        source.id = self.stores().queries.put_query_source(&source).await?;
        Ok(source)
    }

    /// Every imported source, by name.
    pub async fn query_sources(&self) -> Result<Vec<QuerySource>, PhoenixError> {
        Ok(self.stores().queries.list_query_sources().await?)
    }

    /// Every inventoried query, source by source.
    pub async fn query_inventory(&self) -> Result<Vec<InventoryQuery>, PhoenixError> {
        Ok(self
            .query_sources()
            .await?
            .into_iter()
            .flat_map(|s| s.queries)
            .collect())
    }

    /// Removes a source.
    pub async fn delete_query_source(&self, id: Uuid) -> Result<(), PhoenixError> {
        Ok(self.stores().queries.delete_query_source(id).await?)
    }
}
