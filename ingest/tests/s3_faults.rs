//! S3 reads under network faults: a fault-injecting TCP proxy on 127.0.0.1 in front of
//! Garage breaks connections mid-body and answers `503 SlowDown`. Reads resume or retry,
//! or the object fails; it is never acknowledged early, and nothing is doubled.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ingest::pipeline::SourceOutcome;
use ingest::s3::S3Context;
use support::*;

/// What the proxy does to one accepted connection.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Pass,
    /// Forward the request, then cut the connection after this many response bytes.
    CutAfter(usize),
    /// Answer `503 SlowDown` (S3's throttling) without asking the server.
    SlowDown,
}

struct Proxy {
    endpoint: String,
    connections: Arc<AtomicUsize>,
}

/// Each accepted connection takes the next fault of `plan`; then everything passes.
fn proxy(plan: Vec<Fault>) -> Proxy {
    let upstream = std::env::var("AWS_ENDPOINT_URL").expect(HOW_TO_RUN);
    let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let plan = Arc::new(Mutex::new(plan.into_iter()));
    let seen = connections.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let fault = plan.lock().unwrap().next().unwrap_or(Fault::Pass);
            let upstream = upstream.clone();
            std::thread::spawn(move || relay(client, &upstream, fault));
        }
    });
    Proxy { endpoint, connections }
}

fn relay(mut client: TcpStream, upstream: &str, fault: Fault) {
    if let Fault::SlowDown = fault {
        let mut request = [0u8; 8192];
        let _ = client.read(&mut request);
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                    <Message>Please reduce your request rate.</Message></Error>";
        let _ = write!(
            client,
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let Ok(server) = TcpStream::connect(upstream) else { return };
    let (mut client_in, mut server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let limit = match fault {
        Fault::CutAfter(limit) => limit,
        _ => usize::MAX,
    };
    let mut server_in = server;
    let mut forwarded = 0usize;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match server_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = n.min(limit - forwarded);
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        forwarded += n;
        if forwarded >= limit {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server_in.shutdown(Shutdown::Both);
}

fn through(garage: &Garage, proxy: &Proxy) -> S3Context {
    let config = garage.s3.client().config().to_builder().endpoint_url(&proxy.endpoint).build();
    S3Context::with_client(aws_sdk_s3::Client::from_conf(config), garage.runtime.handle().clone())
}

/// One object of `events` records and the SQS event naming it.
fn object(garage: &Garage, test: &str, events: u64) -> (serde_json::Value, String) {
    let prefix = unique_prefix(test);
    let key = format!("{prefix}big object.ndjson");
    (sqs_event(&[("m1".into(), garage.notify(&key, ndjson(700, events)))]), prefix)
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_connection_cut_mid_body_is_resumed_and_every_record_lands_once() {
    let garage = garage();
    let (event, prefix) = object(&garage, "cut-once", 5_000);
    let proxy = proxy(vec![Fault::CutAfter(300_000)]);
    let s3 = through(&garage, &proxy);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let report = handle(&s3, &event, &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.sources[0].outcome, SourceOutcome::Completed);
    assert_eq!(report.summary.indexed, 5_000);
    assert_eq!(count(&backend), 5_000, "each record once, none lost at the cut");
    assert!(proxy.connections.load(Ordering::SeqCst) >= 2, "the resume opened a new connection");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn a_connection_cut_on_every_attempt_fails_the_object_and_its_redelivery_completes_it() {
    let garage = garage();
    let (event, prefix) = object(&garage, "cut-always", 5_000);
    let proxy = proxy(vec![Fault::CutAfter(200_000); 8]);
    let s3 = through(&garage, &proxy);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let report = handle(&s3, &event, &mut backend, &mut dead_letter);
    assert_eq!(report.batch_item_failures(), vec!["m1"], "not acknowledged: {:?}", report.sources);
    assert!(report.failed[0].reason.contains("resume"), "{}", report.failed[0].reason);
    let partial = count(&backend);
    assert!(partial < 5_000, "{partial}");
    let entries = dead_letter.read_all().unwrap();
    assert_eq!(entries.len(), 1, "one entry for the failed object: {entries:?}");

    // The redelivery, on a healthy network, completes without doubling.
    let report = handle(&garage.s3, &event, &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.summary.duplicates, partial);
    assert_eq!(count(&backend), 5_000);
    assert!(dead_letter.read_all().unwrap().is_empty(), "the completed object's entry is withdrawn");
}

#[test]
#[ignore = "S3 tier: needs Garage (scripts/test.sh)"]
fn throttling_is_retried_by_the_client() {
    let garage = garage();
    let (event, prefix) = object(&garage, "slowdown", 500);
    let proxy = proxy(vec![Fault::SlowDown, Fault::SlowDown]);
    let s3 = through(&garage, &proxy);
    let index = tempfile::tempdir().unwrap();
    let mut backend = tantivy(index.path());
    let mut dead_letter = garage.dead_letter(&prefix);
    let report = handle(&s3, &event, &mut backend, &mut dead_letter);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(count(&backend), 500);
    assert!(proxy.connections.load(Ordering::SeqCst) >= 3, "two throttled attempts, then the real one");
}
