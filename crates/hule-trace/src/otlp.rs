//! The OTLP exporter (OTLP over HTTP with protobuf bodies, batched), configured by the standard variables:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base URL, `/v1/traces` is added) or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn
//! it off. OTLP over gRPC is not built in: it is refused with what to use instead.
//!
//! `https://` endpoints are verified against the system's CAs plus the PEM file named by
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` (or `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`); a client certificate for mutual
//! TLS comes from `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `OTEL_EXPORTER_OTLP_CLIENT_KEY` (PEM, the key in
//! PKCS #8). The HTTP client's TLS is OpenSSL's, the library librdkafka and the PostgreSQL client already link,
//! so no second TLS implementation or crypto provider comes with it.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
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

/// The TLS files of an `https://` export: extra trusted CAs and a client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpTls {
    /// A PEM file of CA certificates trusted besides the system's (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub ca: Option<std::path::PathBuf>,
    /// The client's PEM certificate chain (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    pub client_certificate: Option<std::path::PathBuf>,
    /// The client's PEM PKCS #8 key (`OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub client_key: Option<std::path::PathBuf>,
}

impl OtlpTls {
    /// The files the standard variables name (the traces-specific variable first).
    pub fn from_env() -> Self {
        let pick =
            |specific: &str, general: &str| var(specific).or_else(|| var(general)).map(Into::into);
        OtlpTls {
            ca: pick(
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ),
            client_certificate: pick(
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ),
            client_key: pick(
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ),
        }
    }
}

/// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds; default 10 s, as the specification says).
fn export_timeout() -> Result<std::time::Duration, OtlpError> {
    let name = "OTEL_EXPORTER_OTLP_TIMEOUT";
    match var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT").or_else(|| var(name)) {
        None => Ok(std::time::Duration::from_secs(10)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=600_000).contains(ms))
            .map(std::time::Duration::from_millis)
            .ok_or_else(|| {
                OtlpError(format!(
                    "{name} must be milliseconds from 1 to 600000, got `{v}`"
                ))
            }),
    }
}

/// The blocking HTTP client the batch exporter sends with, its TLS set from `tls`.
fn http_client(
    tls: &OtlpTls,
    timeout: std::time::Duration,
) -> Result<reqwest::blocking::Client, OtlpError> {
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| OtlpError(format!("{what} `{}`: {e}", path.display())))
    };
    let mut builder = reqwest::blocking::Client::builder().timeout(timeout);
    if let Some(ca) = &tls.ca {
        let pem = read("OTEL_EXPORTER_OTLP_CERTIFICATE", ca)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            OtlpError(format!(
                "OTEL_EXPORTER_OTLP_CERTIFICATE `{}` is not a PEM file of certificates: {e}",
                ca.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(OtlpError(format!(
                "OTEL_EXPORTER_OTLP_CERTIFICATE `{}` holds no certificate",
                ca.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    match (&tls.client_certificate, &tls.client_key) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let identity = reqwest::Identity::from_pkcs8_pem(
                &read("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert)?,
                &read("OTEL_EXPORTER_OTLP_CLIENT_KEY", key)?,
            )
            // The error names no key material; the paths are not secret.
            .map_err(|e| {
                OtlpError(format!(
                    "the client certificate `{}` and key `{}` (PEM, the key in PKCS #8) cannot be used: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
            builder = builder.identity(identity);
        }
        _ => return Err(OtlpError(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together"
                .into(),
        )),
    }
    // reqwest's blocking client runs a runtime of its own and must not be built on an async runtime's thread.
    std::thread::spawn(move || builder.build())
        .join()
        .map_err(|_| OtlpError("the HTTP client could not be built".into()))?
        .map_err(|e| {
            OtlpError(format!(
                "the HTTP client: {}",
                hule_secrets::error_chain(&e)
            ))
        })
}

/// An exporter to `endpoint` (the full traces URL, e.g. `http://127.0.0.1:4318/v1/traces`); the other `OTEL_*`
/// variables still apply, TLS files included.
pub fn to_endpoint(endpoint: &str, default_service: &str) -> Result<Exporter, OtlpError> {
    to_endpoint_with(endpoint, default_service, &OtlpTls::from_env())
}

/// [`to_endpoint`] with the TLS files given rather than read from the environment.
pub fn to_endpoint_with(
    endpoint: &str,
    default_service: &str,
    tls: &OtlpTls,
) -> Result<Exporter, OtlpError> {
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        return Err(OtlpError(format!(
            "the OTLP endpoint must be an http:// or https:// URL, got `{}`",
            hule_secrets::redact_url(endpoint)
        )));
    }
    let client = http_client(tls, export_timeout()?)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
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
        assert!(
            err.to_string()
                .contains("must be an http:// or https:// URL"),
            "{err}"
        );
        let err =
            to_endpoint("ftp://u:secret@otel.example:4318/v1/traces", "hule").expect_err("ftp");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn unusable_tls_files_are_refused_by_name() {
        let endpoint = "https://127.0.0.1:4318/v1/traces";
        let missing = OtlpTls {
            ca: Some("/nonexistent/ca.pem".into()),
            ..OtlpTls::default()
        };
        let err = to_endpoint_with(endpoint, "hule", &missing).expect_err("missing CA");
        assert!(
            err.to_string()
                .contains("OTEL_EXPORTER_OTLP_CERTIFICATE `/nonexistent/ca.pem`"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("hule-otlp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let not_pem = dir.join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").expect("write");
        let err = to_endpoint_with(
            endpoint,
            "hule",
            &OtlpTls {
                ca: Some(not_pem),
                ..OtlpTls::default()
            },
        )
        .expect_err("no certificate");
        assert!(
            err.to_string().contains("holds no certificate")
                || err.to_string().contains("not a PEM"),
            "{err}"
        );
        let err = to_endpoint_with(
            endpoint,
            "hule",
            &OtlpTls {
                client_certificate: Some(dir.join("client.pem")),
                ..OtlpTls::default()
            },
        )
        .expect_err("half a client identity");
        assert!(err.to_string().contains("go together"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
