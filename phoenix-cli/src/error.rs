//! What a command can fail with, how it is printed, and its exit code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use phoenix_client::ClientError;

/// Line and column of each field of an input file, by API field path
/// (`spec.criteria[0].threshold`), to point server field errors at the file.
pub(crate) type Positions = BTreeMap<String, (u32, u32)>;

/// A failed command.
#[derive(Debug)]
pub enum CliError {
    /// The server answered with an error, or could not be reached.
    Client {
        /// The error (boxed: it is large and errors are rare).
        error: Box<ClientError>,
        /// The server's URL (for connection errors).
        server: String,
        /// Positions of the fields of the input file the request came from.
        positions: Option<(String, Positions)>,
    },
    /// Bad local input (a file that cannot be read or does not hold what it should):
    /// a usage error.
    Input(String),
    /// The request worked, but what it reports is a failure (an invalid config, an
    /// experiment that ended rolled back).
    Unsuccessful(String),
}

impl CliError {
    pub(crate) fn client(error: ClientError, server: &str) -> Self {
        Self::Client {
            error: Box::new(error),
            server: server.to_owned(),
            positions: None,
        }
    }

    /// The process exit code: 1 for the server's or the outcome's failures, 2 for usage.
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Client { .. } | Self::Unsuccessful(_) => ExitCode::from(1),
            Self::Input(_) => ExitCode::from(2),
        }
    }

    /// The message for standard error, possibly several lines, ending in a newline.
    #[must_use]
    pub fn report(&self) -> String {
        match self {
            Self::Client {
                error,
                server,
                positions,
            } => client_report(error, server, positions.as_ref()),
            Self::Input(message) | Self::Unsuccessful(message) => format!("error: {message}\n"),
        }
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        source = e.source();
    }
    out
}

fn client_report(
    error: &ClientError,
    server: &str,
    positions: Option<&(String, Positions)>,
) -> String {
    let mut out = String::new();
    match error {
        ClientError::Api {
            status,
            error: body,
            retry_after,
        } => {
            let _ = writeln!(
                out,
                "error: {} ({}, HTTP {status})",
                body.message,
                serde_json::to_value(body.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            );
            for field in body.details.fields.iter().flatten() {
                let at = positions
                    .and_then(|(file, p)| {
                        p.get(&field.path)
                            .map(|(line, column)| format!(" ({file}:{line}:{column})"))
                    })
                    .unwrap_or_default();
                let _ = writeln!(out, "  {}: {}{at}", field.path, field.message);
            }
            if let Some(phase) = body.details.phase {
                let _ = writeln!(out, "  current phase: {phase}");
            }
            if let Some(secs) = retry_after.or(body.details.retry_after_secs) {
                let _ = writeln!(out, "  retry after {secs} s");
            }
            if *status == 401 {
                let _ = writeln!(
                    out,
                    "  hint: pass a user token with --token or PHOENIX_TOKEN"
                );
            }
        }
        ClientError::Transport(e) => {
            let _ = writeln!(out, "error: cannot reach the Phoenix server at {server}");
            let _ = writeln!(out, "  {}", chain(e));
        }
        ClientError::Decode { status, source } => {
            let _ = writeln!(
                out,
                "error: unexpected answer from {server} (HTTP {status}): {source}"
            );
            let _ = writeln!(
                out,
                "  hint: is {server} a Phoenix server of a matching version?"
            );
        }
        other => {
            let _ = writeln!(out, "error: {} ({server})", chain(other));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_api::{ErrorCode, ErrorDetails, ErrorObject, FieldError};

    #[test]
    fn field_errors_are_listed_one_per_line_with_file_positions() {
        let error = ClientError::Api {
            status: 422,
            error: ErrorObject {
                code: ErrorCode::ValidationFailed,
                message: "the experiment is invalid".to_owned(),
                details: ErrorDetails {
                    fields: Some(vec![
                        FieldError {
                            path: "spec.duration_secs".to_owned(),
                            message: "must be at least 1".to_owned(),
                        },
                        FieldError {
                            path: "name".to_owned(),
                            message: "must not be empty".to_owned(),
                        },
                    ]),
                    ..ErrorDetails::default()
                },
            },
            retry_after: None,
        };
        let positions = Positions::from([("spec.duration_secs".to_owned(), (4, 3))]);
        let e = CliError::Client {
            error: Box::new(error),
            server: "http://x".to_owned(),
            positions: Some(("exp.yaml".to_owned(), positions)),
        };
        assert_eq!(
            e.report(),
            "error: the experiment is invalid (validation_failed, HTTP 422)\n  \
             spec.duration_secs: must be at least 1 (exp.yaml:4:3)\n  name: must not be empty\n"
        );
        assert_eq!(e.exit_code(), ExitCode::from(1));
        assert_eq!(
            CliError::Input(String::new()).exit_code(),
            ExitCode::from(2)
        );
    }
}
