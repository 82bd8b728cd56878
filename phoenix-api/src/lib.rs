//! # phoenix-api
//!
//! The wire types of Phoenix's REST and WebSocket API, defined once and shared by
//! `phoenix-server` (which derives the OpenAPI document from them, feature `openapi`) and
//! `phoenix-client` (which (de)serializes them with serde). Every type converts from the
//! `phoenix-core` type it mirrors; request types convert into core types.
//!
//! Conventions: field and enum names are `snake_case` on the wire; ids are UUIDs; times
//! are RFC 3339 UTC; optional response fields are omitted when absent.

/// Mirrors a fieldless core enum: same variants, `snake_case` on the wire, `From` both ways.
macro_rules! mirror_enum {
    ($(#[$m:meta])* $name:ident => $core:path { $($(#[$vm:meta])* $v:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[cfg_attr(feature = "openapi", derive(poem_openapi::Enum), oai(rename_all = "snake_case"))]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl From<$core> for $name {
            fn from(v: $core) -> Self {
                match v { $(<$core>::$v => Self::$v),+ }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> Self {
                match v { $($name::$v => <$core>::$v),+ }
            }
        }

        impl $crate::convert::FromCore<$core> for $name {
            fn from_core(v: $core) -> Self {
                v.into()
            }
        }
    };
}

/// Mirrors a core response struct field for field: same names, wire types for values
/// (ids as UUIDs, money as decimal strings), `From` the core type.
macro_rules! wire_struct {
    ($(#[$m:meta])* $name:ident <= $core:path { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(poem_openapi::Object), oai(skip_serializing_if_is_none))]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }

        impl $crate::convert::FromCore<$core> for $name {
            fn from_core(c: $core) -> Self {
                Self { $($field: $crate::convert::FromCore::from_core(c.$field),)* }
            }
        }

        impl From<$core> for $name {
            fn from(c: $core) -> Self {
                $crate::convert::FromCore::from_core(c)
            }
        }
    };
}

/// Defines a page of `$item` with its cursor.
macro_rules! page_type {
    ($(#[$m:meta])* $name:ident, $item:ty) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(poem_openapi::Object), oai(skip_serializing_if_is_none))]
        pub struct $name {
            /// The records, newest first.
            pub items: Vec<$item>,
            /// Pass as `cursor` to get the next page; absent on the last page.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub next_cursor: Option<String>,
        }

        impl<T: Into<$item>> From<phoenix_core::page::Page<T>> for $name {
            fn from(page: phoenix_core::page::Page<T>) -> Self {
                Self {
                    items: page.items.into_iter().map(Into::into).collect(),
                    next_cursor: page.next_cursor,
                }
            }
        }
    };
}

pub mod agent;
pub mod analysis;
pub mod convert;
pub mod deployment;
pub mod error;
pub mod experiment;
pub mod measure;
pub mod ops;
pub mod pipeline;
pub mod query;
pub mod strict;
pub mod task;
pub mod token;
pub mod ws;

pub use error::{ErrorBody, ErrorCode, ErrorDetails, ErrorObject, FieldError};

/// The REST API's path prefix.
pub const API_PREFIX: &str = "/api/v1";

/// Header carrying how long to wait before retrying after a 429 or 503.
pub const RETRY_AFTER: &str = "retry-after";
