//! The `tessera` binary: parses the command line and hands over to a role.

mod admin;
mod changes;
mod cli;
mod console;
mod doctor;
mod logging;
mod presence;
mod progress;
mod roles;
mod settings;
mod unread;
mod webhooks;
mod wiring;

/// mimalloc instead of glibc's allocator: under the charge load glibc's
/// malloc and free (with `malloc_consolidate`) were 19 % of the write API's
/// CPU (perf, BENCHMARKS.md "The allocator"); a request allocates many
/// small short-lived objects on one thread and frees them on another.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    if let Err(e) = settings::load_config_file() {
        eprintln!("tessera: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
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
    let result = runtime.block_on(roles::run(cli));
    // a client library's thread stuck on a broker that does not answer must
    // not hold the exit (SIGTERM finishes within a bound)
    runtime.shutdown_timeout(std::time::Duration::from_secs(3));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // the reader went away (`tessera admin export | head`): not a failure
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "tessera failed");
            eprintln!("tessera: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<csv::Error>()
                .is_some_and(|c| matches!(c.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe))
    })
}
