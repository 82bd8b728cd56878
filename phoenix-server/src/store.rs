//! Choosing the store by URL: `memory:` (default), `postgres://...`, `redis://...`.

use std::str::FromStr;
use std::sync::Arc;

use phoenix_core::MemoryStore;
use phoenix_core::clock::{SharedClock, ShiftedClock, SystemClock, TimeShift};
use phoenix_core::store::Stores;

/// Where state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// In this process; lost on exit. One replica only.
    Memory,
    /// PostgreSQL (`postgres://` or `postgresql://`).
    Postgres(String),
    /// Redis (`redis://` or `rediss://`).
    Redis(String),
}

impl FromStr for StoreUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory:" || s == "memory" {
            Ok(Self::Memory)
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self::Postgres(s.to_owned()))
        } else if s.starts_with("redis://") || s.starts_with("rediss://") {
            Ok(Self::Redis(s.to_owned()))
        } else {
            Err("store URL must be memory:, postgres://... or redis://...".to_owned())
        }
    }
}

impl std::fmt::Display for StoreUrl {
    /// The URL without credentials (for logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |url: &str| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &url[..scheme], &url[at + 1..])
            }
            _ => url.to_owned(),
        };
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::Postgres(u) | Self::Redis(u) => f.write_str(&redact(u)),
        }
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// This build has no backend for the URL's scheme.
    #[error("the {0} backend is not part of this build of phoenix-server")]
    Unsupported(&'static str),
    /// The backend refused or could not be reached.
    #[error("could not open the {backend} store")]
    Store {
        /// Which backend.
        backend: &'static str,
        /// Why.
        #[source]
        source: phoenix_core::StoreError,
    },
}

/// Options of [`open_with`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Key prefix (Redis) or schema (Postgres); the backend's default when `None`.
    pub namespace: Option<String>,
    /// Test-only shift of the deployment's time source.
    pub time_shift: TimeShift,
}

/// An opened store and the clock that goes with it (one time source per deployment).
#[derive(Debug)]
pub struct OpenedStore {
    /// Handles.
    pub stores: Stores,
    /// The clock the facade must use.
    pub clock: SharedClock,
}

/// Opens the store at `url` with default options.
pub async fn open(url: &StoreUrl) -> Result<OpenedStore, OpenStoreError> {
    open_with(url, &OpenOptions::default()).await
}

/// Opens the store at `url`.
pub async fn open_with(
    url: &StoreUrl,
    options: &OpenOptions,
) -> Result<OpenedStore, OpenStoreError> {
    match url {
        StoreUrl::Memory => {
            let clock: SharedClock = Arc::new(SystemClock);
            let store = MemoryStore::with_clock(clock.clone());
            Ok(OpenedStore {
                stores: store.stores(),
                clock,
            })
        }
        StoreUrl::Postgres(u) => {
            let mut pg = phoenix_store_postgres::PgStoreOptions {
                time_shift: options.time_shift.clone(),
                ..Default::default()
            };
            if let Some(schema) = &options.namespace {
                pg.schema.clone_from(schema);
            }
            let store = phoenix_store_postgres::PgStore::connect_with(u, pg)
                .await
                .map_err(|source| OpenStoreError::Store {
                    backend: "postgres",
                    source,
                })?;
            // Leases use the database clock; the facade uses the wall clock with the same
            // shift.
            Ok(OpenedStore {
                stores: store.stores(),
                clock: Arc::new(store.clock()),
            })
        }
        StoreUrl::Redis(u) => {
            let mut config = phoenix_store_redis::RedisConfig::new(u.clone())
                .with_time_shift(options.time_shift.clone());
            if let Some(prefix) = &options.namespace {
                config = config.with_prefix(prefix.clone());
            }
            let store = phoenix_store_redis::RedisStore::connect(config)
                .await
                .map_err(|source| OpenStoreError::Store {
                    backend: "redis",
                    source,
                })?;
            // Leases use Redis TIME; the facade's clock is the wall clock with the same
            // shift, so both agree.
            Ok(OpenedStore {
                stores: store.stores(),
                clock: Arc::new(ShiftedClock::new(options.time_shift.clone())),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_redact() {
        assert_eq!("memory:".parse::<StoreUrl>().unwrap(), StoreUrl::Memory);
        let pg: StoreUrl = "postgres://u:secret@db:5432/phoenix".parse().unwrap();
        assert_eq!(pg.to_string(), "postgres://***@db:5432/phoenix");
        assert!("mysql://x".parse::<StoreUrl>().is_err());
    }
}
