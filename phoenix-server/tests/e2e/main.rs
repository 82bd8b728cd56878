//! End-to-end tests: the real server on 127.0.0.1:0, driven through `phoenix-client`
//! (and raw HTTP where a malformed request is the point).

/// Stamps one test per backend for each `async fn case(backend)`.
#[macro_export]
macro_rules! backends {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case($crate::harness::Backend::Memory).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(backend) = $crate::harness::Backend::redis() {
                        super::$case(backend).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(backend) = $crate::harness::Backend::postgres() {
                        super::$case(backend).await;
                    }
                }
            )*
        }
    };
}

mod actions;
mod analysis;
mod auth;
mod coverage;
mod dashboard;
mod deployments;
mod edge;
mod flow;
mod harness;
mod history;
mod inputs;
mod matching;
mod openapi;
mod ops;
mod queries;
mod replicas;
mod schemathesis;
mod strict;
mod ws_auth;
