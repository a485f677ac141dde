//! `flowtrail`: parse the command line, set up logging, run the command.

use clap::Parser;
use flowtrail_server::commands;
use flowtrail_server::config::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    flowtrail_server::logging::init(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
