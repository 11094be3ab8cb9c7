//! `testkit/sigv4_gate.py` from Rust: a reverse proxy on 127.0.0.1 that recomputes the
//! SigV4 signature of every request with botocore (the AWS CLI's own signer, not the
//! code under test) and answers a mismatch as AWS does (403 with AWS's message), else
//! forwards it to an upstream (the scripted Elasticsearch server). Shared by the
//! indexer's and the CLI's SigV4 tests.
//!
//! Needs `python3` with `botocore` (`scripts/test.sh` installs it); without it
//! [`Gate::start`] panics saying so: the tests are never skipped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The region every gate checks signatures for.
pub const REGION: &str = "eu-west-1";

/// The test credentials a gate accepts.
#[derive(Debug, Clone, Copy)]
pub struct GateCredentials<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// A running gate; killed when dropped.
pub struct Gate {
    child: Child,
    port: u16,
    stderr: tempfile::NamedTempFile,
}

impl Gate {
    /// Starts a gate in front of `upstream` that accepts signatures for `service` (`es`
    /// or `aoss`) in [`REGION`] made with `credentials`.
    pub fn start(upstream: &str, service: &str, credentials: GateCredentials<'_>) -> Gate {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sigv4_gate.py");
        let stderr = tempfile::NamedTempFile::new().expect("a file for the gate's stderr");
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .args(["--upstream", upstream, "--region", REGION, "--service", service])
            .env("SIGV4_GATE_ACCESS_KEY", credentials.access_key)
            .env("SIGV4_GATE_SECRET_KEY", credentials.secret_key)
            .env_remove("SIGV4_GATE_SESSION_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopen the gate's stderr file"));
        if let Some(token) = credentials.session_token {
            command.env("SIGV4_GATE_SESSION_TOKEN", token);
        }
        let mut child = command.spawn().expect("python3 runs (the SigV4 gate needs python3 with botocore)");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the SigV4 gate did not start (install botocore: python3 -m pip install 'botocore==1.43.11'): {}",
                std::fs::read_to_string(stderr.path()).unwrap_or_default()
            );
        };
        Gate { child, port, stderr }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `{"verified", "refused", "refusals": [{method, target, reason}], "requests":
    /// [{method, target, service, region, signed_headers, session_token}]}`.
    pub fn stats(&self) -> Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the gate");
        stream
            .write_all(b"GET /__sigv4_gate__/stats HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n")
            .expect("ask the gate");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("the gate answers");
        let (_, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        serde_json::from_str(body).expect("the gate's stats are JSON")
    }

    /// Asserts that the gate refused nothing and verified at least `at_least` requests.
    pub fn assert_all_verified(&self, at_least: u64) -> Value {
        let stats = self.stats();
        assert_eq!(
            stats["refused"],
            0,
            "the gate refused: {:#}\n{}",
            stats["refusals"],
            std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
        );
        assert!(stats["verified"].as_u64().unwrap_or(0) >= at_least, "{stats:#}");
        stats
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
