//! Shared test fixtures.

#![allow(dead_code, unreachable_pub, reason = "shared by several test crates")]

pub mod collector;
pub mod harness;
pub mod processes;
pub mod stand;
