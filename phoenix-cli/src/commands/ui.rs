//! `phoenix ui`: the dashboard served by the server at `<server>/ui/`.

use crate::Context;
use crate::cli::UiArgs;
use crate::error::CliError;
use crate::output;

/// The dashboard URL of the server the client talks to.
pub(crate) fn dashboard_url(cx: &Context) -> Result<url::Url, CliError> {
    cx.client
        .base_url()
        .join("ui/")
        .map_err(|e| CliError::Input(format!("cannot build the dashboard URL: {e}")))
}

/// True when a browser can be shown: not on Linux/BSD without a graphical session (where
/// `xdg-open` would fall back to a terminal browser or fail).
fn graphical_session() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

pub(crate) fn run(cx: &Context, args: &UiArgs) -> Result<(), CliError> {
    let url = dashboard_url(cx)?;
    if args.print || !graphical_session() {
        output::out(&format!("{url}\n"));
        return Ok(());
    }
    match opener::open_browser(url.as_str()) {
        Ok(()) => {
            cx.printer.note(&format!("opened {url}"));
        }
        Err(e) => {
            eprintln!("could not open a browser ({e}); open this URL:");
            output::out(&format!("{url}\n"));
        }
    }
    Ok(())
}
