//! Core value -> wire value, for the field-for-field mirrors of `wire_struct!`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use phoenix_core::cost::Money;
use phoenix_core::ids::{AgentId, DeploymentId, ExperimentId, TaskId};
use uuid::Uuid;

/// Converts a core value into its wire form.
pub trait FromCore<C> {
    /// The wire form of `c`.
    fn from_core(c: C) -> Self;
}

macro_rules! identity {
    ($($t:ty),*) => {$(
        impl FromCore<$t> for $t {
            fn from_core(c: $t) -> Self { c }
        }
    )*};
}

identity!(
    u64,
    u32,
    i64,
    i32,
    i16,
    f64,
    bool,
    String,
    DateTime<Utc>,
    NaiveDate,
    Uuid
);

impl FromCore<usize> for u64 {
    fn from_core(c: usize) -> Self {
        c as u64
    }
}

macro_rules! id {
    ($($t:ty),*) => {$(
        impl FromCore<$t> for Uuid {
            fn from_core(c: $t) -> Self { c.0 }
        }
    )*};
}

id!(AgentId, ExperimentId, DeploymentId, TaskId);

/// Money as a decimal string in currency units (`"1234.567890"`): exact, never a float.
impl FromCore<Money> for String {
    fn from_core(c: Money) -> Self {
        c.to_string()
    }
}

impl<A: FromCore<C>, C> FromCore<Vec<C>> for Vec<A> {
    fn from_core(c: Vec<C>) -> Self {
        c.into_iter().map(A::from_core).collect()
    }
}

impl<A: FromCore<C>, C> FromCore<Option<C>> for Option<A> {
    fn from_core(c: Option<C>) -> Self {
        c.map(A::from_core)
    }
}

impl<A: FromCore<C>, C> FromCore<BTreeMap<String, C>> for BTreeMap<String, A> {
    fn from_core(c: BTreeMap<String, C>) -> Self {
        c.into_iter().map(|(k, v)| (k, A::from_core(v))).collect()
    }
}
