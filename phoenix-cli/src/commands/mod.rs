//! One module per top-level command.

pub(crate) mod cost;
pub(crate) mod experiment;
pub(crate) mod fleet;
pub(crate) mod pipeline;
pub(crate) mod queries;
pub(crate) mod ui;
