//! The Lambda's secrets from SSM Parameter Store, read once at cold start.
//!
//! A secret that must not sit in the function's configuration in clear (the PII key, the
//! Elasticsearch API key or password) is named instead: `TIX_PII_KEY_PARAM=/tix/pii-key`
//! holds the name of a SecureString parameter, fetched with decryption. A Secrets Manager
//! secret is reached through the same call as `/aws/reference/secretsmanager/NAME`, so one
//! client serves both. Fetched values overlay the environment for the settings readers
//! ([`Secrets::lookup`]); nothing else changes for them.
//!
//! What is pure (which variables, the plain-vs-parameter rule, the advice an error gives)
//! is tested here; the SDK call is [`fetch`], at the edge.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};

/// A secret the Lambda may read from a parameter: the variable its readers look up, and
/// the variable that names its parameter instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretVar {
    pub variable: &'static str,
    pub param_variable: &'static str,
}

/// Every secret that may come from a parameter.
pub const SECRET_VARS: [SecretVar; 3] = [
    SecretVar { variable: "TIX_PII_KEY", param_variable: "TIX_PII_KEY_PARAM" },
    SecretVar { variable: "TIX_ES_API_KEY", param_variable: "TIX_ES_API_KEY_PARAM" },
    SecretVar { variable: "TIX_ES_PASSWORD", param_variable: "TIX_ES_PASSWORD_PARAM" },
];

/// Secrets Manager secrets are read through Parameter Store under this prefix.
pub const SECRETS_MANAGER_PREFIX: &str = "/aws/reference/secretsmanager/";

/// One parameter to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterRef {
    pub secret: SecretVar,
    /// The parameter's name (or ARN), as the `_PARAM` variable gives it.
    pub name: String,
}

impl ParameterRef {
    fn is_secrets_manager(&self) -> bool {
        self.name.starts_with(SECRETS_MANAGER_PREFIX)
    }
}

/// The parameters named by the environment. A secret set both in clear and as a
/// parameter is refused: which one wins would be a guess, and a stale clear value left
/// behind after a move to Parameter Store is exactly the mistake to catch.
pub fn plan(lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<ParameterRef>> {
    let mut refs = Vec::new();
    for secret in SECRET_VARS {
        let Some(name) = lookup(secret.param_variable) else { continue };
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(Error::Config(format!(
                "{} must name an SSM parameter (e.g. /tix/pii-key, or {SECRETS_MANAGER_PREFIX}SECRET for a Secrets \
                 Manager secret); it is empty or contains spaces",
                secret.param_variable
            )));
        }
        if lookup(secret.variable).is_some_and(|v| !v.is_empty()) {
            return Err(Error::Config(format!(
                "both {} and {} are set: keep only the parameter ({}) and remove the clear value",
                secret.variable, secret.param_variable, secret.param_variable
            )));
        }
        refs.push(ParameterRef { secret, name });
    }
    Ok(refs)
}

/// Fetched secret values by the variable they stand for. `Debug` shows the variables,
/// never the values.
#[derive(Default, Clone)]
pub struct Secrets {
    values: BTreeMap<&'static str, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.values.keys().map(|k| (k, "<redacted>"))).finish()
    }
}

impl Secrets {
    pub fn insert(&mut self, variable: &'static str, value: String) {
        self.values.insert(variable, value);
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// A variable lookup that answers fetched secrets first and `env` for the rest, for
    /// `LambdaSettings::from_lookup` and `EsConfig::from_lookup`.
    pub fn lookup<'a>(&'a self, env: impl Fn(&str) -> Option<String> + 'a) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| self.values.get(name).cloned().or_else(|| env(name))
    }
}

/// What went wrong, in terms of the action it calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchProblem {
    /// No such parameter (or secret) in this account and region.
    NotFound,
    /// IAM or KMS refused: the role's permissions.
    Denied,
    /// The parameter's KMS key is unusable (disabled, deleted, wrong id).
    KmsKey,
    /// No answer: network, endpoint, timeout.
    Unreachable,
    /// Anything else the service said.
    Other,
}

/// Classifies an SSM error code (`None`: no answer came back).
pub fn classify(code: Option<&str>) -> FetchProblem {
    match code {
        None => FetchProblem::Unreachable,
        Some("ParameterNotFound" | "ParameterVersionNotFound" | "ResourceNotFoundException") => FetchProblem::NotFound,
        Some(
            "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "KMSAccessDeniedException",
        ) => FetchProblem::Denied,
        Some(code) if code.starts_with("KMS") || code == "InvalidKeyId" => FetchProblem::KmsKey,
        Some(_) => FetchProblem::Other,
    }
}

/// What to check, for a parameter and a problem. Names the parameter and the region,
/// never a value.
pub fn advice(parameter: &ParameterRef, problem: FetchProblem, region: &str) -> String {
    let name = &parameter.name;
    let via_secrets_manager = parameter.is_secrets_manager();
    let secret_grant = if via_secrets_manager {
        format!(", secretsmanager:GetSecretValue on the secret {}", name.trim_start_matches(SECRETS_MANAGER_PREFIX))
    } else {
        String::new()
    };
    match problem {
        FetchProblem::NotFound => format!(
            "check the name in {} (a path such as /tix/pii-key, or {SECRETS_MANAGER_PREFIX}SECRET) and that it exists \
             in region {region}",
            parameter.secret.param_variable
        ),
        FetchProblem::Denied => format!(
            "check that the function's role may ssm:GetParameter on the parameter {name}{secret_grant}, and kms:Decrypt \
             on the KMS key that encrypts it (for the AWS-managed key: a kms:ViaService condition on ssm.{region}.amazonaws.com)"
        ),
        FetchProblem::KmsKey => format!("check the KMS key that encrypts {name}: it must exist and be enabled, and the role needs kms:Decrypt on it"),
        FetchProblem::Unreachable => format!(
            "SSM in region {region} did not answer: check the region, the function's network path to SSM (a NAT \
             gateway or an ssm VPC endpoint for a function in a VPC) and AWS_ENDPOINT_URL_SSM if set"
        ),
        FetchProblem::Other => format!(
            "check that {name} exists in region {region} and that the role may ssm:GetParameter on it{secret_grant} \
             and kms:Decrypt on its key"
        ),
    }
}

/// The error for a parameter that could not be read: the parameter named, the reason
/// the service gave (which never holds the value), and what to check.
pub fn fetch_error(parameter: &ParameterRef, code: Option<&str>, reason: &str, region: &str) -> Error {
    Error::Secret {
        variable: parameter.secret.param_variable,
        parameter: parameter.name.clone(),
        reason: reason.to_string(),
        advice: advice(parameter, classify(code), region),
    }
}

/// How long one parameter may take, retries included: a cold start that hangs on SSM
/// is worse than one that refuses and says why.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads each parameter once, with decryption, through `shared`: the standard AWS
/// configuration (region, credentials; `AWS_ENDPOINT_URL_SSM` or `AWS_ENDPOINT_URL` for
/// another endpoint, see [`indexer::aws_http::sdk_config`]).
pub async fn fetch(shared: &aws_config::SdkConfig, parameters: &[ParameterRef]) -> Result<Secrets> {
    use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata};

    let mut secrets = Secrets::default();
    if parameters.is_empty() {
        return Ok(secrets);
    }
    let region = shared.region().map(|r| r.to_string()).unwrap_or_else(|| "(no region set: AWS_REGION)".into());
    let config = aws_sdk_ssm::config::Builder::from(shared)
        .timeout_config(
            aws_sdk_ssm::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_timeout(FETCH_TIMEOUT)
                .build(),
        )
        .build();
    let client = aws_sdk_ssm::Client::from_conf(config);
    for parameter in parameters {
        let answer = client.get_parameter().name(&parameter.name).with_decryption(true).send().await;
        let output = match answer {
            Ok(output) => output,
            Err(error) => {
                let code = error.code().map(str::to_string);
                let reason = DisplayErrorContext(&error).to_string();
                return Err(fetch_error(parameter, code.as_deref(), &reason, &region));
            }
        };
        match output.parameter.and_then(|p| p.value) {
            Some(value) if !value.is_empty() => secrets.insert(parameter.secret.variable, value),
            _ => return Err(fetch_error(parameter, Some("EmptyValue"), "the parameter has no value", &region)),
        }
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_plan_lists_exactly_the_secrets_named_by_a_parameter() {
        let refs = plan(env(&[
            ("TIX_PII_KEY_PARAM", "/tix/pii-key"),
            ("TIX_ES_API_KEY_PARAM", "/aws/reference/secretsmanager/tix-es"),
            ("TIX_ES_PASSWORD", "plain-is-still-fine"),
        ]))
        .unwrap();
        let names: Vec<(&str, &str)> = refs.iter().map(|r| (r.secret.variable, r.name.as_str())).collect();
        assert_eq!(
            names,
            [("TIX_PII_KEY", "/tix/pii-key"), ("TIX_ES_API_KEY", "/aws/reference/secretsmanager/tix-es")]
        );
        assert!(plan(env(&[("TIX_PII_KEY", "k")])).unwrap().is_empty(), "clear values need no fetch");
    }

    #[test]
    fn a_secret_both_clear_and_named_or_a_blank_name_is_refused_without_its_value() {
        let cases: [(&[(&str, &str)], &str); 3] = [
            (
                &[("TIX_PII_KEY", "s3cr3t-value"), ("TIX_PII_KEY_PARAM", "/tix/pii")],
                "both TIX_PII_KEY and TIX_PII_KEY_PARAM",
            ),
            (&[("TIX_ES_PASSWORD", "s3cr3t-value"), ("TIX_ES_PASSWORD_PARAM", "/p")], "TIX_ES_PASSWORD_PARAM"),
            (&[("TIX_ES_API_KEY_PARAM", "  ")], "TIX_ES_API_KEY_PARAM must name an SSM parameter"),
        ];
        for (pairs, expected) in cases {
            let error = plan(env(pairs)).expect_err("must be refused").to_string();
            assert!(error.contains(expected), "{pairs:?}: {error}");
            assert!(!error.contains("s3cr3t-value"), "{error}");
        }
        // An empty clear value is no value: the parameter alone is fine.
        assert_eq!(plan(env(&[("TIX_PII_KEY", ""), ("TIX_PII_KEY_PARAM", "/p")])).unwrap().len(), 1);
    }

    #[test]
    fn fetched_secrets_overlay_the_environment_and_debug_hides_them() {
        let mut secrets = Secrets::default();
        secrets.insert("TIX_PII_KEY", "fetched-value".into());
        let base = env(&[("TIX_PII_KEY_PARAM", "/p"), ("TIX_DEAD_LETTER", "s3://b/dl/")]);
        let lookup = secrets.lookup(base);
        assert_eq!(lookup("TIX_PII_KEY").as_deref(), Some("fetched-value"));
        assert_eq!(lookup("TIX_DEAD_LETTER").as_deref(), Some("s3://b/dl/"));
        assert_eq!(lookup("TIX_ES_API_KEY"), None);
        let debug = format!("{secrets:?}");
        assert!(debug.contains("TIX_PII_KEY") && !debug.contains("fetched-value"), "{debug}");
    }

    #[test]
    fn errors_name_the_parameter_and_say_what_to_check() {
        let ssm = ParameterRef { secret: SECRET_VARS[0], name: "/tix/pii-key".into() };
        let sm = ParameterRef { secret: SECRET_VARS[1], name: format!("{SECRETS_MANAGER_PREFIX}tix-es") };
        let table: [(&ParameterRef, Option<&str>, &[&str]); 6] = [
            (&ssm, Some("ParameterNotFound"), &["TIX_PII_KEY_PARAM", "/tix/pii-key", "region eu-west-1"]),
            (&ssm, Some("AccessDeniedException"), &["ssm:GetParameter", "kms:Decrypt", "kms:ViaService"]),
            (
                &sm,
                Some("AccessDeniedException"),
                &["secretsmanager:GetSecretValue on the secret tix-es", "kms:Decrypt"],
            ),
            (&ssm, Some("InvalidKeyId"), &["KMS key", "enabled"]),
            (&ssm, None, &["did not answer", "VPC endpoint", "AWS_ENDPOINT_URL_SSM"]),
            (&ssm, Some("ThrottlingException"), &["ssm:GetParameter", "kms:Decrypt"]),
        ];
        for (parameter, code, expected) in table {
            let error = fetch_error(parameter, code, "service said no", "eu-west-1").to_string();
            assert!(error.contains(&parameter.name) && error.contains("service said no"), "{error}");
            for part in expected {
                assert!(error.contains(part), "{code:?}: missing {part:?} in {error}");
            }
        }
    }
}
