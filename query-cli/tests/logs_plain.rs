//! Log lines written into a pipe or a file (a CI log, `2> run.log`) are plain text: no
//! ANSI colour codes, which would show there as `^[[32m`.

use std::process::Command;

#[test]
fn log_lines_into_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tix-logs"))
        .current_dir(dir.path())
        .env_remove("NO_COLOR")
        .env_remove("TIX_LOG")
        .env_remove("TIX_INDEX")
        .env_remove("TIX_BACKEND")
        .env("TIX_PII_KEY", "test-key-for-cli-tests-0123456789abcdef")
        .args(["-vv", "ingest", "--index", "index", "--dead-letter", "dl"])
        .arg(fixtures::samples_dir().join("logs/messy.ndjson"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("DEBUG"), "-vv logs debug lines: {stderr}");
    assert!(!out.stderr.contains(&0x1b), "no escape byte in piped stderr: {stderr:?}");
}
