//! # phoenix-cli
//!
//! The `phoenix` command-line interface: every operator operation of the Phoenix REST and
//! WebSocket API, on the typed `phoenix-client`. Results print as aligned tables for
//! people or, with `--output json`, as the exact API object (pretty JSON that parses back
//! into the `phoenix-api` types).
//!
//! Exit codes: 0 success; 1 the server refused or failed the request, could not be reached,
//! or reported a failure (an invalid config; an experiment watched to a stopped, rolled
//! back or failed end); 2 usage (clap's own errors, unreadable or invalid input files).
//!
//! Invariants: nothing here decides a domain rule (the server validates and decides; the
//! CLI only shapes requests and prints answers), and only clap reads the environment
//! (`PHOENIX_SERVER`, `PHOENIX_TOKEN`, `PHOENIX_OUTPUT`), apart from `ui` looking for a
//! graphical session before it starts a browser.

mod args;
pub mod cli;
mod commands;
mod error;
mod experiment_file;
mod output;
mod table;
mod watch;

use std::process::ExitCode;

pub use args::{KeyValue, Param};
pub use cli::Cli;
pub use error::CliError;

use phoenix_client::Client;

use crate::cli::Command;
use crate::output::Printer;

/// What every command gets: the client, the server's URL and the printer.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) server: String,
    pub(crate) printer: Printer,
}

impl Context {
    /// Wraps a client error with the server's URL.
    pub(crate) fn err(&self, e: phoenix_client::ClientError) -> CliError {
        CliError::client(e, &self.server)
    }
}

/// Runs a parsed command line to completion.
///
/// # Errors
/// What failed, with its exit code ([`CliError::exit_code`]) and message ([`CliError::report`]).
pub async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        let mut buffer = Vec::new();
        clap_complete::generate(shell, &mut command, "phoenix", &mut buffer);
        output::out(&String::from_utf8_lossy(&buffer));
        return Ok(());
    }
    let mut client = Client::new(&cli.server).map_err(|e| CliError::client(e, &cli.server))?;
    if let Some(token) = &cli.token {
        client = client.with_token(token.clone());
    }
    let cx = Context {
        client,
        server: cli.server.clone(),
        printer: Printer { format: cli.output },
    };
    match cli.command {
        Command::Experiment(command) => commands::experiment::run(&cx, command).await,
        Command::Pipeline(command) => commands::pipeline::run(&cx, command).await,
        Command::Fleet(command) => commands::fleet::run(&cx, command).await,
        Command::Cost(command) => commands::cost::run(&cx, command).await,
        Command::Queries(command) => commands::queries::run(&cx, command).await,
        Command::Ui(args) => commands::ui::run(&cx, &args),
        Command::Completions { .. } => Ok(()),
    }
}

/// Parses the process arguments, runs the command on a current-thread runtime, prints any
/// error to standard error and returns the exit code. This is all `main` does.
#[must_use]
pub fn main_exit_code() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", e.report());
            e.exit_code()
        }
    }
}
