//! A loopback Lambda runtime API (the documented `/2018-06-01/runtime/...` HTTP
//! interface) for tests that run the `tix-logs-lambda` binary as the Lambda service
//! would: the function polls `invocation/next`, which is held until the test queues an
//! invocation, and posts its answer or its error back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// What the function posted back for one invocation.
#[derive(Debug)]
pub enum Posted {
    Response { request_id: String, body: Value },
    Error { request_id: String, body: String },
}

impl Posted {
    /// The answer posted for `request_id`; an error posted instead fails the test, with
    /// `context` (e.g. the function's stderr) in the message.
    pub fn into_response(self, request_id: &str, context: &str) -> Value {
        match self {
            Posted::Response { request_id: id, body } => {
                assert_eq!(id, request_id, "the answer is for another invocation");
                body
            }
            Posted::Error { request_id: id, body } => {
                panic!("{id}: the function reported an error: {body}; {context}")
            }
        }
    }
}

/// What the runtime API sends as `Lambda-Runtime-Deadline-Ms`.
#[derive(Debug, Clone, Copy)]
pub enum DeadlineShape {
    /// As AWS does: the epoch time in milliseconds, this far ahead.
    EpochIn(Duration),
    /// As `cargo lambda watch`'s emulator does: a duration (600000), which read as an
    /// epoch time lies in 1970.
    EmulatorDuration,
}

/// The runtime API, listening on 127.0.0.1.
pub struct RuntimeApi {
    address: String,
    invocations: mpsc::Sender<(String, Value)>,
    posted: mpsc::Receiver<Posted>,
}

impl RuntimeApi {
    /// A runtime API that sends AWS's deadline shape, two minutes ahead.
    pub fn start() -> RuntimeApi {
        Self::start_with(DeadlineShape::EpochIn(Duration::from_secs(120)))
    }

    /// A runtime API that sends deadlines in the given shape.
    pub fn start_with(deadline: DeadlineShape) -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local address").to_string();
        let (invocations, queued) = mpsc::channel::<(String, Value)>();
        let queued = Arc::new(Mutex::new(queued));
        let (sender, posted) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (queued, sender) = (queued.clone(), sender.clone());
                std::thread::spawn(move || serve(stream, &queued, deadline, &sender));
            }
        });
        RuntimeApi { address, invocations, posted }
    }

    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sets the variables the Lambda service gives a function, pointing at this API.
    pub fn configure(&self, command: &mut Command) {
        command
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "tix-logs-lambda")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test-stream")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tix-logs-lambda");
    }

    /// Invokes the function with `event` and waits (at most 2 minutes) for its answer;
    /// panics with its stderr if it exits first.
    pub fn invoke(&self, request_id: &str, event: &Value, child: &mut Child) -> Posted {
        self.invocations.send((request_id.to_string(), event.clone())).expect("the API thread runs");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match self.posted.recv_timeout(Duration::from_millis(200)) {
                Ok(posted) => return posted,
                Err(_) if Instant::now() > deadline => panic!("no answer to {request_id} within 120 s"),
                Err(_) => {
                    if let Some(status) = child.try_wait().expect("the function's status") {
                        let mut stderr = String::new();
                        if let Some(mut pipe) = child.stderr.take() {
                            let _ = pipe.read_to_string(&mut stderr);
                        }
                        panic!("the function exited ({status}) before answering {request_id}: {stderr}");
                    }
                }
            }
        }
    }
}

fn serve(
    stream: TcpStream,
    queued: &Mutex<mpsc::Receiver<(String, Value)>>,
    deadline_shape: DeadlineShape,
    sender: &mpsc::Sender<Posted>,
) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Some((path, body)) = read_request(&mut reader) {
        if path.ends_with("/runtime/invocation/next") {
            // Held until the test queues an invocation; the test ending drops the sender.
            let Ok((request_id, event)) = queued.lock().expect("queue lock").recv() else { return };
            let deadline = match deadline_shape {
                DeadlineShape::EpochIn(ahead) => {
                    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() + ahead.as_millis()
                }
                DeadlineShape::EmulatorDuration => 600_000,
            };
            let payload = event.to_string();
            let answer = write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {request_id}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:garage:000000000000:function:tix-logs-lambda\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n\
                 Content-Length: {}\r\n\r\n{payload}",
                payload.len()
            );
            if answer.is_err() {
                return;
            }
        } else {
            let text = String::from_utf8_lossy(&body).to_string();
            let rest = path.strip_prefix("/2018-06-01/runtime/invocation/").unwrap_or(&path);
            let posted = match (rest.strip_suffix("/response"), rest.strip_suffix("/error")) {
                (Some(id), _) => Posted::Response {
                    request_id: id.to_string(),
                    body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                },
                (None, Some(id)) => Posted::Error { request_id: id.to_string(), body: text },
                (None, None) => Posted::Error { request_id: String::new(), body: format!("{path}: {text}") },
            };
            let _ = sender.send(posted);
            let _ = write!(
                writer,
                "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{{\"status\":\"OK\"}}"
            );
        }
        let _ = writer.flush();
    }
}

/// Reads one HTTP/1.1 request of the runtime API (a function's client sends
/// `Content-Length` bodies, never chunked ones): its path and body; `None` when the
/// connection closes.
pub fn read_request(reader: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return None;
    }
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((request_line.split_whitespace().nth(1).unwrap_or("").to_string(), body))
}
