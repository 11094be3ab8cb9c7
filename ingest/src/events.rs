//! Trigger events -> the S3 objects to ingest: S3 event notifications, SNS notifications
//! carrying them (S3 -> SNS -> Lambda, the usual fan-out to several consumers), SQS
//! messages carrying them (plain or SNS-wrapped), and EventBridge "Object Created" events.
//! Also the scheduled reconcile request (`{"reconcile": {...}}`, sent by EventBridge
//! Scheduler), which names a prefix to compare with the checkpoints instead of objects.
//!
//! Pure and synchronous: the Lambda handler and `tix-logs ingest --event` feed it the
//! event's bytes and act on the result. A malformed SQS message fails that message only,
//! so the handler can answer it in `batchItemFailures` and let the rest complete.

use std::time::Duration;

use percent_encoding::percent_decode_str;
use serde_json::Value;

/// One S3 object named by an event, with its key decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size: Option<u64>,
}

/// What one notification asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// An object to ingest.
    Ingest(ObjectRef),
    /// Nothing to ingest, and not an error: a test event, a delete, a folder marker or a
    /// 0-byte object. Counted, acknowledged.
    Acknowledge { reason: String },
}

/// One unit the trigger acknowledges: an SQS message, or the whole event otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The SQS `messageId`, used in `batchItemFailures`.
    pub message_id: Option<String>,
    /// The work it carries, or why it cannot be read (that message fails alone).
    pub work: Result<Vec<Work>, String>,
}

/// What one invocation's payload asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Object notifications, one [`Delivery`] per SQS message (or one for the event).
    Deliveries(Vec<Delivery>),
    /// A scheduled reconciliation of a prefix against the checkpoints.
    Reconcile(ReconcileRequest),
}

/// `{"reconcile": {"prefix": "s3://BUCKET/PREFIX", "since": "2d", "ingest": true}}`: what
/// `tix-logs reconcile s3://BUCKET/PREFIX --since 2d --ingest` does, run by the Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileRequest {
    pub bucket: String,
    /// May be empty (the whole bucket).
    pub prefix: String,
    /// Only objects modified within this span before the run.
    pub since: Option<Duration>,
    /// Ingest the missing and failed objects, not only report them.
    pub ingest: bool,
}

/// Reads an invocation's payload: a reconcile request when it has a top-level
/// `reconcile` field, else a notification event as [`parse_event`] reads it. `Err`: the
/// payload as a whole is unreadable, or a reconcile request is malformed (the run must
/// fail loudly: a schedule with a typo would otherwise find nothing, every day).
pub fn parse_trigger(bytes: &[u8]) -> Result<Trigger, String> {
    let event: Value = serde_json::from_slice(bytes).map_err(|e| format!("event is not JSON: {e}"))?;
    match event.as_object() {
        Some(fields) if fields.contains_key("reconcile") => parse_reconcile(fields).map(Trigger::Reconcile),
        _ => Ok(Trigger::Deliveries(deliveries(&event))),
    }
}

const RECONCILE_SHAPE: &str = r#"expected {"reconcile": {"prefix": "s3://BUCKET/PREFIX", "since": "2d", "ingest": true}} (since and ingest optional)"#;

fn parse_reconcile(fields: &serde_json::Map<String, Value>) -> Result<ReconcileRequest, String> {
    let bad = |what: String| format!("reconcile request: {what}; {RECONCILE_SHAPE}");
    if let Some(other) = fields.keys().find(|k| *k != "reconcile") {
        return Err(bad(format!("unexpected top-level field {other:?} next to \"reconcile\"")));
    }
    let request = fields["reconcile"].as_object().ok_or_else(|| bad("\"reconcile\" is not an object".into()))?;
    // A misspelt `ingest` would silently turn a fill into a report: refuse unknown fields.
    if let Some(other) = request.keys().find(|k| !matches!(k.as_str(), "prefix" | "since" | "ingest")) {
        return Err(bad(format!("unknown field {other:?}")));
    }
    let prefix = match request.get("prefix") {
        Some(Value::String(text)) => text,
        None | Some(Value::Null) => return Err(bad("\"prefix\" is missing".into())),
        Some(other) => return Err(bad(format!("\"prefix\" must be a string, got {other}"))),
    };
    let (bucket, prefix) = match parse_s3_url(prefix) {
        Some(Ok(location)) => location,
        Some(Err(e)) => return Err(bad(format!("\"prefix\": {e}"))),
        None => return Err(bad(format!("\"prefix\" {prefix:?} is not an s3:// URL"))),
    };
    let since = match request.get("since") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => match crate::reconcile::parse_span(text) {
            Some(span) if !span.is_zero() => Some(span),
            _ => {
                return Err(bad(format!(
                    "\"since\" {text:?} is not a span back from now: use a whole number and s, m, h, d or w (36h, 2d)"
                )))
            }
        },
        Some(other) => return Err(bad(format!("\"since\" must be a string such as \"2d\", got {other}"))),
    };
    let ingest = match request.get("ingest") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(ingest)) => *ingest,
        Some(other) => return Err(bad(format!("\"ingest\" must be true or false, got {other}"))),
    };
    Ok(ReconcileRequest { bucket, prefix, since, ingest })
}

/// Parses `s3://bucket[/prefix]` into bucket and prefix; `None` when `text` is not an
/// `s3://` URL. The one parser of S3 locations (`crate::s3::S3Location` uses it).
pub fn parse_s3_url(text: &str) -> Option<Result<(String, String), String>> {
    let rest = text.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Some(Err(format!("{text:?} names no bucket (expected s3://bucket/prefix)")));
    }
    Some(Ok((bucket.to_string(), prefix.to_string())))
}

/// Reads a trigger event. `Err` means the event as a whole is unreadable (not JSON, or
/// of no known shape); a bad SQS message is an `Err` inside its own [`Delivery`].
pub fn parse_event(bytes: &[u8]) -> Result<Vec<Delivery>, String> {
    let event: Value = serde_json::from_slice(bytes).map_err(|e| format!("event is not JSON: {e}"))?;
    Ok(deliveries(&event))
}

fn deliveries(event: &Value) -> Vec<Delivery> {
    if is_sqs_event(event) {
        let records = event["Records"].as_array().map(Vec::as_slice).unwrap_or_default();
        return records
            .iter()
            .map(|message| Delivery {
                message_id: message.get("messageId").and_then(Value::as_str).map(str::to_string),
                work: sqs_message_work(message),
            })
            .collect();
    }
    vec![Delivery { message_id: None, work: notification_work(event) }]
}

/// Whether an event is an SQS batch (its answer is `batchItemFailures`).
pub fn is_sqs_event(event: &Value) -> bool {
    event.get("Records").and_then(Value::as_array).is_some_and(|r| r.iter().any(|r| r["eventSource"] == "aws:sqs"))
}

fn sqs_message_work(message: &Value) -> Result<Vec<Work>, String> {
    let body = message.get("body").and_then(Value::as_str).ok_or("SQS message has no body")?;
    let body: Value = serde_json::from_str(body).map_err(|e| format!("SQS message body is not JSON: {e}"))?;
    if is_sns_envelope(&body) {
        return sns_envelope_work(&body);
    }
    notification_work(&body)
}

/// Whether a JSON value is an SNS envelope (`Type` and `TopicArn`, or `Type` and
/// `Message`): what SNS delivers to SQS (without raw delivery) and to Lambda (`Sns`).
fn is_sns_envelope(value: &Value) -> bool {
    value.get("Type").and_then(Value::as_str).is_some()
        && (value.get("TopicArn").is_some() || value.get("Message").is_some())
}

/// An SNS envelope: a `Notification` carries the S3 notification (or S3's test event) as
/// its `Message` string; the subscription handshakes carry nothing to ingest.
fn sns_envelope_work(envelope: &Value) -> Result<Vec<Work>, String> {
    match envelope.get("Type").and_then(Value::as_str).unwrap_or("") {
        "Notification" => {
            let inner = envelope.get("Message").and_then(Value::as_str).ok_or("SNS notification has no Message")?;
            let inner: Value = serde_json::from_str(inner).map_err(|e| format!("SNS Message is not JSON: {e}"))?;
            notification_work(&inner)
        }
        kind @ ("SubscriptionConfirmation" | "UnsubscribeConfirmation") => {
            Ok(vec![Work::Acknowledge { reason: format!("SNS {kind}") }])
        }
        other => Err(format!("unsupported SNS message type {other:?} (expected Notification)")),
    }
}

/// An S3 notification (`Records`), SNS records carrying one (`Records[].Sns`), a test
/// event, or an EventBridge event.
fn notification_work(event: &Value) -> Result<Vec<Work>, String> {
    if event.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(vec![Work::Acknowledge { reason: "s3:TestEvent".into() }]);
    }
    if event.get("source").and_then(Value::as_str) == Some("aws.s3") {
        return eventbridge_work(event).map(|w| vec![w]);
    }
    let records = event.get("Records").and_then(Value::as_array).ok_or("not an S3, SNS or EventBridge event")?;
    let mut works = Vec::with_capacity(records.len());
    for record in records {
        // S3 -> SNS -> Lambda: `{"EventSource": "aws:sns", "Sns": {envelope}}`.
        match record.get("Sns") {
            Some(envelope) if record.get("EventSource").and_then(Value::as_str) == Some("aws:sns") => {
                works.extend(sns_envelope_work(envelope)?);
            }
            _ => works.push(s3_record_work(record)?),
        }
    }
    Ok(works)
}

fn s3_record_work(record: &Value) -> Result<Work, String> {
    let version = record.get("eventVersion").and_then(Value::as_str).unwrap_or("");
    if !version.starts_with("2.") {
        return Err(format!("unsupported S3 event version {version:?} (expected 2.x)"));
    }
    let name = record.get("eventName").and_then(Value::as_str).unwrap_or("");
    let s3 = record.get("s3").ok_or("S3 record has no s3 section")?;
    let bucket = s3.pointer("/bucket/name").and_then(Value::as_str).ok_or("S3 record has no bucket name")?;
    let object = s3.get("object").ok_or("S3 record has no object")?;
    if !name.starts_with("ObjectCreated") {
        return Ok(Work::Acknowledge { reason: format!("{name} is not a new object") });
    }
    object_work(bucket, object, "eTag", "versionId")
}

fn eventbridge_work(event: &Value) -> Result<Work, String> {
    let kind = event.get("detail-type").and_then(Value::as_str).unwrap_or("");
    if kind != "Object Created" {
        return Ok(Work::Acknowledge { reason: format!("EventBridge {kind:?} is not a new object") });
    }
    let detail = event.get("detail").ok_or("EventBridge event has no detail")?;
    let bucket =
        detail.pointer("/bucket/name").and_then(Value::as_str).ok_or("EventBridge event has no bucket name")?;
    let object = detail.get("object").ok_or("EventBridge event has no object")?;
    object_work(bucket, object, "etag", "version-id")
}

fn object_work(bucket: &str, object: &Value, etag_field: &str, version_field: &str) -> Result<Work, String> {
    let encoded = object.get("key").and_then(Value::as_str).ok_or("object has no key")?;
    let key = decode_key(encoded)?;
    let size = object.get("size").and_then(Value::as_u64);
    if let Some(what) = nothing_to_ingest(&key, size) {
        return Ok(Work::Acknowledge { reason: format!("{what} s3://{bucket}/{key}") });
    }
    Ok(Work::Ingest(ObjectRef {
        bucket: bucket.to_string(),
        key,
        version_id: object.get(version_field).and_then(Value::as_str).map(str::to_string),
        etag: object.get(etag_field).and_then(Value::as_str).map(str::to_string),
        size,
    }))
}

/// Why an object holds nothing to ingest, if it does not: a folder marker (a key ending
/// in `/`) or a 0-byte object. Notifications for them are acknowledged, and
/// `tix-logs reconcile` does not count them as missing.
pub fn nothing_to_ingest(key: &str, size: Option<u64>) -> Option<&'static str> {
    if key.ends_with('/') {
        Some("folder marker")
    } else if size == Some(0) {
        Some("0-byte object")
    } else {
        None
    }
}

/// Decodes an object key as S3 notifications carry it: `+` is a space, `%XX` escapes
/// are bytes, and the result must be UTF-8. A `%` not followed by two hex digits is an
/// error (S3 always escapes `%` itself as `%25`).
pub fn decode_key(encoded: &str) -> Result<String, String> {
    let bytes = encoded.as_bytes();
    for (i, _) in encoded.match_indices('%') {
        let valid = bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if !valid {
            return Err(format!("object key has an invalid percent escape at byte {i}"));
        }
    }
    let spaced = encoded.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| "object key is not UTF-8 once decoded".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/samples/events").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn expected() -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/samples/EXPECTED.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn ingests(work: &[Work]) -> Vec<&ObjectRef> {
        work.iter()
            .filter_map(|w| match w {
                Work::Ingest(o) => Some(o),
                Work::Acknowledge { .. } => None,
            })
            .collect()
    }

    #[test]
    fn keys_are_decoded_as_s3_encodes_them() {
        let table = [
            ("logs/a+b.ndjson", "logs/a b.ndjson"),
            ("logs/a%2Bb.ndjson", "logs/a+b.ndjson"),
            ("logs/a%20b.ndjson", "logs/a b.ndjson"),
            ("logs/%C3%BCbersicht.gz", "logs/übersicht.gz"),
            ("logs/100%25.gz", "logs/100%.gz"),
        ];
        for (encoded, decoded) in table {
            assert_eq!(decode_key(encoded).as_deref(), Ok(decoded), "{encoded}");
        }
    }

    #[test]
    fn invalid_escapes_and_non_utf8_keys_are_errors() {
        for encoded in ["logs/100%.gz", "logs/%zz", "logs/%C3", "logs/%FF%FE"] {
            assert!(decode_key(encoded).is_err(), "{encoded}");
        }
    }

    #[test]
    fn a_direct_s3_notification_names_its_object_with_the_key_decoded() {
        let deliveries = parse_event(&sample("s3-put.json")).unwrap();
        assert_eq!(deliveries.len(), 1);
        let work = deliveries[0].work.as_ref().unwrap();
        let facts = &expected()["events"]["events/s3-put.json"]["objects"][0];
        let objects = ingests(work);
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].bucket, facts["bucket"].as_str().unwrap());
        assert_eq!(objects[0].key, facts["key"].as_str().unwrap());
        assert_eq!(objects[0].size, facts["size"].as_u64());
    }

    #[test]
    fn an_sqs_batch_yields_one_delivery_per_message_and_a_poison_message_fails_alone() {
        let deliveries = parse_event(&sample("sqs-s3.json")).unwrap();
        let messages = expected()["events"]["events/sqs-s3.json"]["messages"].as_array().unwrap().clone();
        assert_eq!(deliveries.len(), messages.len());
        for (delivery, facts) in deliveries.iter().zip(&messages) {
            assert_eq!(delivery.message_id.as_deref(), facts["messageId"].as_str());
            if facts["outcome"] == "invalid_body" {
                assert!(delivery.work.is_err(), "{delivery:?}");
                continue;
            }
            let work = delivery.work.as_ref().unwrap_or_else(|e| panic!("{e}"));
            for (object, fact) in ingests(work).iter().zip(facts["objects"].as_array().unwrap()) {
                assert_eq!(object.key, fact["key"].as_str().unwrap());
            }
            if facts["outcome"] == "acknowledged" {
                assert!(ingests(work).is_empty(), "{work:?}");
            }
        }
    }

    #[test]
    fn sns_wrapped_and_eventbridge_events_name_the_same_kind_of_objects() {
        for name in ["sns-sqs-s3.json", "eventbridge-object-created.json"] {
            let deliveries = parse_event(&sample(name)).unwrap();
            let facts = &expected()["events"][format!("events/{name}")];
            let mut keys: Vec<String> = Vec::new();
            for delivery in &deliveries {
                for object in ingests(delivery.work.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"))) {
                    keys.push(object.key.clone());
                }
            }
            let expected_keys: Vec<String> = facts
                .get("messages")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter().flat_map(|m| m["objects"].as_array().cloned().unwrap_or_default()).collect::<Vec<_>>()
                })
                .unwrap_or_else(|| facts["objects"].as_array().cloned().unwrap_or_default())
                .iter()
                .filter(|o| o["outcome"] != "acknowledged")
                .map(|o| o["key"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(keys, expected_keys, "{name}");
        }
    }

    #[test]
    fn test_events_deletes_folder_markers_and_empty_objects_are_acknowledged() {
        let deliveries = parse_event(&sample("s3-test-event.json")).unwrap();
        assert!(matches!(deliveries[0].work.as_deref(), Ok([Work::Acknowledge { .. }])));
        let record = |name: &str, key: &str, size: u64| {
            serde_json::json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
                "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": size}}}]})
            .to_string()
        };
        for event in [
            record("ObjectRemoved:Delete", "a.gz", 10),
            record("ObjectCreated:Put", "dir/", 0),
            record("ObjectCreated:Put", "e.gz", 0),
        ] {
            let deliveries = parse_event(event.as_bytes()).unwrap();
            assert!(matches!(deliveries[0].work.as_deref(), Ok([Work::Acknowledge { .. }])), "{event}");
        }
    }

    /// S3 -> SNS -> Lambda, as AWS delivers it: one `Records[]` entry whose `Sns.Message`
    /// is the S3 notification as a string.
    fn direct_sns(envelope: Value) -> Vec<u8> {
        serde_json::json!({"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:eu-west-1:123456789012:tix-logs-objects:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
            "Sns": envelope
        }]})
        .to_string()
        .into_bytes()
    }

    fn sns_envelope(kind: &str, message: &str) -> Value {
        serde_json::json!({
            "Type": kind, "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:tix-logs-objects",
            "Subject": "Amazon S3 Notification", "Message": message,
            "Timestamp": "2024-02-06T00:00:01.000Z", "SignatureVersion": "1", "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem",
            "UnsubscribeUrl": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe", "MessageAttributes": {}
        })
    }

    #[test]
    fn a_direct_sns_notification_names_the_s3_object_it_carries() {
        let s3_event = serde_json::json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "tix-logs-raw"},
            "object": {"key": "logs/2024/02/05/via+sns/day%C3%BC.ndjson.gz", "size": 120026, "eTag": "1ddf35de8e6115d6f5f050b12bd2bc8b"}}}]});
        let deliveries = parse_event(&direct_sns(sns_envelope("Notification", &s3_event.to_string()))).unwrap();
        assert_eq!(deliveries.len(), 1, "the whole event is one delivery: SNS retries the invocation");
        assert_eq!(deliveries[0].message_id, None);
        let work = deliveries[0].work.as_ref().unwrap();
        let objects = ingests(work);
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].bucket, "tix-logs-raw");
        assert_eq!(objects[0].key, "logs/2024/02/05/via sns/dayü.ndjson.gz");
        assert_eq!(objects[0].etag.as_deref(), Some("1ddf35de8e6115d6f5f050b12bd2bc8b"));
        assert!(!is_sqs_event(&serde_json::from_slice(&direct_sns(sns_envelope("Notification", "{}"))).unwrap()));
    }

    #[test]
    fn sns_test_and_subscription_messages_are_acknowledged_and_bad_ones_are_errors() {
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-02-06T00:00:00.000Z","Bucket":"tix-logs-raw"}"#;
        for envelope in [
            sns_envelope("Notification", test_event),
            sns_envelope("SubscriptionConfirmation", "You have chosen to subscribe to the topic"),
            sns_envelope("UnsubscribeConfirmation", "You have chosen to deactivate subscription"),
        ] {
            let deliveries = parse_event(&direct_sns(envelope.clone())).unwrap();
            assert!(matches!(deliveries[0].work.as_deref(), Ok([Work::Acknowledge { .. }])), "{envelope}");
            // The same envelope inside an SQS message (SNS -> SQS without raw delivery).
            let sqs = serde_json::json!({"Records": [{"messageId": "m1", "eventSource": "aws:sqs", "body": envelope.to_string()}]});
            let deliveries = parse_event(sqs.to_string().as_bytes()).unwrap();
            assert!(matches!(deliveries[0].work.as_deref(), Ok([Work::Acknowledge { .. }])), "{envelope}");
        }
        for envelope in [
            sns_envelope("Notification", "not json"),
            sns_envelope("Notification", r#"{"hello":1}"#),
            sns_envelope("Bogus", "{}"),
        ] {
            let deliveries = parse_event(&direct_sns(envelope.clone())).unwrap();
            assert!(deliveries[0].work.is_err(), "{envelope}");
        }
    }

    #[test]
    fn malformed_events_are_errors_not_panics() {
        assert!(parse_event(b"not json").is_err());
        let unknown = parse_event(br#"{"hello":"world"}"#).unwrap();
        assert!(unknown[0].work.is_err());
        let version = parse_event(
            br#"{"Records":[{"eventVersion":"3.0","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#,
        )
        .unwrap();
        assert!(version[0].work.as_ref().unwrap_err().contains("version"));
    }

    #[test]
    fn the_scheduled_reconcile_payload_is_read_as_the_template_sends_it() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/events/scheduled-reconcile.json");
        let request = match parse_trigger(&std::fs::read(path).unwrap()) {
            Ok(Trigger::Reconcile(request)) => request,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            request,
            ReconcileRequest {
                bucket: "tix-logs-raw".into(),
                prefix: "logs/".into(),
                since: Some(Duration::from_secs(2 * 86_400)),
                ingest: true,
            }
        );
    }

    #[test]
    fn reconcile_payloads_are_read_with_their_defaults() {
        let request = |bucket: &str, prefix: &str, since_s: Option<u64>, ingest: bool| ReconcileRequest {
            bucket: bucket.into(),
            prefix: prefix.into(),
            since: since_s.map(Duration::from_secs),
            ingest,
        };
        let table = [
            (r#"{"reconcile": {"prefix": "s3://b/p/"}}"#, request("b", "p/", None, false)),
            (r#"{"reconcile": {"prefix": "s3://b"}}"#, request("b", "", None, false)),
            (r#"{"reconcile": {"prefix": "s3://b/", "since": "36h"}}"#, request("b", "", Some(36 * 3600), false)),
            (
                r#"{"reconcile": {"prefix": "s3://b/x y", "since": null, "ingest": null}}"#,
                request("b", "x y", None, false),
            ),
            (
                r#"{"reconcile": {"prefix": "s3://b/p", "ingest": false, "since": "1w"}}"#,
                request("b", "p", Some(7 * 86_400), false),
            ),
            (
                r#"{"reconcile": {"ingest": true, "prefix": "s3://b/p/", "since": "90m"}}"#,
                request("b", "p/", Some(5400), true),
            ),
        ];
        for (payload, want) in table {
            assert_eq!(parse_trigger(payload.as_bytes()), Ok(Trigger::Reconcile(want)), "{payload}");
        }
    }

    #[test]
    fn malformed_reconcile_payloads_are_refused_naming_the_field() {
        // (payload, what the error must name)
        let table = [
            (r#"{"reconcile": "s3://b/p/"}"#, "is not an object"),
            (r#"{"reconcile": null}"#, "is not an object"),
            (r#"{"reconcile": {}}"#, "\"prefix\" is missing"),
            (r#"{"reconcile": {"prefix": 7}}"#, "\"prefix\" must be a string"),
            (r#"{"reconcile": {"prefix": "b/p/"}}"#, "is not an s3:// URL"),
            (r#"{"reconcile": {"prefix": "s3:///p/"}}"#, "names no bucket"),
            (r#"{"reconcile": {"prefix": "s3://b/", "since": "yesterday"}}"#, "\"since\" \"yesterday\""),
            (r#"{"reconcile": {"prefix": "s3://b/", "since": "0d"}}"#, "\"since\" \"0d\""),
            (r#"{"reconcile": {"prefix": "s3://b/", "since": "2024-02-05"}}"#, "span back from now"),
            (r#"{"reconcile": {"prefix": "s3://b/", "since": 2}}"#, "\"since\" must be a string"),
            (r#"{"reconcile": {"prefix": "s3://b/", "ingest": "true"}}"#, "\"ingest\" must be true or false"),
            (r#"{"reconcile": {"prefix": "s3://b/", "ingst": true}}"#, "unknown field \"ingst\""),
            (r#"{"reconcile": {"prefix": "s3://b/"}, "Records": []}"#, "unexpected top-level field \"Records\""),
        ];
        for (payload, names) in table {
            let err = parse_trigger(payload.as_bytes()).unwrap_err();
            assert!(err.starts_with("reconcile request: "), "{payload}: {err}");
            assert!(err.contains(names), "{payload}: {err}");
            assert!(err.contains(r#"{"reconcile": {"prefix": "s3://BUCKET/PREFIX""#), "says what is expected: {err}");
        }
    }

    #[test]
    fn notifications_read_through_parse_trigger_are_the_deliveries_parse_event_reads() {
        for name in ["s3-put.json", "sqs-s3.json", "sns-sqs-s3.json", "eventbridge-object-created.json"] {
            let bytes = sample(name);
            assert_eq!(parse_trigger(&bytes), Ok(Trigger::Deliveries(parse_event(&bytes).unwrap())), "{name}");
        }
        assert!(parse_trigger(b"not json").is_err());
        // Only an object with a top-level `reconcile` field is a reconcile request.
        let nested = parse_trigger(br#"{"detail": {"reconcile": {"prefix": "s3://b/"}}}"#).unwrap();
        assert!(matches!(&nested, Trigger::Deliveries(d) if d.len() == 1 && d[0].work.is_err()), "{nested:?}");
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_event(&bytes);
        }

        #[test]
        fn parsing_arbitrary_reconcile_requests_never_panics(body in "[ -~]{0,80}") {
            let _ = parse_trigger(format!(r#"{{"reconcile": {body}}}"#).as_bytes());
        }

        #[test]
        fn decoding_arbitrary_keys_never_panics(key in ".*") {
            let _ = decode_key(&key);
        }
    }
}
