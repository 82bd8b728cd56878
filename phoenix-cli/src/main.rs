//! The `phoenix` binary: everything lives in the library (see `phoenix_cli::run`).

fn main() -> std::process::ExitCode {
    phoenix_cli::main_exit_code()
}
