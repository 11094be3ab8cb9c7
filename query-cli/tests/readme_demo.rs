//! The README's first command, read from the README itself and run as a newcomer runs it
//! (no `TIX_PII_KEY`, output into a pipe): every `tix-logs` step exits 0, the report shows
//! the planted integrity problems, and stderr carries no colour codes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("query-cli sits in the workspace").to_path_buf()
}

/// The `tix-logs` invocations of the README's first command line that runs the release
/// binary, as argument lists, in order.
fn first_command() -> Vec<Vec<String>> {
    const BINARY: &str = "./target/release/tix-logs";
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let line = readme.lines().find(|l| l.contains(BINARY)).expect("the README's first command runs the release binary");
    assert!(!line.contains(';') && !line.contains('|'), "steps are chained with && only: {line}");
    line.split("&&")
        .filter_map(|step| step.trim().strip_prefix(BINARY))
        .map(|args| args.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn the_readmes_first_command_runs_clean() {
    let steps = first_command();
    let names: Vec<&str> = steps.iter().map(|s| s[0].as_str()).collect();
    assert_eq!(names, ["ingest", "report"], "{steps:?}");

    // The index and dead-letter directories land in the working directory, as for a newcomer
    // at the workspace root; paths of the README resolve against the workspace.
    let dir = tempfile::tempdir().unwrap();
    let mut stdouts = Vec::new();
    for step in &steps {
        let args: Vec<String> = step
            .iter()
            .map(|arg| {
                // Paths have a slash: a bare word like `ingest` is a subcommand, although
                // the workspace has a directory of that name.
                let path = workspace().join(arg);
                if arg.contains('/') && path.exists() {
                    path.display().to_string()
                } else {
                    arg.clone()
                }
            })
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_tix-logs"))
            .current_dir(dir.path())
            .args(&args)
            .env_remove("TIX_PII_KEY")
            .env_remove("TIX_INDEX")
            .env_remove("TIX_BACKEND")
            .env_remove("TIX_LOG")
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "tix-logs {}:\n{stderr}", step.join(" "));
        assert!(!out.stderr.contains(&0x1b), "stderr into a pipe has no colour codes: {stderr:?}");
        stdouts.push(String::from_utf8(out.stdout).unwrap());
    }
    assert!(dir.path().join("tix-index").is_dir() && dir.path().join("tix-dead-letter").is_dir());

    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures::samples_dir().join("EXPECTED.json")).expect("EXPECTED.json"))
            .unwrap();
    let report = &stdouts[1];
    let integrity = &expected["day_truth"]["integrity"];
    for booking in integrity["captured_not_confirmed"].as_array().unwrap() {
        assert!(report.contains(booking.as_str().unwrap()), "{booking} in the report:\n{report}");
    }
    for booking in integrity["confirmed_not_captured"].as_array().unwrap() {
        assert!(report.contains(booking.as_str().unwrap()), "{booking} in the report:\n{report}");
    }
}
