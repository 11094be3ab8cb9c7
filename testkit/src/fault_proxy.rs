//! A fault-injecting TCP proxy on 127.0.0.1 for the network-fault tests. It sits between
//! a client (the S3 SDK, the Elasticsearch client) and a loopback server (Garage, the
//! scripted Elasticsearch server) and does one [`Fault`] to each accepted connection:
//! cut the response mid-body, answer by itself (e.g. `503 SlowDown`), add latency per
//! request, stall, or throttle the bandwidth.
//!
//! It works on bytes, not HTTP: it never parses what it forwards, so a client sees
//! exactly what a broken network would show it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the proxy does to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways untouched.
    Pass,
    /// Forward the request, then this many response bytes, then close both sides (a
    /// connection lost mid-response).
    CutResponseAfter(usize),
    /// Read the request, answer these raw bytes without asking the server, then close.
    Respond(Vec<u8>),
    /// Delay the first response bytes after each request by this long (round-trip
    /// latency on every request of a kept-alive connection).
    Latency(Duration),
    /// Forward this many response bytes, then nothing more while keeping the connection
    /// open, until the client gives up (or the proxy is dropped).
    StallAfter(usize),
    /// Forward the response at most this many bytes per second.
    Bandwidth(usize),
}

impl Fault {
    /// An S3 `503 SlowDown` answer, as S3 throttles.
    pub fn s3_slow_down() -> Fault {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                    <Message>Please reduce your request rate.</Message></Error>";
        Fault::Respond(
            format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }
}

/// A running proxy; stops accepting and releases stalled connections when dropped.
pub struct FaultProxy {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
    stopped: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Proxies to `upstream` (`host:port`, with or without `http://`); connection `i`
    /// gets `plan[i]`, and every connection after the plan passes.
    pub fn start(upstream: &str, plan: Vec<Fault>) -> FaultProxy {
        FaultProxy::start_with(upstream, move |i| plan.get(i).cloned().unwrap_or(Fault::Pass))
    }

    /// Proxies to `upstream`; connection `i` (from 0) gets `fault_for(i)`.
    pub fn start_with(upstream: &str, fault_for: impl Fn(usize) -> Fault + Send + 'static) -> FaultProxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port for the fault proxy");
        let address = listener.local_addr().expect("proxy address");
        let connections = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let (seen, stop) = (connections.clone(), stopped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let fault = fault_for(seen.fetch_add(1, Ordering::SeqCst));
                let (upstream, stop) = (upstream.clone(), stop.clone());
                std::thread::spawn(move || relay(client, &upstream, fault, &stop));
            }
        });
        FaultProxy { address, connections, stopped }
    }

    /// `http://127.0.0.1:PORT`, to give the client as its endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

fn relay(mut client: TcpStream, upstream: &str, fault: Fault, stopped: &AtomicBool) {
    if let Fault::Respond(answer) = &fault {
        let mut request = [0u8; 64 * 1024];
        let _ = client.read(&mut request);
        let _ = client.write_all(answer);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream) else { return };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let client_closed = Arc::new(AtomicBool::new(false));
    let request_pending = Arc::new(AtomicBool::new(false));
    {
        let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (closed, pending) = (client_closed.clone(), request_pending.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match from_client.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        pending.store(true, Ordering::SeqCst);
                        if to_server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            closed.store(true, Ordering::SeqCst);
            let _ = to_server.shutdown(Shutdown::Write);
        });
    }
    let limit = match fault {
        Fault::CutResponseAfter(n) | Fault::StallAfter(n) => n,
        _ => usize::MAX,
    };
    let chunk = match fault {
        // Small chunks so the rate is smooth rather than bursts of 16 KiB.
        Fault::Bandwidth(rate) => (rate / 20).clamp(1, 16 * 1024),
        _ => 16 * 1024,
    };
    let mut from_server = server;
    let mut forwarded = 0usize;
    let mut buf = vec![0u8; chunk];
    while forwarded < limit {
        let n = match from_server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n.min(limit - forwarded),
        };
        if let Fault::Latency(delay) = fault {
            if request_pending.swap(false, Ordering::SeqCst) {
                std::thread::sleep(delay);
            }
        }
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        forwarded += n;
        if let Fault::Bandwidth(rate) = fault {
            std::thread::sleep(Duration::from_secs_f64(n as f64 / rate.max(1) as f64));
        }
    }
    if matches!(fault, Fault::StallAfter(_)) {
        // Silence: the connection stays open and says nothing more.
        while !client_closed.load(Ordering::SeqCst) && !stopped.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = from_server.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An upstream that answers every request chunk with `size` bytes of `x`.
    fn upstream(size: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&vec![b'x'; size]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    /// Sends one request, reads until EOF, a timeout or `want` bytes.
    fn exchange(proxy: &FaultProxy, want: usize, timeout: Duration) -> (usize, Duration) {
        let mut stream = TcpStream::connect(proxy.url().trim_start_matches("http://")).unwrap();
        stream.set_read_timeout(Some(timeout)).unwrap();
        let start = Instant::now();
        stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut got = 0;
        let mut buf = [0u8; 4096];
        while got < want {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        (got, start.elapsed())
    }

    #[test]
    fn each_fault_does_what_it_says() {
        let server = upstream(100_000);
        let proxy = FaultProxy::start(
            &server,
            vec![
                Fault::Pass,
                Fault::CutResponseAfter(1_000),
                Fault::StallAfter(2_000),
                Fault::Latency(Duration::from_millis(300)),
                Fault::Bandwidth(200_000),
                Fault::Respond(b"HTTP/1.1 503 Slow Down\r\n\r\n".to_vec()),
            ],
        );
        let long = Duration::from_secs(5);
        assert_eq!(exchange(&proxy, 100_000, long).0, 100_000, "pass");
        assert_eq!(exchange(&proxy, 100_000, long).0, 1_000, "cut");
        let (got, waited) = exchange(&proxy, 100_000, Duration::from_millis(400));
        assert_eq!(got, 2_000, "stall");
        assert!(waited >= Duration::from_millis(400), "the stalled connection stays open: {waited:?}");
        let (got, waited) = exchange(&proxy, 100_000, long);
        assert_eq!(got, 100_000);
        assert!(waited >= Duration::from_millis(300), "latency: {waited:?}");
        let (got, waited) = exchange(&proxy, 100_000, long);
        assert_eq!(got, 100_000);
        assert!(waited >= Duration::from_millis(400), "200 kB/s for 100 kB: {waited:?}");
        assert_eq!(exchange(&proxy, 100_000, long).0, 26, "answered by the proxy");
        assert_eq!(exchange(&proxy, 100_000, long).0, 100_000, "after the plan, connections pass");
        assert_eq!(proxy.connections(), 7);
    }
}
