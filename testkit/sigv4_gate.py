#!/usr/bin/env python3
"""A SigV4-checking reverse proxy on 127.0.0.1: an independent judge of tix-logs' signatures.

For every request it recomputes the AWS Signature Version 4 with botocore's own SigV4Auth
(the signer of the AWS CLI and boto3) from what arrived: the method, the request target
exactly as received, the headers the client lists in SignedHeaders, the client's own
X-Amz-Date, and the body. A request whose signature, credential scope, access key id,
content hash or session token does not match is answered like AWS does (HTTP 403 with
AWS's JSON message); a matching one is forwarded to the upstream URL and the answer is
relayed unchanged.

    python3 testkit/sigv4_gate.py --upstream http://127.0.0.1:9200 \
        --access-key AKID --secret-key SECRET [--session-token T] \
        --region eu-west-1 --service es

The credentials may also come from SIGV4_GATE_ACCESS_KEY / SIGV4_GATE_SECRET_KEY /
SIGV4_GATE_SESSION_TOKEN. When it listens it prints its port on a line of its own on
stdout. It exits when its stdin closes (the test that started it is gone).

GET /__sigv4_gate__/stats (not forwarded, not signed) answers
{"verified": N, "refused": M, "refusals": [...], "requests": [...]} for the tests.
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import sys
import threading
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method."
)
STATS_PATH = "/__sigv4_gate__/stats"
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;_.-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
# AWS refuses requests signed more than 5 minutes from its clock.
MAX_SKEW = datetime.timedelta(minutes=5)
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class Refusal(Exception):
    """Why a request is refused: the HTTP status and AWS's message."""

    def __init__(self, message, reason, status=403):
        super().__init__(reason)
        self.message = message
        self.reason = reason
        self.status = status


def verify(config, method, target, headers, body):
    """Raises Refusal unless the request carries a valid SigV4 signature; returns a summary."""
    authorization = headers.get("Authorization")
    if authorization is None:
        raise Refusal("Authorization header requires 'Credential' parameter.", "no Authorization header")
    match = AUTHORIZATION.fullmatch(authorization.strip())
    if match is None:
        raise Refusal("Authorization header is not a SigV4 header.", "malformed Authorization header")
    amz_date = headers.get("X-Amz-Date")
    if amz_date is None or not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
        raise Refusal("Missing or malformed X-Amz-Date.", "no X-Amz-Date")
    signed = match["signed"].split(";")
    for required in ("host", "x-amz-date", "x-amz-content-sha256"):
        if required not in signed:
            raise Refusal(SIGNATURE_MISMATCH, f"{required} is not signed")
    if config.session_token is not None and "x-amz-security-token" not in signed:
        raise Refusal("The security token included in the request is invalid.", "session token not signed")
    if match["key"] != config.access_key:
        raise Refusal("The security token included in the request is invalid.", "unknown access key id")
    if match["date"] != amz_date[:8]:
        raise Refusal(SIGNATURE_MISMATCH, "credential date differs from X-Amz-Date")
    if (match["region"], match["service"]) != (config.region, config.service):
        raise Refusal(
            SIGNATURE_MISMATCH,
            f"scope {match['region']}/{match['service']} instead of {config.region}/{config.service}",
        )
    when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if abs(datetime.datetime.now(datetime.timezone.utc) - when) > MAX_SKEW:
        raise Refusal(f"Signature expired: {amz_date} is not within 5 minutes of now.", "clock skew")
    # botocore takes the payload hash from this header when it is present, so check it
    # against the body here, as AWS does.
    content_sha256 = headers.get("X-Amz-Content-SHA256")
    if content_sha256 != hashlib.sha256(body).hexdigest():
        raise Refusal("The provided 'x-amz-content-sha256' header does not match what was computed.", "body hash")

    request_headers = {}
    for name in signed:
        value = headers.get(name)
        if value is None:
            raise Refusal(SIGNATURE_MISMATCH, f"signed header {name} is missing")
        request_headers[name] = value
    request = AWSRequest(method=method, url=f"http://{headers['Host']}{target}", headers=request_headers, data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(
        Credentials(config.access_key, config.secret_key, config.session_token), config.service, config.region
    )
    # What add_auth does, with the request's own time instead of now: sets X-Amz-Date
    # and the gate's session token, then canonical request, string to sign, signature.
    signer._modify_request_before_signing(request)
    canonical_request = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical_request)
    expected = signer.signature(string_to_sign, request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise Refusal(SIGNATURE_MISMATCH, f"signature mismatch; canonical request was {canonical_request!r}")
    return {
        "method": method,
        "target": target,
        "service": match["service"],
        "region": match["region"],
        "signed_headers": signed,
        "session_token": headers.get("X-Amz-Security-Token") is not None,
    }


class Gate(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config):
        super().__init__(("127.0.0.1", 0), Handler)
        self.config = config
        self.lock = threading.Lock()
        self.verified = 0
        self.refused = 0
        self.refusals = []
        self.requests = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        gate = self.server
        body = self.read_body()
        if self.command == "GET" and self.path == STATS_PATH:
            with gate.lock:
                stats = {
                    "verified": gate.verified,
                    "refused": gate.refused,
                    "refusals": gate.refusals,
                    "requests": gate.requests,
                }
            self.answer(200, json.dumps(stats).encode(), [("Content-Type", "application/json")])
            return
        try:
            summary = verify(gate.config, self.command, self.path, self.headers, body)
        except Refusal as refusal:
            with gate.lock:
                gate.refused += 1
                gate.refusals.append({"method": self.command, "target": self.path, "reason": refusal.reason})
            print(f"sigv4_gate: refused {self.command} {self.path}: {refusal.reason}", file=sys.stderr, flush=True)
            self.answer(
                refusal.status,
                json.dumps({"message": refusal.message}, separators=(",", ":")).encode(),
                [("Content-Type", "application/json"), ("x-amzn-ErrorType", "InvalidSignatureException")],
            )
            return
        with gate.lock:
            gate.verified += 1
            gate.requests.append(summary)
        self.forward(body)

    def forward(self, body):
        upstream = self.server.config.upstream
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port or 80, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        headers["Host"] = upstream.netloc
        headers["Content-Length"] = str(len(body))
        prefix = upstream.path.rstrip("/")
        try:
            connection.request(self.command, prefix + self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError as error:
            self.answer(502, json.dumps({"message": f"sigv4_gate: upstream failed: {error}"}).encode())
            return
        finally:
            connection.close()
        relayed = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}]
        self.answer(response.status, payload, relayed)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="URL the verified requests are forwarded to")
    parser.add_argument("--access-key", default=os.environ.get("SIGV4_GATE_ACCESS_KEY"))
    parser.add_argument("--secret-key", default=os.environ.get("SIGV4_GATE_SECRET_KEY"))
    parser.add_argument("--session-token", default=os.environ.get("SIGV4_GATE_SESSION_TOKEN") or None)
    parser.add_argument("--region", required=True)
    parser.add_argument("--service", default="es", help="es (OpenSearch Service) or aoss (Serverless)")
    config = parser.parse_args()
    if not config.access_key or not config.secret_key:
        parser.error("--access-key and --secret-key (or SIGV4_GATE_ACCESS_KEY/SIGV4_GATE_SECRET_KEY) are required")
    config.upstream = urllib.parse.urlsplit(config.upstream)

    gate = Gate(config)
    threading.Thread(target=gate.serve_forever, daemon=True).start()
    print(gate.server_address[1], flush=True)
    # The parent holds our stdin: when it exits, so do we.
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
