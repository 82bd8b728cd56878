//! Cursor pagination shared by every list operation.
//!
//! Lists are ordered by id, newest first (ids are UUID v7, so that is creation order).
//! A cursor is the last id of the previous page; pages are stable under concurrent inserts:
//! a new record never shifts a later page and nothing is returned twice.

use serde::{Deserialize, Serialize};

/// The largest page a store returns, whatever is asked.
pub const MAX_PAGE_SIZE: usize = 500;
/// The page size used when none is asked for.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// Which page to return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Return records strictly after this cursor (the `next_cursor` of the previous page).
    pub after: Option<String>,
    /// At most this many records (clamped to 1..=[`MAX_PAGE_SIZE`]; `None` means default).
    pub limit: Option<usize>,
}

impl PageRequest {
    /// The first page with the default size.
    #[must_use]
    pub fn first() -> Self {
        Self::default()
    }

    /// The first page with `limit` records.
    #[must_use]
    pub fn with_limit(limit: usize) -> Self {
        Self {
            after: None,
            limit: Some(limit),
        }
    }

    /// The effective page size.
    #[must_use]
    pub fn effective_limit(&self) -> usize {
        self.limit
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE)
    }
}

/// Parses a list cursor (the id of the last item of the previous page). A malformed
/// cursor is the caller's error: `StoreError::Invalid`.
pub fn parse_cursor<T: std::str::FromStr>(
    cursor: Option<&str>,
) -> Result<Option<T>, crate::error::StoreError> {
    cursor
        .map(|c| {
            c.parse()
                .map_err(|_| crate::error::StoreError::Invalid(format!("malformed cursor `{c}`")))
        })
        .transpose()
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The records, newest first.
    pub items: Vec<T>,
    /// Pass this as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items: the extra one only tells that a
    /// next page exists. `cursor_of` gives the cursor of an item.
    pub fn from_overfetch(
        mut items: Vec<T>,
        limit: usize,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let has_more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if has_more {
            items.last().map(cursor_of)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}
