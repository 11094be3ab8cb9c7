//! The HTTPS client every AWS SDK configuration in tix-logs uses: S3, SSM Parameter
//! Store, and the credential providers behind them (STS, SSO, ECS, IMDS).
//!
//! The SDK's default client would do, but its rustls is built on aws-lc, a second crypto
//! library beside the ring that the Elasticsearch client's rustls already links, in every
//! binary and every build. This is the same hyper 1.x client with rustls on ring, so one
//! crypto library serves every TLS connection.

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// A new HTTPS client (rustls with ring, the platform's trusted roots) for
/// `aws_config::ConfigLoader::http_client` or `ProviderConfig::with_http_client`.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// The standard AWS configuration (region, credentials, endpoints from the environment
/// and profiles) with [`https_client`], for every SDK client tix-logs builds.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::from_env().http_client(https_client()).load().await
}
