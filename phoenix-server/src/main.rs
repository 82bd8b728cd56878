//! `phoenix-server`: parse configuration, initialise logging, open the store, serve.

use clap::Parser as _;
use phoenix_server::cli::{Cli, Command, LogFormat};

/// jemalloc: an idle agent's connection holds two 8 KiB hyper buffers of which small
/// requests write only the first page; jemalloc serves them from slabs of their own size,
/// so the rest stays unbacked (13.5 KiB RSS per waiting agent against 20 KiB with glibc's
/// allocator; `docs/benchmarks.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Openapi) => {
            print!("{}", phoenix_server::openapi_document());
            Ok(())
        }
        Some(Command::Dev(args)) => {
            init_logging(LogFormat::Text, args.log.as_deref().unwrap_or("info"));
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
            let hooks = if args.no_agent {
                Vec::new()
            } else {
                vec![phoenix_server::dev_agent::local_agent(
                    phoenix_server::dev_agent::DevAgentOptions {
                        listen: args.agent_listen,
                        demo_duration_secs: args.demo_secs,
                        runtime: args.runtime,
                        otelcol_binary: args.otelcol_binary,
                        ..Default::default()
                    },
                )]
            };
            phoenix_server::dev::run(listener, hooks, shutdown_signal()).await?;
            Ok(())
        }
        Some(Command::Serve(args)) => serve(*args).await,
        None => serve(cli.serve).await,
    }
}

async fn serve(args: phoenix_server::cli::ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| {
                phoenix_server::cli::CliError::Read {
                    path: path.clone(),
                    source,
                }
            })?;
            phoenix_server::cli::parse_file(path, &text)?
        }
        None => phoenix_server::cli::FileConfig::default(),
    };
    let resolved = args.resolve(file)?;
    init_logging(resolved.log_format, &resolved.log);
    tracing::info!(store = %resolved.store, "opening store");
    let options = phoenix_server::store::OpenOptions {
        namespace: resolved.store_namespace.clone(),
        ..Default::default()
    };
    let opened = phoenix_server::store::open_with(&resolved.store, &options).await?;
    let phoenix = phoenix_core::Phoenix::builder(opened.stores, opened.clock)
        .config(resolved.phoenix.clone())
        .catalogue(resolved.catalogue.clone())
        .build();
    let listener = tokio::net::TcpListener::bind(resolved.listen).await?;
    let ws_listener = match resolved.ws_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let options = phoenix_server::ServeOptions { ws_listener };
    phoenix_server::serve_with(
        listener,
        phoenix,
        resolved.server,
        options,
        shutdown_signal(),
    )
    .await?;
    Ok(())
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
