//! A stand-in for `otelcol-contrib` in tests of the otelcol runtime (the real binary is
//! not installable here). Not part of the product. As far as the supervisor can see it
//! behaves like a collector:
//! - `--config <file>` is required and read;
//! - the health endpoint is the first `endpoint:` line of the config (the `health_check`
//!   extension comes first in rendered configs) and answers `200` on any path;
//! - a config containing `fail-health` never becomes healthy;
//! - SIGTERM makes it exit 0, unless the config contains `ignore-sigterm`.
//!
//! It writes its pid and the config it runs to `<config>.ran`, so tests can see which
//! config is running.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1))
    else {
        eprintln!("usage: phoenix-fake-otelcol --config <file>");
        std::process::exit(2);
    };
    let config = std::fs::read_to_string(path).unwrap_or_default();
    let _ = std::fs::write(
        format!("{path}.ran"),
        format!("{}\n{config}", std::process::id()),
    );
    let Some(endpoint) = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("endpoint:"))
        .map(|e| e.trim().trim_matches('"').to_owned())
    else {
        eprintln!("no health_check endpoint in {path}");
        std::process::exit(1);
    };
    let terminate = Arc::new(AtomicBool::new(false));
    let ignore_sigterm = config.contains("ignore-sigterm");
    {
        // Handling SIGTERM replaces its default action, so ignoring it is just not acting.
        let flag = Arc::clone(&terminate);
        let (registered_tx, registered) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                let _ = registered_tx.send(());
                while term.recv().await.is_some() {
                    if !ignore_sigterm {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
            });
        });
        // Become healthy only once SIGTERM is handled, so no signal hits the default action.
        let _ = registered.recv();
    }
    let listener = if config.contains("fail-health") {
        None
    } else {
        let l = TcpListener::bind(&endpoint).expect("health port free");
        l.set_nonblocking(true).expect("nonblocking");
        Some(l)
    };
    loop {
        if terminate.load(Ordering::SeqCst) {
            std::process::exit(0);
        }
        match listener.as_ref().map(TcpListener::accept) {
            Some(Ok((mut stream, _))) => {
                let _ = stream.set_nonblocking(false);
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
