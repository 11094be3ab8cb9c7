//! `tix-logs`: ingest booking logs into a searchable store and query them.
//!
//! The binary only orchestrates: flags are read here, the work is done by the `ingest`
//! and `indexer` crates. Exit codes: 0 success, 1 some object failed, 2 usage or
//! operational error.

mod audit_cmd;
mod cli;
mod ingest_cmd;
mod progress;
mod reconcile_cmd;
mod redrive_cmd;
mod render;
mod report_cmd;
mod report_html;
mod search_cmd;
mod timespec;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

// Ingest allocates on one thread and frees on another (records on the reader thread,
// documents on the preparing threads, freed by tantivy's): glibc's arenas contend on that
// cross-thread traffic (about a sixth of ingest CPU went to malloc/free and its locks).
// mimalloc frees to the owning thread's heap without a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    let result = match cli.command {
        cli::Command::Ingest(args) => ingest_cmd::run(args),
        cli::Command::Search(args) => search_cmd::run(args),
        cli::Command::Audit(args) => audit_cmd::run(args),
        cli::Command::Reconcile(args) => reconcile_cmd::run(args),
        cli::Command::Report(args) => report_cmd::run(args),
        cli::Command::Redrive(args) => redrive_cmd::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "tix-logs: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_stderr(std::env::var_os("NO_COLOR").as_deref()))
        .with_target(false)
        .try_init();
}

/// Colour only for a person at a terminal: a pipe, a file or a CI log gets plain text,
/// and a non-empty `NO_COLOR` (no-color.org) turns colour off even at a terminal.
fn colour_stderr(no_color: Option<&std::ffi::OsStr>) -> bool {
    use std::io::IsTerminal;
    no_color.is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
