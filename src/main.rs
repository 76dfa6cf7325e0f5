//! The `tessera` binary: parses the command line and hands over to a role.

mod cli;
mod logging;
mod roles;
mod settings;

fn main() -> std::process::ExitCode {
    settings::load_config_file();
    let cli = <cli::Cli as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(roles::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "tessera failed");
            eprintln!("tessera: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
