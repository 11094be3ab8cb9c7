//! A scripted SSM Parameter Store endpoint on 127.0.0.1, for tests that run code reading
//! parameters through the AWS SDK (`AWS_ENDPOINT_URL_SSM`).
//!
//! It speaks the AWS JSON 1.1 protocol of `GetParameter` as documented (`X-Amz-Target:
//! AmazonSSM.GetParameter`, a JSON body with `Name` and `WithDecryption`), on top of
//! [`crate::es_server::Scripted`]'s HTTP/1.1 server, and answers each parameter as the test
//! scripts it: a value, or the error AWS sends when the caller may not read it.
//! Unscripted names get `ParameterNotFound`, as from AWS.

use serde_json::{json, Value};

use crate::es_server::{Reply, Request, Scripted};

/// How the endpoint answers one parameter.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A SecureString with this value (sent only when `WithDecryption` is true, as AWS
    /// would otherwise send the ciphertext).
    Value(String),
    /// `AccessDeniedException`, as for a role without `ssm:GetParameter` on it.
    Denied,
}

/// One `GetParameter` call as the endpoint read it.
#[derive(Debug, Clone)]
pub struct Call {
    pub name: String,
    pub with_decryption: bool,
    /// The request carried a SigV4 `Authorization` header.
    pub signed: bool,
}

/// The endpoint; [`SsmServer::url`] goes into `AWS_ENDPOINT_URL_SSM`.
pub struct SsmServer {
    server: Scripted,
}

impl SsmServer {
    /// Answers `GetParameter` for the given names; every other call is refused.
    pub fn start(parameters: &[(&str, Answer)]) -> SsmServer {
        let parameters: Vec<(String, Answer)> = parameters.iter().map(|(n, a)| (n.to_string(), a.clone())).collect();
        let server = Scripted::start(move |_, request| answer(&parameters, request));
        SsmServer { server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The `GetParameter` calls received, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.server
            .requests()
            .iter()
            .filter(|r| r.header("x-amz-target") == Some("AmazonSSM.GetParameter"))
            .map(|r| {
                let body = r.json();
                Call {
                    name: body["Name"].as_str().unwrap_or_default().to_string(),
                    with_decryption: body["WithDecryption"].as_bool().unwrap_or(false),
                    signed: r.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 ")),
                }
            })
            .collect()
    }
}

fn error(kind: &str, message: &str) -> Reply {
    Reply::Bare(400, json!({"__type": kind, "message": message}).to_string())
}

fn answer(parameters: &[(String, Answer)], request: &Request) -> Reply {
    if request.method != "POST" || request.header("x-amz-target") != Some("AmazonSSM.GetParameter") {
        return error("UnknownOperationException", "this test endpoint answers AmazonSSM.GetParameter only");
    }
    let body: Value = request.json();
    let name = body["Name"].as_str().unwrap_or_default();
    let decrypt = body["WithDecryption"].as_bool().unwrap_or(false);
    match parameters.iter().find(|(n, _)| n == name).map(|(_, a)| a) {
        None => error("ParameterNotFound", ""),
        Some(Answer::Denied) => error(
            "AccessDeniedException",
            &format!(
                "User: arn:aws:sts::123456789012:assumed-role/tix-logs/tix-logs-lambda is not authorized to perform: \
                 ssm:GetParameter on resource: arn:aws:ssm:eu-west-1:123456789012:parameter{name} because no \
                 identity-based policy allows the ssm:GetParameter action"
            ),
        ),
        Some(Answer::Value(value)) => {
            let value = if decrypt { value.clone() } else { "AQICAHh-ciphertext-not-decrypted".to_string() };
            let parameter = json!({
                "Name": name,
                "Type": "SecureString",
                "Value": value,
                "Version": 1,
                "LastModifiedDate": 1.7e9,
                "ARN": format!("arn:aws:ssm:eu-west-1:123456789012:parameter{name}"),
                "DataType": "text",
            });
            Reply::Bare(200, json!({ "Parameter": parameter }).to_string())
        }
    }
}
