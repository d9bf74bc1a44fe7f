//! The OTLP exporter (OTLP over HTTP with protobuf bodies, batched), configured by the standard variables:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base URL, `/v1/traces` is added) or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn
//! it off. OTLP over gRPC and over https are not built in: they are refused with what to use instead (a collector
//! reached over http, which may forward over TLS).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetryLayer;

/// Why the exporter could not be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpError(pub String);

impl std::fmt::Display for OtlpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenTelemetry export: {}", self.0)
    }
}
impl std::error::Error for OtlpError {}

/// The installed exporter; dropping it (or [`Exporter::shutdown`]) sends what is still batched.
#[derive(Debug)]
pub struct Exporter {
    provider: SdkTracerProvider,
    /// Where spans go (for the start-up line; no credentials: headers are not part of it).
    pub endpoint: String,
}

impl Exporter {
    /// Sends every finished span now.
    pub fn flush(&self) -> Result<(), OtlpError> {
        self.provider
            .force_flush()
            .map_err(|e| OtlpError(e.to_string()))
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(self) -> Result<(), OtlpError> {
        let r = self
            .provider
            .shutdown()
            .map_err(|e| OtlpError(e.to_string()));
        std::mem::forget(self);
        r
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this exporter.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("hule"))
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The collector the environment names, if export is on.
pub fn configured_endpoint() -> Option<String> {
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return None;
    }
    var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
        var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    })
}

/// Installs the exporter the environment asks for: `Ok(None)` when no endpoint is set (nothing is exported),
/// an error naming the variable when the configuration cannot work. `default_service` names the process when
/// `OTEL_SERVICE_NAME` does not.
pub fn from_env(default_service: &str) -> Result<Option<Exporter>, OtlpError> {
    let Some(endpoint) = configured_endpoint() else {
        return Ok(None);
    };
    let protocol =
        var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    match protocol.as_deref() {
        None | Some("http/protobuf") => {}
        Some("grpc") => {
            return Err(OtlpError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported by hule; use http/protobuf and the collector's \
                 OTLP/HTTP port (4318 by default)"
                    .into(),
            ))
        }
        Some(other) => {
            return Err(OtlpError(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported by hule; use http/protobuf"
            )))
        }
    }
    to_endpoint(&endpoint, default_service).map(Some)
}

/// An exporter to `endpoint` (the full traces URL, e.g. `http://127.0.0.1:4318/v1/traces`); the other `OTEL_*`
/// variables still apply.
pub fn to_endpoint(endpoint: &str, default_service: &str) -> Result<Exporter, OtlpError> {
    if endpoint.starts_with("https://") {
        // reqwest's TLS would bring a second rustls crypto provider (aws-lc-rs) beside the ring one the Redis
        // client uses, and rustls then refuses to pick either: a collector on the same host or network, over
        // plain HTTP, is how hule exports.
        return Err(OtlpError(format!(
            "OTLP over https is not built into hule; export to a collector over http (an OpenTelemetry Collector or \
             Jaeger next to the service, which may forward over TLS), got `{}`",
            hule_secrets::redact_url(endpoint)
        )));
    }
    if !endpoint.starts_with("http://") {
        return Err(OtlpError(format!(
            "the OTLP endpoint must be an http:// URL, got `{}`",
            hule_secrets::redact_url(endpoint)
        )));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| OtlpError(e.to_string()))?;
    let mut resource = Resource::builder();
    if var("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(default_service.to_owned());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    Ok(Exporter {
        provider,
        endpoint: hule_secrets::redact_url(endpoint),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_and_credentials_never_shown() {
        assert_eq!(
            hule_secrets::redact_url("https://u:secret@otel.example:4318/v1/traces"),
            "https://u:***@otel.example:4318/v1/traces"
        );
        let err = to_endpoint("otel.example:4318", "hule").expect_err("no scheme");
        assert!(err.to_string().contains("must be an http:// URL"), "{err}");
        let err =
            to_endpoint("https://u:secret@otel.example:4318/v1/traces", "hule").expect_err("https");
        assert!(
            err.to_string().contains("over http") && !err.to_string().contains("secret"),
            "{err}"
        );
    }
}
