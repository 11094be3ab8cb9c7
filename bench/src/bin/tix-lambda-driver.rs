//! Runs the `tix-logs-lambda` binary once, as the Lambda service would, for
//! `bench/lambda-rss.sh`: a loopback runtime API hands it one event, a sink
//! Elasticsearch node ([`FakeCluster::start_sink`]) takes its writes without keeping
//! them, and the binary's peak RSS (`VmHWM` of its own process, read before it is
//! stopped) is reported with the time the invocation took.
//!
//! Usage: `tix-lambda-driver LAMBDA_BINARY EVENT_FILE [TIMEOUT_SECONDS]`. The binary
//! inherits this process's environment (the S3 and `TIX_*` settings); the driver adds
//! the runtime API's variables and points `TIX_ES_URL` at the sink. One JSON object on
//! stdout: `answer` (what the function posted), `wall_s` (event handed out to answer
//! posted), `peak_rss_kb`, `rss_ready_kb` (before the event), `es_created`,
//! `es_requests`, and `emf` (the function's metrics line).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use testkit::es_server::FakeCluster;
use testkit::lambda_api::read_request;

/// What the runtime API saw.
enum Seen {
    /// The event was handed to the function.
    Delivered(Instant),
    /// The function posted its answer (`Ok`) or an error (`Err`).
    Posted(Result<Value, String>),
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(binary), Some(event_file)) = (args.first(), args.get(1)) else {
        eprintln!("usage: tix-lambda-driver LAMBDA_BINARY EVENT_FILE [TIMEOUT_SECONDS]");
        std::process::exit(2);
    };
    let timeout = Duration::from_secs(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(900));
    let event = std::fs::read_to_string(event_file).unwrap_or_else(|e| fail(&format!("{event_file}: {e}")));
    serde_json::from_str::<Value>(&event).unwrap_or_else(|e| fail(&format!("{event_file} is not JSON: {e}")));

    let es = FakeCluster::start_sink();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let api = listener.local_addr().expect("local address").to_string();
    let (seen, seen_rx) = mpsc::channel();
    // The deadline is the longest a Lambda invocation may run, so a slow machine measures
    // the whole object rather than a paused one.
    let deadline_ms = epoch_ms() + timeout.as_millis() as u64;
    std::thread::spawn(move || serve(listener, event, deadline_ms, seen));

    let mut child = Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "tix-logs-lambda")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench-stream")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tix-logs-lambda")
        .env("TIX_BACKEND", "elasticsearch")
        .env("TIX_ES_URL", es.url())
        .env("TIX_ES_AUTH", "none")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("{binary}: {e}")));
    let pid = child.id();
    // Drained on a thread so a full pipe never stalls the function.
    let stdout = child.stdout.take().expect("piped stdout");
    let emf = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
            .find(|v| v.get("_aws").is_some())
    });

    let started = Instant::now();
    let mut rss_ready_kb = 0;
    let mut delivered = None;
    let answer = loop {
        match seen_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Seen::Delivered(at)) => {
                rss_ready_kb = proc_status_kb(pid, "VmRSS:");
                delivered = Some(at);
            }
            Ok(Seen::Posted(answer)) => break answer,
            Err(_) if started.elapsed() > timeout => {
                let _ = child.kill();
                fail(&format!("no answer within {} s", timeout.as_secs()));
            }
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    fail(&format!("the function exited ({status}) before answering"));
                }
            }
        }
    };
    let wall = delivered.map(|at| at.elapsed()).unwrap_or_default();
    // Read while the process is alive: VmHWM is the kernel's own high-water mark of its
    // resident set, so no sampling can miss a short peak.
    let peak_rss_kb = proc_status_kb(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    let emf = emf.join().ok().flatten().unwrap_or(Value::Null);
    let answer = answer.unwrap_or_else(|error| fail(&format!("the function reported an error: {error}")));
    let report = json!({
        "answer": answer,
        "wall_s": wall.as_secs_f64(),
        "peak_rss_kb": peak_rss_kb,
        "rss_ready_kb": rss_ready_kb,
        "es_created": es.sunk(),
        "es_requests": es.requests().len(),
        "emf": emf,
    });
    println!("{report}");
}

fn fail(message: &str) -> ! {
    eprintln!("tix-lambda-driver: {message}");
    std::process::exit(1);
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// A `kB` field of `/proc/PID/status` (0 when unreadable).
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| l.strip_prefix(field).and_then(|v| v.split_whitespace().next()?.parse().ok()))
        })
        .unwrap_or(0)
}

/// The runtime API: the first `invocation/next` gets the event, later ones are held
/// (the function waits for work, as between invocations), and the posted answer or
/// error is reported. Each connection gets a thread: the runtime client may hold `next`
/// on one connection and post on another.
fn serve(listener: TcpListener, event: String, deadline_ms: u64, seen: mpsc::Sender<Seen>) {
    let event = Arc::new(Mutex::new(Some(event)));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        let (event, seen) = (event.clone(), seen.clone());
        std::thread::spawn(move || connection(stream, &event, deadline_ms, &seen));
    }
}

fn connection(stream: TcpStream, event: &Mutex<Option<String>>, deadline_ms: u64, seen: &mpsc::Sender<Seen>) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Some((path, body)) = read_request(&mut reader) {
        if path.ends_with("/runtime/invocation/next") {
            let Some(payload) = event.lock().expect("event lock").take() else {
                // One invocation only: later polls wait until the driver stops the function.
                loop {
                    std::thread::park();
                }
            };
            let _ = seen.send(Seen::Delivered(Instant::now()));
            let _ = write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: bench-1\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline_ms}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:garage:000000000000:function:tix-logs-lambda\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n\
                 Content-Length: {}\r\n\r\n{payload}",
                payload.len()
            );
        } else {
            let text = String::from_utf8_lossy(&body).into_owned();
            let posted = if path.ends_with("/response") {
                Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
            } else {
                Err(format!("{path}: {text}"))
            };
            let _ = seen.send(Seen::Posted(posted));
            let _ = write!(
                writer,
                "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{{\"status\":\"OK\"}}"
            );
        }
        let _ = writer.flush();
    }
}
