//! A scripted Elasticsearch server on 127.0.0.1 for the client's tests.
//!
//! [`Scripted`] is a tiny HTTP/1.1 server (keep-alive, `content-length` bodies, one
//! thread per connection, plain TCP or TLS with a fresh self-signed certificate, see
//! [`self_signed`]) whose every answer comes from a test's script: a function of the
//! request's number and the [`Request`] that returns a [`Reply`] (an answer, a dropped
//! connection, a slow answer, or an answer cut mid-body). The helpers build the answers
//! Elasticsearch 8 documents: [`bulk_item`], [`bulk_reply`], [`bulk_ok`],
//! [`error_body`], items refused by index blocks ([`blocked_item`],
//! [`bulk_reply_with_blocks`]), and [`remembering_cluster`], a `_bulk` endpoint that
//! stores ids as `create` does and keeps a [`Ledger`].
//!
//! [`FakeCluster`] is the stateful mode: a small Elasticsearch 8 node behind the same
//! server that keeps indices and documents, speaks every REST call the tix-logs client
//! makes, and lets a test switch faults on and off while it runs.
//! [`FakeCluster::start_sink`] is the same node for benchmarks: it answers event writes
//! without keeping them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::oracle::{Observed, ObservedDeadLetter, ObservedSource};

/// One HTTP request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PUT`, `POST`, `DELETE`, ...
    pub method: String,
    /// The request target: path and query string.
    pub target: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body (empty when the server was started not to keep bodies).
    pub body: Vec<u8>,
    /// Bytes of body received (kept when the body itself is not).
    pub body_len: usize,
}

impl Request {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query string (without `?`), empty when there is none.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// The `_bulk` body as (action, source) pairs.
    pub fn bulk_lines(&self) -> Vec<(Value, Value)> {
        let text = std::str::from_utf8(&self.body).expect("bulk body is UTF-8");
        assert!(text.ends_with('\n'), "a bulk body must end with a newline");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() % 2, 0, "create actions come in action/source pairs");
        lines
            .chunks(2)
            .map(|pair| {
                (
                    serde_json::from_str(pair[0]).expect("action line is JSON"),
                    serde_json::from_str(pair[1]).expect("source line is JSON"),
                )
            })
            .collect()
    }

    /// The `_id` of every action of a `_bulk` body, in order.
    pub fn bulk_ids(&self) -> Vec<String> {
        self.bulk_lines()
            .iter()
            .map(|(action, _)| {
                let op = action.as_object().and_then(|m| m.values().next()).expect("one operation");
                op["_id"].as_str().expect("_id").to_string()
            })
            .collect()
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status and JSON body (`content-length` framed).
    Json(u16, String),
    /// Reads the request, then closes the connection without answering.
    Drop,
    /// Waits, then answers (longer than the client's timeout: a slow server).
    Delay(Duration, Box<Reply>),
    /// Announces the whole JSON body in `content-length` but sends only its first `sent`
    /// bytes, then closes the connection: an answer lost on the way back, after the
    /// cluster has done the work.
    Cut { status: u16, body: String, sent: usize },
    /// Like [`Reply::Json`] but without the `X-Elastic-Product: Elasticsearch` header
    /// (what OpenSearch or a proxy in front of the cluster answers).
    Bare(u16, String),
}

/// The function that answers request number `n` (counted over all connections).
pub type Script = dyn Fn(usize, &Request) -> Reply + Send + Sync;

/// A tiny HTTP/1.1 server: keep-alive, Content-Length bodies, one thread per connection;
/// plain TCP or TLS.
pub struct Scripted {
    addr: SocketAddr,
    tls: bool,
    log: Arc<Mutex<Vec<Request>>>,
    /// TLS only: each connection's bytes as they came off the socket (before decryption).
    wire: Arc<Mutex<Vec<Vec<u8>>>>,
    /// TLS only: why handshakes failed, as the server saw it.
    handshake_errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    /// A plain-HTTP server answering with `script`.
    pub fn start(script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(true, script)
    }

    /// `keep_bodies: false` logs requests without their bodies (the benchmark sends
    /// hundreds of megabytes).
    pub fn start_with(keep_bodies: bool, script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::listen(keep_bodies, None, Arc::new(script))
    }

    /// The same server behind TLS with `identity` as its certificate and key.
    pub fn start_tls(
        identity: &rcgen::CertifiedKey,
        script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::listen(true, Some(tls_server_config(identity)), Arc::new(script))
    }

    fn listen(keep_bodies: bool, tls: Option<Arc<rustls::ServerConfig>>, script: Arc<Script>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let server = Scripted {
            addr: listener.local_addr().unwrap(),
            tls: tls.is_some(),
            log: Arc::default(),
            wire: Arc::default(),
            handshake_errors: Arc::default(),
            stop: Arc::default(),
        };
        let counter = Arc::new(AtomicUsize::new(0));
        let (log, wire, handshake_errors, stop) =
            (server.log.clone(), server.wire.clone(), server.handshake_errors.clone(), server.stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                let (script, log, counter) = (script.clone(), log.clone(), counter.clone());
                let Some(tls) = tls.clone() else {
                    std::thread::spawn(move || serve_connection(stream, &*script, &log, &counter, keep_bodies));
                    continue;
                };
                let (wire, handshake_errors) = (wire.clone(), handshake_errors.clone());
                std::thread::spawn(move || {
                    let connection = {
                        let mut wire_log = wire.lock().unwrap();
                        wire_log.push(Vec::new());
                        wire_log.len() - 1
                    };
                    let tapped = Tapped { stream, wire, connection };
                    let conn = rustls::ServerConnection::new(tls).expect("TLS server connection");
                    let mut stream = rustls::StreamOwned::new(conn, tapped);
                    // Handshake first, so a refused certificate is recorded as such.
                    while stream.conn.is_handshaking() {
                        match stream.conn.complete_io(&mut stream.sock) {
                            Ok((0, 0)) => {
                                handshake_errors.lock().unwrap().push("connection closed during the handshake".into());
                                return;
                            }
                            Ok(_) => {}
                            Err(error) => {
                                handshake_errors.lock().unwrap().push(error.to_string());
                                return;
                            }
                        }
                    }
                    serve_connection(stream, &*script, &log, &counter, keep_bodies);
                });
            }
        });
        server
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// Every request answered so far, in the order they were read.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// TLS only: each connection's bytes as they came off the socket.
    pub fn wire(&self) -> Vec<Vec<u8>> {
        self.wire.lock().unwrap().clone()
    }

    /// TLS only: why handshakes failed, as the server saw it.
    pub fn handshake_errors(&self) -> Vec<String> {
        self.handshake_errors.lock().unwrap().clone()
    }

    /// The handshake errors once there are `expected` of them (or after 5 s). The server
    /// records a failed handshake on its own thread, after the client has already seen
    /// the failure and moved on, so reading at once can miss the last one.
    pub fn handshake_errors_when(&self, expected: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.handshake_errors.lock().unwrap().len() < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.handshake_errors()
    }
}

/// A socket that keeps a copy of every byte read from it (what an eavesdropper sees).
struct Tapped {
    stream: TcpStream,
    wire: Arc<Mutex<Vec<Vec<u8>>>>,
    connection: usize,
}

impl Read for Tapped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.wire.lock().unwrap()[self.connection].extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tapped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// A server connection: a byte stream that can be closed abruptly.
trait Connection: Read + Write {
    fn close(&mut self);
}

impl Connection for TcpStream {
    fn close(&mut self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Connection for rustls::StreamOwned<rustls::ServerConnection, Tapped> {
    /// Sends what is buffered, then closes the socket without a TLS close_notify, as a
    /// crashing node or a cut network would.
    fn close(&mut self) {
        let _ = self.flush();
        let _ = self.sock.stream.shutdown(Shutdown::Both);
    }
}

/// Serves `identity` with the ring provider, the one the client's rustls uses too.
fn tls_server_config(identity: &rcgen::CertifiedKey) -> Arc<rustls::ServerConfig> {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(identity.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.der().clone()], key)
        .expect("server certificate");
    Arc::new(config)
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

fn serve_connection(
    stream: impl Connection,
    script: &Script,
    log: &Mutex<Vec<Request>>,
    counter: &AtomicUsize,
    keep_bodies: bool,
) {
    // Requests and answers alternate (the client does not pipeline), so writing to the
    // stream under the reader never skips buffered input.
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    while let Some(mut request) = read_request(&mut reader) {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let reply = script(n, &request);
        if !keep_bodies {
            request.body = Vec::new();
        }
        log.lock().unwrap().push(request);
        let writer = reader.get_mut();
        if !write_reply(writer, reply) {
            writer.close();
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<impl Read>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert!(get("transfer-encoding").is_none(), "the client is expected to send Content-Length bodies");
    let length: usize = get("content-length").map(|v| v.parse().expect("content-length")).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { body_len: body.len(), method, target, headers, body })
}

/// Writes the reply; false when the connection must be closed.
fn write_reply(writer: &mut impl Write, reply: Reply) -> bool {
    let head_with = |status: u16, length: usize, product: &str| {
        format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\n{product}content-length: {length}\r\n\r\n",
            reason_phrase(status),
        )
    };
    let head = |status: u16, length: usize| head_with(status, length, "x-elastic-product: Elasticsearch\r\n");
    match reply {
        Reply::Drop => false,
        Reply::Delay(delay, reply) => {
            std::thread::sleep(delay);
            write_reply(writer, *reply)
        }
        Reply::Json(status, body) => writer
            .write_all(head(status, body.len()).as_bytes())
            .and_then(|_| writer.write_all(body.as_bytes()))
            .and_then(|_| writer.flush())
            .is_ok(),
        Reply::Bare(status, body) => writer
            .write_all(head_with(status, body.len(), "").as_bytes())
            .and_then(|_| writer.write_all(body.as_bytes()))
            .and_then(|_| writer.flush())
            .is_ok(),
        Reply::Cut { status, body, sent } => {
            let _ = writer
                .write_all(head(status, body.len()).as_bytes())
                .and_then(|_| writer.write_all(&body.as_bytes()[..sent.min(body.len())]))
                .and_then(|_| writer.flush());
            false
        }
    }
}

/// The reason phrase of an HTTP status.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// One `_bulk` response item as Elasticsearch 8 documents it, for a status.
pub fn bulk_item(index: &str, id: &str, status: u16, seq_no: usize) -> Value {
    let error = |kind: &str, reason: String| json!({"create": {"_index": index, "_id": id, "status": status, "error": {"type": kind, "reason": reason, "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA", "shard": "0", "index": index}}});
    match status {
        200 | 201 => json!({"create": {
            "_index": index, "_id": id, "_version": 1, "result": "created",
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": seq_no, "_primary_term": 1, "status": status
        }}),
        409 => error(
            "version_conflict_engine_exception",
            format!("[{id}]: version conflict, document already exists (current version [1])"),
        ),
        429 => json!({"create": {"_index": index, "_id": id, "status": 429, "error": {
            "type": "es_rejected_execution_exception",
            "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1048576, max_coordinating_and_primary_bytes=107374182]"
        }}}),
        400 => json!({"create": {"_index": index, "_id": id, "status": 400, "error": {
            "type": "document_parsing_exception",
            "reason": format!("[1:84] failed to parse field [amount] of type [double] in document with id '{id}'. Preview of field's value: 'lots'"),
            "caused_by": {"type": "number_format_exception", "reason": "For input string: \"lots\""}
        }}}),
        404 => json!({"create": {"_index": index, "_id": id, "status": 404, "error": {
            "type": "index_not_found_exception",
            "reason": format!("no such index [{index}]"),
            "resource.type": "index_expression", "resource.id": index, "index_uuid": "_na_", "index": index
        }}}),
        _ => error("unavailable_shards_exception", format!("[{index}][0] primary shard is not active Timeout: [1m]")),
    }
}

/// A `_bulk` answer with a status per item (by position and id).
pub fn bulk_reply(request: &Request, status_of: impl Fn(usize, &str) -> u16) -> Reply {
    let lines = request.bulk_lines();
    let mut errors = false;
    let items: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (action, _))| {
            let op = action.as_object().and_then(|m| m.values().next()).expect("one operation");
            let (index, id) = (op["_index"].as_str().unwrap_or(""), op["_id"].as_str().unwrap_or(""));
            let status = status_of(i, id);
            errors |= status >= 300;
            let mut item = bulk_item(index, id, status, i);
            // An `index` action is answered under its own name.
            if action.get("index").is_some() {
                let inner = item["create"].take();
                item = json!({"index": inner});
            }
            item
        })
        .collect();
    Reply::Json(200, json!({"took": 30, "errors": errors, "items": items}).to_string())
}

/// A `_bulk` answer that creates every item (201).
pub fn bulk_ok(request: &Request) -> Reply {
    bulk_reply(request, |_, _| 201)
}

/// An Elasticsearch error body (`{"error": {"root_cause": [...], "type", "reason"}, "status"}`).
pub fn error_body(status: u16, kind: &str, reason: &str) -> String {
    json!({"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}, "status": status})
        .to_string()
}

/// The reason Elasticsearch gives for a write to an index with `index.blocks.write`.
pub const WRITE_BLOCK: &str = "blocked by: [FORBIDDEN/8/index write (api)];";
/// The reason for a write refused by the disk flood-stage watermark, which sets
/// `index.blocks.read_only_allow_delete` (answered with 429 since Elasticsearch 7.x, and
/// lifted by the cluster once disk usage falls below the high watermark).
pub const FLOOD_STAGE_BLOCK: &str =
    "blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];";

/// A `_bulk` item refused by an index block: `cluster_block_exception` with 403 (a block
/// an operator set) or 429 (the flood-stage watermark).
pub fn blocked_item(index: &str, id: &str, status: u16) -> Value {
    let block = if status == 403 { WRITE_BLOCK } else { FLOOD_STAGE_BLOCK };
    json!({"create": {"_index": index, "_id": id, "status": status,
        "error": {"type": "cluster_block_exception", "reason": format!("index [{index}] {block}")}}})
}

/// A `_bulk` answer in which the items of `blocked_ids` are refused by an index block
/// with `status` and the others are created.
pub fn bulk_reply_with_blocks(request: &Request, blocked_ids: &[String], status: u16) -> Reply {
    let Reply::Json(_, body) = bulk_ok(request) else { unreachable!() };
    let mut value: Value = serde_json::from_str(&body).unwrap();
    for item in value["items"].as_array_mut().unwrap() {
        let id = item["create"]["_id"].as_str().unwrap().to_string();
        if blocked_ids.contains(&id) {
            let index = item["create"]["_index"].as_str().unwrap().to_string();
            *item = blocked_item(&index, &id, status);
        }
    }
    value["errors"] = json!(true);
    Reply::Json(200, value.to_string())
}

impl Reply {
    /// The same answer for other ids (as if it belonged to another request): every
    /// item's `_id` gets an `other-` prefix.
    pub fn rewrite_ids(self) -> Reply {
        match self {
            Reply::Json(status, body) => {
                let mut value: Value = serde_json::from_str(&body).unwrap();
                for item in value["items"].as_array_mut().unwrap() {
                    let op = item.as_object_mut().unwrap().values_mut().next().unwrap();
                    let id = format!("other-{}", op["_id"].as_str().unwrap());
                    op["_id"] = json!(id);
                }
                Reply::Json(status, value.to_string())
            }
            other => other,
        }
    }
}

/// What a [`remembering_cluster`] did.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Ids stored.
    pub stored: BTreeSet<String>,
    /// Ids in the order they were created (answered 201): an id twice would be a double.
    pub created: Vec<String>,
    /// Size of `stored` after each `_bulk` request.
    pub stored_after_each: Vec<usize>,
}

impl Ledger {
    /// The cluster holds exactly the documents `ids`, each created once, and had them all
    /// after the first request: later requests added nothing.
    pub fn assert_holds_each_once<S: AsRef<str>>(&self, ids: &[S]) {
        let sent: BTreeSet<String> = ids.iter().map(|id| id.as_ref().to_string()).collect();
        assert_eq!(self.stored, sent, "the cluster holds exactly the documents sent");
        let mut created = self.created.clone();
        created.sort();
        assert_eq!(created, sent.iter().cloned().collect::<Vec<_>>(), "each document created once");
        assert!(self.stored_after_each.iter().all(|&n| n == ids.len()), "{:?}", self.stored_after_each);
    }
}

/// A cluster that remembers what it stored, as `create` does: a new id is stored (201), a
/// stored id answers 409. `deliver(n, answer)` may change answer `n` on its way out.
pub fn remembering_cluster(
    deliver: impl Fn(usize, Reply) -> Reply + Send + Sync + 'static,
) -> (Scripted, Arc<Mutex<Ledger>>) {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let kept = ledger.clone();
    let server = Scripted::start(move |n, r| {
        let mut ledger = kept.lock().unwrap();
        let statuses: Vec<u16> = r
            .bulk_ids()
            .into_iter()
            .map(|id| {
                if ledger.stored.insert(id.clone()) {
                    ledger.created.push(id);
                    201
                } else {
                    409
                }
            })
            .collect();
        let stored = ledger.stored.len();
        ledger.stored_after_each.push(stored);
        deliver(n, bulk_reply(r, |i, _| statuses[i]))
    });
    (server, ledger)
}

/// A fresh self-signed certificate for `names` (for [`Scripted::start_tls`]), and its PEM
/// in a file (what `TIX_ES_CA_CERT` points to).
pub fn self_signed(names: &[&str]) -> (rcgen::CertifiedKey, tempfile::NamedTempFile) {
    let identity = rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("generate a certificate");
    let mut pem = tempfile::NamedTempFile::new().unwrap();
    pem.write_all(identity.cert.pem().as_bytes()).unwrap();
    (identity, pem)
}

// ---------------------------------------------------------------------------------------
// The stateful mode: a fake Elasticsearch 8 node
// ---------------------------------------------------------------------------------------

/// One `_bulk` item as [`FakeCluster`] sees it, handed to an item fault script.
#[derive(Debug, Clone, Copy)]
pub struct BulkItem<'a> {
    /// `create` or `index`.
    pub action: &'a str,
    pub index: &'a str,
    pub id: &'a str,
    /// The source line as sent (`@timestamp`, not `ts`, for events).
    pub source: &'a Value,
    /// How many earlier `_bulk` items carried this index and id: 0 on the first try.
    pub tries: usize,
    /// Whether the cluster already holds a document with this index and id.
    pub stored: bool,
}

/// An item fault script: `Some(status)` answers the item with that status and the
/// documented error for it ([`bulk_item`]; 403 is an index write block,
/// [`blocked_item`]) without storing it; `None` lets the cluster do its work.
pub type ItemFaults = dyn Fn(&BulkItem<'_>) -> Option<u16> + Send + Sync;

/// A document as [`FakeCluster`] stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDoc {
    pub index: String,
    pub id: String,
    /// `_source` exactly as received.
    pub source: Map<String, Value>,
    /// 1 when created, +1 for every `index` action over it.
    pub version: u64,
}

/// How [`FakeCluster`] answered one `_bulk` item (for asserting that a fault happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemAnswer {
    pub action: String,
    pub index: String,
    pub id: String,
    pub status: u16,
    /// The error `type` (`es_rejected_execution_exception`, `index_not_found_exception`, ...).
    pub error_type: Option<String>,
}

/// The documents of one index: id -> (source, version).
type IndexDocs = BTreeMap<String, (Map<String, Value>, u64)>;

/// One `_search` candidate: its sort key, index, id and source.
type Hit<'a> = (Vec<Value>, &'a String, &'a String, &'a Map<String, Value>);

/// Everything the fake cluster knows and every switch a test can flip.
struct ClusterState {
    /// Index name -> its documents.
    indices: BTreeMap<String, IndexDocs>,
    templates: BTreeMap<String, Value>,
    auto_create_index: bool,
    auth_fail: Option<u16>,
    write_block: bool,
    storm: bool,
    product_header: bool,
    down: bool,
    item_faults: Option<Arc<ItemFaults>>,
    lose_answers: usize,
    lost_answers: usize,
    refused_while_down: usize,
    tries: HashMap<(String, String), usize>,
    answers: Vec<ItemAnswer>,
    seq_no: usize,
    /// Sink mode ([`FakeCluster::start_sink`]): event writes are answered, not kept.
    sink: bool,
    /// Event writes answered as created in sink mode.
    sunk: u64,
}

/// A small Elasticsearch 8 node on 127.0.0.1 that keeps its indices and documents in
/// memory and speaks the documented REST calls the tix-logs client makes: `GET /`,
/// `PUT _index_template/NAME`, `PUT`/`DELETE` indices, `GET INDEX/_doc/ID`, `_bulk`
/// with `create` (201, or 409 `version_conflict_engine_exception` for a stored id) and
/// `index` (upsert 201/200) answered item by item, `_refresh`, `_search` and `_count`
/// (every query is a `match_all`; `size`, `sort` and `search_after` are honoured) and
/// `GET _cat/indices/PATTERN?format=json`. Anything else is answered 400 with an
/// Elasticsearch-shaped error, and every answer carries `X-Elastic-Product:
/// Elasticsearch` unless [`FakeCluster::product_header`] turns it off.
///
/// Faults are switches, thread-safe and flippable at any time while a client runs:
/// [`auto_create_index`](FakeCluster::auto_create_index),
/// [`storm`](FakeCluster::storm), [`set_item_faults`](FakeCluster::set_item_faults),
/// [`auth_fail`](FakeCluster::auth_fail), [`write_block`](FakeCluster::write_block),
/// [`lose_answer_after_indexing`](FakeCluster::lose_answer_after_indexing),
/// [`down`](FakeCluster::down) / [`up`](FakeCluster::up).
///
/// What it stored is read back without HTTP, for oracles: [`FakeCluster::docs`],
/// [`FakeCluster::events`] (converted back to tix-logs events, `ts` in place of
/// `@timestamp`), [`FakeCluster::checkpoints`], [`FakeCluster::observed`]; how it
/// answered in [`FakeCluster::item_answers`] and [`FakeCluster::requests`].
pub struct FakeCluster {
    server: Scripted,
    state: Arc<Mutex<ClusterState>>,
}

impl FakeCluster {
    /// A healthy, empty node over plain HTTP, creating indices on write
    /// (`action.auto_create_index: true`, the Elasticsearch default).
    pub fn start() -> FakeCluster {
        let state = Self::fresh_state();
        let kept = state.clone();
        let server = Scripted::start(move |_, request| answer(&kept, request));
        FakeCluster { server, state }
    }

    /// The same node behind TLS with `identity` (see [`self_signed`]).
    pub fn start_tls(identity: &rcgen::CertifiedKey) -> FakeCluster {
        let state = Self::fresh_state();
        let kept = state.clone();
        let server = Scripted::start_tls(identity, move |_, request| answer(&kept, request));
        FakeCluster { server, state }
    }

    /// A node for memory and throughput benchmarks: every event write (`create`) is
    /// answered 201 without keeping its document, its try or its answer, and requests are
    /// logged without bodies, so the node's own memory does not grow with what a client
    /// sends (gigabytes). Everything else (templates, indices, checkpoints, which are
    /// `index` actions, and every switch) works as in [`FakeCluster::start`];
    /// [`FakeCluster::sunk`] counts the event writes.
    pub fn start_sink() -> FakeCluster {
        let state = Self::fresh_state();
        state.lock().unwrap().sink = true;
        let kept = state.clone();
        let server = Scripted::start_with(false, move |_, request| answer(&kept, request));
        FakeCluster { server, state }
    }

    /// Event writes a [`FakeCluster::start_sink`] node answered as created.
    pub fn sunk(&self) -> u64 {
        self.state().sunk
    }

    fn fresh_state() -> Arc<Mutex<ClusterState>> {
        Arc::new(Mutex::new(ClusterState {
            indices: BTreeMap::new(),
            templates: BTreeMap::new(),
            auto_create_index: true,
            auth_fail: None,
            write_block: false,
            storm: false,
            product_header: true,
            down: false,
            item_faults: None,
            lose_answers: 0,
            lost_answers: 0,
            refused_while_down: 0,
            tries: HashMap::new(),
            answers: Vec::new(),
            seq_no: 0,
            sink: false,
            sunk: 0,
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The underlying server (its address, TLS wire log, handshake errors).
    pub fn server(&self) -> &Scripted {
        &self.server
    }

    /// Every request received, in order (also those refused while down).
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    // ---- switches -----------------------------------------------------------------

    /// `action.auto_create_index`. When false, a `_bulk` write into an index that does
    /// not exist is answered per item with 404 `index_not_found_exception` (as
    /// Elasticsearch answers it), and only `PUT INDEX` creates the index.
    pub fn auto_create_index(&self, on: bool) {
        self.state().auto_create_index = on;
    }

    /// While on, every `create` item (an event write) is answered 429
    /// `es_rejected_execution_exception`, the write thread pool's queue being full.
    /// Checkpoint writes (`index` actions) still go through, as on an idle shard.
    pub fn storm(&self, on: bool) {
        self.state().storm = on;
    }

    /// A per-item fault script, consulted for every `_bulk` item before the cluster
    /// stores it (see [`ItemFaults`]); replaces the previous one.
    pub fn set_item_faults(&self, faults: impl Fn(&BulkItem<'_>) -> Option<u16> + Send + Sync + 'static) {
        self.state().item_faults = Some(Arc::new(faults));
    }

    /// Removes the item fault script.
    pub fn clear_item_faults(&self) {
        self.state().item_faults = None;
    }

    /// `Some(401)`: every request is refused as unauthenticated (a revoked or wrong API
    /// key); `Some(403)`: authenticated but lacking the privilege (`security_exception`);
    /// `None`: credentials accepted again.
    pub fn auth_fail(&self, status: Option<u16>) {
        assert!(matches!(status, None | Some(401) | Some(403)), "auth_fail takes 401 or 403");
        self.state().auth_fail = status;
    }

    /// While on, every `_bulk` item is refused with 403 `cluster_block_exception`
    /// ([`WRITE_BLOCK`], `index.blocks.write`) and nothing is stored.
    pub fn write_block(&self, on: bool) {
        self.state().write_block = on;
    }

    /// The next `n` `_bulk` requests are carried out (documents stored) and then their
    /// answer is cut mid-body ([`Reply::Cut`]).
    pub fn lose_answer_after_indexing(&self, n: usize) {
        self.state().lose_answers = n;
    }

    /// Whether answers carry `X-Elastic-Product: Elasticsearch` (default on).
    pub fn product_header(&self, on: bool) {
        self.state().product_header = on;
    }

    /// Unreachable: every connection is closed as soon as a request arrives, without an
    /// answer and without touching the data, until [`FakeCluster::up`].
    pub fn down(&self) {
        self.state().down = true;
    }

    /// Reachable again.
    pub fn up(&self) {
        self.state().down = false;
    }

    // ---- read-back ----------------------------------------------------------------

    /// Every index name, sorted.
    pub fn indices(&self) -> Vec<String> {
        self.state().indices.keys().cloned().collect()
    }

    /// Creates an empty index (as `PUT INDEX` would); false if it existed.
    pub fn create_index(&self, name: &str) -> bool {
        let mut state = self.state();
        if state.indices.contains_key(name) {
            return false;
        }
        state.indices.insert(name.to_string(), BTreeMap::new());
        true
    }

    /// Stores `doc` as if an earlier client had written it (creating its index), without a
    /// request; false if its index already held that id (left unchanged).
    pub fn insert_doc(&self, doc: &StoredDoc) -> bool {
        let mut state = self.state();
        let docs = state.indices.entry(doc.index.clone()).or_default();
        if docs.contains_key(&doc.id) {
            return false;
        }
        docs.insert(doc.id.clone(), (doc.source.clone(), doc.version.max(1)));
        true
    }

    /// Every stored document of the indices matching `pattern` (comma-separated names,
    /// `*` wildcards), by index then id.
    pub fn docs(&self, pattern: &str) -> Vec<StoredDoc> {
        let state = self.state();
        let names = resolve(&state, pattern).unwrap_or_default();
        names
            .iter()
            .flat_map(|index| {
                state.indices[index].iter().map(move |(id, (source, version))| StoredDoc {
                    index: index.clone(),
                    id: id.clone(),
                    source: source.clone(),
                    version: *version,
                })
            })
            .collect()
    }

    /// The events under `prefix` (daily indices `PREFIX-2*`) as tix-logs documents:
    /// `(id, event)` with `@timestamp` back to `ts`, as tix-logs reads them back. An id
    /// stored in two daily indices appears twice.
    pub fn events(&self, prefix: &str) -> Vec<(String, Map<String, Value>)> {
        self.docs(&format!("{prefix}-2*")).into_iter().map(|d| (d.id, event_from_source(d.source))).collect()
    }

    /// The checkpoint documents of `PREFIX-sources`, as stored.
    pub fn checkpoints(&self, prefix: &str) -> Vec<Map<String, Value>> {
        self.docs(&format!("{prefix}-sources")).into_iter().map(|d| d.source).collect()
    }

    /// What a run left in this cluster under `prefix`, with the dead letters read from
    /// their store, for [`crate::oracle::check`]. An event id stored twice fails here.
    pub fn observed(&self, prefix: &str, dead_letters: Vec<ObservedDeadLetter>) -> Observed {
        Observed {
            docs: Observed::docs_by_id(self.events(prefix)),
            dead_letters,
            sources: self
                .checkpoints(prefix)
                .into_iter()
                .map(|c| ObservedSource {
                    source: c.get("source").and_then(Value::as_str).unwrap_or_default().to_string(),
                    completed: c.get("status").and_then(Value::as_str) == Some("completed"),
                })
                .collect(),
        }
    }

    /// How every `_bulk` item was answered, in order.
    pub fn item_answers(&self) -> Vec<ItemAnswer> {
        self.state().answers.clone()
    }

    /// `_bulk` items answered with `status` (and, when given, this error type).
    pub fn items_answered(&self, status: u16, error_type: Option<&str>) -> usize {
        self.state()
            .answers
            .iter()
            .filter(|a| a.status == status && (error_type.is_none() || a.error_type.as_deref() == error_type))
            .count()
    }

    /// `_bulk` answers cut by [`FakeCluster::lose_answer_after_indexing`].
    pub fn lost_answers(&self) -> usize {
        self.state().lost_answers
    }

    /// Requests dropped while [`FakeCluster::down`].
    pub fn refused_while_down(&self) -> usize {
        self.state().refused_while_down
    }

    /// The index templates installed, by name.
    pub fn templates(&self) -> BTreeMap<String, Value> {
        self.state().templates.clone()
    }
}

/// `@timestamp` back to `ts`, in place, as the tix-logs client reads an event back.
fn event_from_source(source: Map<String, Value>) -> Map<String, Value> {
    if !source.contains_key("@timestamp") || source.contains_key("ts") {
        return source;
    }
    source.into_iter().map(|(k, v)| if k == "@timestamp" { ("ts".to_string(), v) } else { (k, v) }).collect()
}

/// Whether `name` matches the wildcard `pattern` (`*` only).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The indices an expression names (comma-separated names and wildcards; `_all`). A
/// concrete name that does not exist is `Err(name)`; a wildcard may match nothing.
fn resolve(state: &ClusterState, expression: &str) -> Result<Vec<String>, String> {
    let mut out = BTreeSet::new();
    for part in expression.split(',').filter(|p| !p.is_empty()) {
        if part == "_all" || part.contains('*') {
            let pattern = if part == "_all" { "*" } else { part };
            out.extend(state.indices.keys().filter(|name| wildcard_match(pattern, name)).cloned());
        } else if state.indices.contains_key(part) {
            out.insert(part.to_string());
        } else {
            return Err(part.to_string());
        }
    }
    Ok(out.into_iter().collect())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(byte) = text.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.query().split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

fn index_not_found(index: &str) -> (u16, String) {
    let reason = format!("no such index [{index}]");
    let body = json!({"error": {
        "root_cause": [{"type": "index_not_found_exception", "reason": reason, "resource.type": "index_or_alias", "resource.id": index, "index_uuid": "_na_", "index": index}],
        "type": "index_not_found_exception", "reason": reason, "resource.type": "index_or_alias", "resource.id": index, "index_uuid": "_na_", "index": index},
        "status": 404});
    (404, body.to_string())
}

const ROOT_ANSWER: &str = r#"{"name":"fake-node-1","cluster_name":"tix-fake","cluster_uuid":"q7s0EaTjS1GaE6T8mw0DcA","version":{"number":"8.15.0","build_flavor":"default","build_type":"docker","build_hash":"1a77947f34deddb41af25e6f0ddb8e830159c179","build_date":"2024-08-05T10:05:34.233336849Z","build_snapshot":false,"lucene_version":"9.11.1","minimum_wire_compatibility_version":"7.17.0","minimum_index_compatibility_version":"7.0.0"},"tagline":"You Know, for Search"}"#;

/// The fake cluster's answer to one request.
fn answer(state: &Mutex<ClusterState>, request: &Request) -> Reply {
    let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if state.down {
        state.refused_while_down += 1;
        return Reply::Drop;
    }
    let (status, body, cut) = route(&mut state, request);
    if cut {
        state.lost_answers += 1;
        return Reply::Cut { status, sent: body.len() / 2, body };
    }
    if state.product_header {
        Reply::Json(status, body)
    } else {
        Reply::Bare(status, body)
    }
}

/// Status, body, and whether to cut the answer.
fn route(state: &mut ClusterState, request: &Request) -> (u16, String, bool) {
    let method = request.method.as_str();
    let path = percent_decode(request.path());
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    if let Some(status) = state.auth_fail {
        return auth_refusal(status, method, &path);
    }
    let ok = |body: Value| (200, body.to_string(), false);
    let acknowledged = json!({"acknowledged": true});
    match (method, segments.as_slice()) {
        ("GET" | "HEAD", []) => (200, ROOT_ANSWER.to_string(), false),
        ("PUT" | "POST", ["_index_template", name]) => match request_json(request) {
            Some(body) => {
                state.templates.insert(name.to_string(), body);
                ok(acknowledged)
            }
            None => parse_failure(),
        },
        ("DELETE", ["_index_template", name]) => match state.templates.remove(*name) {
            Some(_) => ok(acknowledged),
            None => {
                let reason = format!("index_template matching [{name}] not found");
                (404, error_body(404, "resource_not_found_exception", &reason), false)
            }
        },
        ("PUT", ["_ilm", "policy", _]) => ok(acknowledged),
        ("POST" | "PUT", ["_bulk"]) => bulk(state, request),
        ("GET", ["_cat", "indices"]) => cat_indices(state, request, "*"),
        ("GET", ["_cat", "indices", pattern]) => cat_indices(state, request, pattern),
        ("POST" | "GET", [pattern, "_refresh"]) => match resolve(state, pattern) {
            Ok(names) => ok(json!({"_shards": {"total": names.len() * 2, "successful": names.len(), "failed": 0}})),
            Err(missing) => no_index(&missing),
        },
        ("POST" | "GET", [pattern, "_search"]) => search(state, request, pattern),
        ("POST" | "GET", [pattern, "_count"]) => match resolve(state, pattern) {
            Ok(names) => {
                let count: usize = names.iter().map(|n| state.indices[n].len()).sum();
                ok(
                    json!({"count": count, "_shards": {"total": names.len(), "successful": names.len(), "skipped": 0, "failed": 0}}),
                )
            }
            Err(missing) => no_index(&missing),
        },
        ("GET", [index, "_doc", id]) => match state.indices.get(*index) {
            None => no_index(index),
            Some(docs) => match docs.get(*id) {
                Some((source, version)) => ok(json!({
                    "_index": index, "_id": id, "_version": version, "_seq_no": 0, "_primary_term": 1,
                    "found": true, "_source": source
                })),
                None => (404, json!({"_index": index, "_id": id, "found": false}).to_string(), false),
            },
        },
        ("PUT", [index]) if !index.starts_with('_') => create_index(state, index),
        ("DELETE", [expression]) if !expression.starts_with('_') => delete_indices(state, expression),
        _ => {
            let reason = format!("no handler found for uri [{}] and method [{method}]", request.target);
            (400, error_body(400, "illegal_argument_exception", &reason), false)
        }
    }
}

fn request_json(request: &Request) -> Option<Value> {
    if request.body.is_empty() {
        return Some(json!({}));
    }
    serde_json::from_slice(&request.body).ok()
}

fn parse_failure() -> (u16, String, bool) {
    (400, error_body(400, "x_content_parse_exception", "[1:1] failed to parse the request body"), false)
}

fn no_index(index: &str) -> (u16, String, bool) {
    let (status, body) = index_not_found(index);
    (status, body, false)
}

fn auth_refusal(status: u16, method: &str, path: &str) -> (u16, String, bool) {
    let body = if status == 401 {
        error_body(
            401,
            "security_exception",
            "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
        )
    } else {
        let action = if path.contains("_bulk") { "indices:data/write/bulk" } else { "indices:admin/create" };
        error_body(
            403,
            "security_exception",
            &format!(
                "action [{action}] is unauthorized for API key id [tix-ingest] of user [tix-ingest] on {method} {path}, \
                 this action is granted by the index privileges [create_doc,create,index,write,all]"
            ),
        )
    };
    (status, body, false)
}

fn create_index(state: &mut ClusterState, index: &str) -> (u16, String, bool) {
    if index.chars().any(|c| c.is_ascii_uppercase()) || index.starts_with(['-', '+']) {
        let reason = format!("Invalid index name [{index}], must be lowercase");
        return (400, error_body(400, "invalid_index_name_exception", &reason), false);
    }
    if state.indices.contains_key(index) {
        let reason = format!("index [{index}/aAsFqTI0Tc2W0LCWgPNrOA] already exists");
        let body = json!({"error": {
            "root_cause": [{"type": "resource_already_exists_exception", "reason": reason, "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA", "index": index}],
            "type": "resource_already_exists_exception", "reason": reason, "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA", "index": index},
            "status": 400});
        return (400, body.to_string(), false);
    }
    state.indices.insert(index.to_string(), BTreeMap::new());
    (200, json!({"acknowledged": true, "shards_acknowledged": true, "index": index}).to_string(), false)
}

fn delete_indices(state: &mut ClusterState, expression: &str) -> (u16, String, bool) {
    if expression.contains('*') || expression == "_all" {
        let reason = "Wildcard expressions or all indices are not allowed";
        return (400, error_body(400, "illegal_argument_exception", reason), false);
    }
    match resolve(state, expression) {
        Ok(names) => {
            for name in names {
                state.indices.remove(&name);
            }
            (200, json!({"acknowledged": true}).to_string(), false)
        }
        Err(missing) => no_index(&missing),
    }
}

fn cat_indices(state: &ClusterState, request: &Request, pattern: &str) -> (u16, String, bool) {
    let names = match resolve(state, pattern) {
        Ok(names) => names,
        Err(missing) => return no_index(&missing),
    };
    let columns: Option<Vec<&str>> = query_param(request, "h").map(|h| h.split(',').collect());
    let rows: Vec<Value> = names
        .iter()
        .map(|name| {
            let full = json!({
                "health": "green", "status": "open", "index": name, "uuid": "aAsFqTI0Tc2W0LCWgPNrOA",
                "pri": "1", "rep": "0", "docs.count": state.indices[name].len().to_string(), "docs.deleted": "0",
                "store.size": "1kb", "pri.store.size": "1kb", "dataset.size": "1kb"
            });
            match &columns {
                Some(columns) => Value::Object(
                    columns.iter().filter_map(|c| full.get(*c).map(|v| (c.to_string(), v.clone()))).collect(),
                ),
                None => full,
            }
        })
        .collect();
    if query_param(request, "format") == Some("json") {
        (200, Value::Array(rows).to_string(), false)
    } else {
        // The text table; only `format=json` is parsed by clients.
        let text: Vec<String> = names.iter().map(|n| format!("green open {n}")).collect();
        (200, serde_json::to_string(&text.join("\n")).unwrap(), false)
    }
}

/// Total order over JSON values for sorting: null, booleans, numbers, strings, others.
fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    let rank = |v: &Value| match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        _ => 4,
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(std::cmp::Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)).then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

/// `(field, descending)` of each sort clause: `"f"`, `{"f": "desc"}`, `{"f": {"order": "desc"}}`.
fn sort_clauses(sort: Option<&Value>) -> Vec<(String, bool)> {
    let clauses = match sort {
        None => return Vec::new(),
        Some(Value::Array(clauses)) => clauses.clone(),
        Some(one) => vec![one.clone()],
    };
    clauses
        .iter()
        .filter_map(|clause| match clause {
            Value::String(field) => Some((field.clone(), false)),
            Value::Object(map) => map.iter().next().map(|(field, spec)| {
                let order = spec.as_str().or_else(|| spec.get("order").and_then(Value::as_str)).unwrap_or("asc");
                (field.clone(), order == "desc")
            }),
            _ => None,
        })
        .collect()
}

/// A `_search`: every document of the matching indices (the query is not evaluated),
/// sorted, after `search_after`, at most `size`.
fn search(state: &ClusterState, request: &Request, pattern: &str) -> (u16, String, bool) {
    let names = match resolve(state, pattern) {
        Ok(names) => names,
        Err(missing) => return no_index(&missing),
    };
    let Some(body) = request_json(request) else { return parse_failure() };
    let size = body.get("size").and_then(Value::as_u64).unwrap_or(10) as usize;
    let from = body.get("from").and_then(Value::as_u64).unwrap_or(0) as usize;
    let clauses = sort_clauses(body.get("sort"));
    let mut hits: Vec<Hit<'_>> = names
        .iter()
        .flat_map(|index| state.indices[index].iter().map(move |(id, (source, _))| (index, id, source)))
        .map(|(index, id, source)| {
            let key: Vec<Value> = clauses
                .iter()
                .map(|(field, _)| match field.as_str() {
                    "_id" => Value::String(id.clone()),
                    "_index" => Value::String(index.clone()),
                    field => source.get(field).cloned().unwrap_or(Value::Null),
                })
                .collect();
            (key, index, id, source)
        })
        .collect();
    let total = hits.len();
    let compare_keys = |a: &[Value], b: &[Value]| {
        for ((x, y), (_, descending)) in a.iter().zip(b).zip(&clauses) {
            let order = compare_values(x, y);
            let order = if *descending { order.reverse() } else { order };
            if order != std::cmp::Ordering::Equal {
                return order;
            }
        }
        std::cmp::Ordering::Equal
    };
    hits.sort_by(|a, b| compare_keys(&a.0, &b.0).then_with(|| (a.1, a.2).cmp(&(b.1, b.2))));
    if let Some(Value::Array(after)) = body.get("search_after") {
        hits.retain(|hit| compare_keys(&hit.0, after) == std::cmp::Ordering::Greater);
    }
    let page: Vec<Value> = hits
        .into_iter()
        .skip(from)
        .take(size)
        .map(|(key, index, id, source)| {
            let mut hit = json!({"_index": index, "_id": id, "_score": if clauses.is_empty() { json!(1.0) } else { Value::Null }, "_source": source});
            if !clauses.is_empty() {
                hit["sort"] = Value::Array(key);
            }
            hit
        })
        .collect();
    let answer = json!({
        "took": 1, "timed_out": false,
        "_shards": {"total": names.len(), "successful": names.len(), "skipped": 0, "failed": 0},
        "hits": {"total": {"value": total, "relation": "eq"}, "max_score": if clauses.is_empty() && total > 0 { json!(1.0) } else { Value::Null }, "hits": page}
    });
    (200, answer.to_string(), false)
}

/// A `_bulk` request: each item is answered in order, by the fault switches first,
/// then by what the cluster holds.
fn bulk(state: &mut ClusterState, request: &Request) -> (u16, String, bool) {
    let Ok(text) = std::str::from_utf8(&request.body) else { return parse_failure() };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut items = Vec::new();
    let mut errors = false;
    let faults = state.item_faults.clone();
    while let Some(line) = lines.next() {
        let Ok(action_line) = serde_json::from_str::<Value>(line) else { return parse_failure() };
        let Some((action, meta)) = action_line.as_object().and_then(|m| m.iter().next()) else {
            return parse_failure();
        };
        let action = action.clone();
        let index = meta.get("_index").and_then(Value::as_str).unwrap_or("").to_string();
        let id = meta.get("_id").and_then(Value::as_str).unwrap_or("").to_string();
        if action != "create" && action != "index" {
            let reason =
                format!("Malformed action/metadata line [1], expected one of [create, index], found [{action}]");
            return (400, error_body(400, "illegal_argument_exception", &reason), false);
        }
        let sinks = state.auto_create_index || state.indices.contains_key(&index);
        if state.sink && sinks && action == "create" && !state.write_block && !state.storm && faults.is_none() {
            // The source line is skipped unparsed: parsing gigabytes would make the node,
            // not the client under measurement, the bottleneck.
            if lines.next().is_none() {
                return parse_failure();
            }
            state.indices.entry(index.clone()).or_default();
            state.seq_no += 1;
            state.sunk += 1;
            items.push(bulk_item(&index, &id, 201, state.seq_no));
            continue;
        }
        let Some(source) = lines.next().and_then(|l| serde_json::from_str::<Value>(l).ok()) else {
            return parse_failure();
        };
        let key = (index.clone(), id.clone());
        let tries = *state.tries.get(&key).unwrap_or(&0);
        state.tries.insert(key, tries + 1);
        let stored = state.indices.get(&index).is_some_and(|docs| docs.contains_key(&id));
        let item = BulkItem { action: &action, index: &index, id: &id, source: &source, tries, stored };
        state.seq_no += 1;
        let seq_no = state.seq_no;
        let fault = if state.write_block {
            Some(403)
        } else if state.storm && action == "create" {
            Some(429)
        } else {
            faults.as_ref().and_then(|f| f(&item))
        };
        let mut answer = match fault {
            Some(403) => blocked_item(&index, &id, 403),
            Some(status) => bulk_item(&index, &id, status, seq_no),
            None => store(state, &action, &index, &id, source, seq_no),
        };
        if action == "index" {
            let inner = answer["create"].take();
            answer = json!({"index": inner});
        }
        let inner = &answer[action.as_str()];
        let status = inner["status"].as_u64().unwrap_or(0) as u16;
        errors |= status >= 300;
        state.answers.push(ItemAnswer {
            action: action.clone(),
            index: index.clone(),
            id: id.clone(),
            status,
            error_type: inner.pointer("/error/type").and_then(Value::as_str).map(str::to_string),
        });
        items.push(answer);
    }
    let body = json!({"took": 3, "errors": errors, "items": items}).to_string();
    let cut = state.lose_answers > 0;
    if cut {
        state.lose_answers -= 1;
    }
    (200, body, cut)
}

/// Stores one document as `create` or `index` does; its `_bulk` item (under `create`).
fn store(state: &mut ClusterState, action: &str, index: &str, id: &str, source: Value, seq_no: usize) -> Value {
    if !state.indices.contains_key(index) {
        if !state.auto_create_index {
            return bulk_item(index, id, 404, seq_no);
        }
        state.indices.insert(index.to_string(), BTreeMap::new());
    }
    let docs = state.indices.get_mut(index).expect("the index exists");
    let source = match source {
        Value::Object(map) => map,
        other => {
            let reason = format!("failed to parse: the source of [{id}] is not an object: {other}");
            return json!({"create": {"_index": index, "_id": id, "status": 400,
                "error": {"type": "document_parsing_exception", "reason": reason}}});
        }
    };
    match docs.get_mut(id) {
        Some(_) if action == "create" => bulk_item(index, id, 409, seq_no),
        Some(existing) => {
            existing.0 = source;
            existing.1 += 1;
            let version = existing.1;
            let mut item = bulk_item(index, id, 200, seq_no);
            item["create"]["result"] = json!("updated");
            item["create"]["_version"] = json!(version);
            item
        }
        None => {
            docs.insert(id.to_string(), (source, 1));
            bulk_item(index, id, 201, seq_no)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request over a fresh connection; status, headers (lower case) and JSON body.
    fn call(cluster: &FakeCluster, method: &str, target: &str, body: &str) -> (u16, String, Value) {
        let mut stream = TcpStream::connect(cluster.server().addr()).unwrap();
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let (mut head, mut length) = (String::new(), 0);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            head.push_str(&lower);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (status, head, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn bulk_body(lines: &[Value]) -> String {
        lines.iter().map(|l| l.to_string() + "\n").collect()
    }

    #[test]
    fn wildcards_match_like_index_patterns() {
        for (pattern, name, matches) in [
            ("tix-*", "tix-sources", true),
            ("tix-2*", "tix-2024.02.05", true),
            ("tix-2*", "tix-sources", false),
            ("*-sources", "tix-sources", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(wildcard_match(pattern, name), matches, "{pattern} vs {name}");
        }
    }

    #[test]
    fn the_fake_cluster_stores_creates_once_and_answers_in_the_documented_shapes() {
        let cluster = FakeCluster::start();
        let (status, head, root) = call(&cluster, "GET", "/", "");
        assert_eq!(status, 200);
        assert!(head.contains("x-elastic-product: elasticsearch"), "{head}");
        assert_eq!(root["version"]["number"], "8.15.0");

        assert_eq!(call(&cluster, "PUT", "/t-sources", "{}").0, 200);
        let (status, _, exists) = call(&cluster, "PUT", "/t-sources", "{}");
        assert_eq!((status, exists["error"]["type"].as_str()), (400, Some("resource_already_exists_exception")));

        let event = json!({"@timestamp": "2024-02-05T10:00:00Z", "type": "booking.created"});
        let body = bulk_body(&[
            json!({"create": {"_index": "t-2024.02.05", "_id": "a"}}),
            event.clone(),
            json!({"create": {"_index": "t-2024.02.05", "_id": "a"}}),
            event.clone(),
            json!({"index": {"_index": "t-sources", "_id": "k1"}}),
            json!({"key": "k1", "source": "s3://b/x", "status": "completed"}),
        ]);
        let (status, _, answer) = call(&cluster, "POST", "/_bulk", &body);
        assert_eq!(status, 200);
        assert_eq!(answer["errors"], true);
        assert_eq!(answer["items"][0]["create"]["status"], 201);
        assert_eq!(answer["items"][1]["create"]["status"], 409);
        assert_eq!(answer["items"][1]["create"]["error"]["type"], "version_conflict_engine_exception");
        assert_eq!(answer["items"][2]["index"]["status"], 201);
        let (_, _, again) = call(
            &cluster,
            "POST",
            "/_bulk",
            &bulk_body(&[json!({"index": {"_index": "t-sources", "_id": "k1"}}), json!({"key": "k1"})]),
        );
        assert_eq!(
            (again["items"][0]["index"]["status"].as_u64(), again["items"][0]["index"]["_version"].as_u64()),
            (Some(200), Some(2))
        );

        assert_eq!(
            cluster.events("t"),
            vec![(
                "a".to_string(),
                serde_json::from_value(json!({"ts": "2024-02-05T10:00:00Z", "type": "booking.created"})).unwrap()
            )]
        );
        let (status, _, doc) = call(&cluster, "GET", "/t-sources/_doc/k1", "");
        assert_eq!((status, doc["found"].as_bool()), (200, Some(true)));
        assert_eq!(call(&cluster, "GET", "/t-sources/_doc/nope", "").0, 404);
        let (_, _, count) = call(&cluster, "POST", "/t-2*/_count", "{}");
        assert_eq!(count["count"], 1);
        let (_, _, cat) = call(&cluster, "GET", "/_cat/indices/t-*?format=json&h=index", "");
        assert_eq!(cat, json!([{"index": "t-2024.02.05"}, {"index": "t-sources"}]));
        let (status, _, unknown) = call(&cluster, "GET", "/_nodes/hot_threads/x", "");
        assert_eq!((status, unknown["error"]["type"].as_str()), (400, Some("illegal_argument_exception")));
        let (status, _, missing) = call(&cluster, "POST", "/nope/_search", "{}");
        assert_eq!((status, missing["error"]["type"].as_str()), (404, Some("index_not_found_exception")));
        assert_eq!(
            call(&cluster, "POST", "/nope-*/_search", "{}").2["hits"]["total"]["value"],
            0,
            "a wildcard may match nothing"
        );
    }

    #[test]
    fn search_after_pages_through_a_sorted_listing() {
        let cluster = FakeCluster::start();
        let mut lines = Vec::new();
        for key in ["k3", "k1", "k5", "k2", "k4"] {
            lines.push(json!({"index": {"_index": "t-sources", "_id": key}}));
            lines.push(json!({"key": key}));
        }
        call(&cluster, "POST", "/_bulk", &bulk_body(&lines));
        let mut seen = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({"size": 2, "sort": [{"key": "asc"}], "query": {"match_all": {}}});
            if let Some(after) = &after {
                body["search_after"] = after.clone();
            }
            let (_, _, answer) = call(&cluster, "POST", "/t-sources/_search", &body.to_string());
            assert_eq!(answer["hits"]["total"]["value"], 5);
            let hits = answer["hits"]["hits"].as_array().unwrap().clone();
            seen.extend(hits.iter().map(|h| h["_id"].as_str().unwrap().to_string()));
            match hits.last() {
                Some(last) if hits.len() == 2 => after = Some(last["sort"].clone()),
                _ => break,
            }
        }
        assert_eq!(seen, ["k1", "k2", "k3", "k4", "k5"]);
    }

    #[test]
    fn switches_refuse_as_elasticsearch_does_and_lift() {
        let cluster = FakeCluster::start();
        let one = bulk_body(&[json!({"create": {"_index": "t-2024.02.05", "_id": "a"}}), json!({"x": 1})]);
        cluster.auto_create_index(false);
        let (_, _, missing) = call(&cluster, "POST", "/_bulk", &one);
        assert_eq!(missing["items"][0]["create"]["status"], 404);
        assert_eq!(missing["items"][0]["create"]["error"]["type"], "index_not_found_exception");
        cluster.write_block(true);
        let (_, _, blocked) = call(&cluster, "POST", "/_bulk", &one);
        assert_eq!(blocked["items"][0]["create"]["status"], 403);
        assert_eq!(blocked["items"][0]["create"]["error"]["type"], "cluster_block_exception");
        cluster.write_block(false);
        cluster.storm(true);
        let (_, _, storm) = call(&cluster, "POST", "/_bulk", &one);
        assert_eq!(storm["items"][0]["create"]["error"]["type"], "es_rejected_execution_exception");
        cluster.storm(false);
        cluster.auth_fail(Some(401));
        assert_eq!(call(&cluster, "GET", "/", "").0, 401);
        cluster.auth_fail(None);
        cluster.product_header(false);
        assert!(!call(&cluster, "GET", "/", "").1.contains("x-elastic-product"));
        cluster.product_header(true);
        cluster.set_item_faults(|item| (item.tries == 0).then_some(429));
        assert_eq!(call(&cluster, "PUT", "/t-2024.02.05", "{}").0, 200);
        let other = bulk_body(&[json!({"create": {"_index": "t-2024.02.05", "_id": "b"}}), json!({"x": 2})]);
        let (_, _, first) = call(&cluster, "POST", "/_bulk", &other);
        assert_eq!(first["items"][0]["create"]["status"], 429, "b's first try");
        let (_, _, second) = call(&cluster, "POST", "/_bulk", &other);
        assert_eq!(second["items"][0]["create"]["status"], 201);
        assert_eq!(cluster.items_answered(429, None), 2);
        assert_eq!(cluster.docs("t-2*").len(), 1);
        cluster.down();
        let mut stream = TcpStream::connect(cluster.server().addr()).unwrap();
        write!(stream, "GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(answer.is_empty(), "closed without an answer");
        assert_eq!(cluster.refused_while_down(), 1);
        cluster.up();
        assert_eq!(call(&cluster, "GET", "/", "").0, 200);
    }
}
