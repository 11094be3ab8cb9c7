//! `tix-cold-start`: how long a Lambda binary takes from exec to its first runtime-API
//! request (`GET /2018-06-01/runtime/invocation/next`), the moment it is ready for work.
//!
//! It serves a loopback runtime API that never hands out an invocation, starts the binary
//! with `AWS_LAMBDA_RUNTIME_API` pointing at it (and the other variables the Lambda
//! service sets; the rest of the environment is inherited), stops it at its first
//! request, and repeats. One line per run on stderr; the median, minimum and maximum in
//! milliseconds as one JSON object on stdout.
//!
//! With `--es` it also serves `testkit::FakeCluster` (a scripted Elasticsearch 8 node) and
//! points the binary at it (`TIX_BACKEND=elasticsearch`, `TIX_ES_URL`), so the cold start
//! includes the client's setup and `ensure_ready`'s requests over loopback.
//!
//!     tix-cold-start [--runs N] [--timeout-ms MS] [--es] BINARY

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut runs, mut timeout, mut binary, mut es) = (20usize, Duration::from_secs(30), None, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| usage("--runs N")),
            "--timeout-ms" => {
                timeout = Duration::from_millis(
                    args.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| usage("--timeout-ms MS")),
                )
            }
            "--es" => es = true,
            _ if binary.is_none() && !arg.starts_with('-') => binary = Some(arg),
            other => usage(&format!("unexpected argument {other:?}")),
        }
    }
    let binary = binary.unwrap_or_else(|| usage("BINARY is required"));
    // One cluster for every run: after the first, the template and indices exist, as for
    // every cold start but a stack's very first.
    let cluster = es.then(testkit::FakeCluster::start);
    let es_url = cluster.as_ref().map(|c| c.url());
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|run| {
            let ms = one_run(&binary, timeout, es_url.as_deref()).unwrap_or_else(|e| {
                eprintln!("tix-cold-start: run {run}: {e}");
                std::process::exit(1)
            });
            eprintln!("run {run:>3}: {ms:.1} ms");
            ms
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    println!(
        "{{\"runs\": {}, \"median_ms\": {median:.1}, \"min_ms\": {:.1}, \"max_ms\": {:.1}}}",
        times.len(),
        times[0],
        times[times.len() - 1]
    );
}

fn usage(problem: &str) -> ! {
    eprintln!("tix-cold-start: {problem}\nusage: tix-cold-start [--runs N] [--timeout-ms MS] [--es] BINARY");
    std::process::exit(2)
}

/// Milliseconds from spawning `binary` to its first `invocation/next` request.
fn one_run(binary: &str, timeout: Duration, es_url: Option<&str>) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (ready, first) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_ok()
                && line.starts_with("GET /2018-06-01/runtime/invocation/next")
            {
                let _ = ready.send(Instant::now());
                return;
            }
        }
    });
    let mut command = Command::new(binary);
    if let Some(url) = es_url {
        command.env("TIX_BACKEND", "elasticsearch").env("TIX_ES_URL", url).env("TIX_ES_AUTH", "none");
    }
    let started = Instant::now();
    let mut child = command
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "tix-logs-lambda")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tix-logs-lambda")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))?;
    let deadline = started + timeout;
    let result = loop {
        match first.recv_timeout(Duration::from_millis(5)) {
            Ok(at) => break Ok(at.duration_since(started).as_secs_f64() * 1000.0),
            Err(_) if Instant::now() > deadline => break Err(format!("no runtime-API request within {timeout:?}")),
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        let _ = pipe.read_to_string(&mut stderr);
                    }
                    break Err(format!("{binary} exited ({status}) before asking for work: {stderr}"));
                }
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}
