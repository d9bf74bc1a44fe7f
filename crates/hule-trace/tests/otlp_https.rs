//! OTLP over https to a receiver whose certificate a private CA signed: trusted through
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`'s file, refused without it (the system's CAs do not know the private one), and a
//! client certificate presented when the receiver asks for one (mutual TLS). The receiver is an OpenSSL server in
//! this test that reads HTTP/1.1 requests and decodes their OTLP protobuf bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use hule_trace::otlp::{to_endpoint_with, OtlpTls};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tracing_subscriber::layer::SubscriberExt;

/// A CA, a server certificate for 127.0.0.1 it signed, and a client certificate it signed (`scripts/test-ca.sh`), in a
/// fresh directory.
fn certificates(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hule-otlp-tls-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/test-ca.sh"
    ))
    .arg(&dir)
    .output()
    .expect("scripts/test-ca.sh");
    assert!(
        out.status.success(),
        "test-ca.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// What the receiver got: the names of the spans it decoded, and how many TLS handshakes failed.
#[derive(Default)]
struct Received {
    spans: Vec<String>,
    refused_handshakes: usize,
}

/// A TLS receiver on 127.0.0.1 with `dir`'s server certificate; `mutual` asks for a client certificate signed by
/// the CA. Returns the endpoint URL.
fn receiver(dir: &Path, mutual: bool) -> (String, Arc<Mutex<Received>>) {
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
    acceptor
        .set_private_key_file(dir.join("server.key"), SslFiletype::PEM)
        .expect("key");
    acceptor
        .set_certificate_chain_file(dir.join("server.crt"))
        .expect("cert");
    if mutual {
        acceptor.set_ca_file(dir.join("ca.pem")).expect("ca");
        acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    let acceptor = Arc::new(acceptor.build());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got: Arc<Mutex<Received>> = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (acceptor, sink) = (acceptor.clone(), sink.clone());
            std::thread::spawn(move || {
                let Ok(tls) = acceptor.accept(tcp) else {
                    sink.lock().expect("lock").refused_handshakes += 1;
                    return;
                };
                let mut conn = BufReader::new(tls);
                // HTTP/1.1 requests on one kept-alive connection: a head, then a body of its Content-Length.
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if conn.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = l.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().expect("content-length");
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    conn.read_exact(&mut body).expect("body");
                    let request =
                        ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
                    let mut got = sink.lock().expect("lock");
                    for rs in request.resource_spans {
                        for ss in rs.scope_spans {
                            got.spans.extend(ss.spans.into_iter().map(|s| s.name));
                        }
                    }
                    drop(got);
                    let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if conn.get_mut().write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("https://127.0.0.1:{port}/v1/traces"), got)
}

/// Exports one span named `name` through an exporter with `tls`; the flush's verdict.
fn export_one(endpoint: &str, tls: &OtlpTls, name: &'static str) -> Result<(), String> {
    let exporter = to_endpoint_with(endpoint, "otlp-tls-test", tls).map_err(|e| e.to_string())?;
    let subscriber = tracing_subscriber::registry().with(exporter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("export", otel.name = name).entered();
    });
    let flushed = exporter.flush().map_err(|e| e.to_string());
    let _ = exporter.shutdown();
    flushed
}

#[test]
fn https_export_trusts_the_private_ca_it_is_given_and_only_that() {
    let dir = certificates("private-ca");
    let (endpoint, got) = receiver(&dir, false);

    let trusted = OtlpTls {
        ca: Some(dir.join("ca.pem")),
        ..OtlpTls::default()
    };
    export_one(&endpoint, &trusted, "over-tls").expect("export with the private CA trusted");
    assert_eq!(got.lock().expect("lock").spans, vec!["over-tls".to_owned()]);

    // Without the CA file the receiver's certificate is unknown: the handshake fails and nothing arrives.
    let verdict = export_one(&endpoint, &OtlpTls::default(), "untrusted");
    // The server notes the refused handshake on its own thread, just after the client gave up.
    let waited = std::time::Instant::now();
    while got.lock().expect("lock").refused_handshakes == 0 {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(10),
            "no handshake was refused; flush: {verdict:?}"
        );
        std::thread::yield_now();
    }
    assert_eq!(
        got.lock().expect("lock").spans,
        vec!["over-tls".to_owned()],
        "an untrusted receiver got spans; flush: {verdict:?}"
    );
}

#[test]
fn https_export_presents_its_client_certificate_when_asked() {
    let dir = certificates("mutual");
    let (endpoint, got) = receiver(&dir, true);

    let without = OtlpTls {
        ca: Some(dir.join("ca.pem")),
        ..OtlpTls::default()
    };
    let _ = export_one(&endpoint, &without, "no-client-cert");
    assert!(
        got.lock().expect("lock").spans.is_empty(),
        "accepted without a client certificate"
    );

    let with = OtlpTls {
        ca: Some(dir.join("ca.pem")),
        client_certificate: Some(dir.join("client.crt")),
        client_key: Some(dir.join("client.key")),
    };
    export_one(&endpoint, &with, "mutual").expect("export with a client certificate");
    assert_eq!(got.lock().expect("lock").spans, vec!["mutual".to_owned()]);
}
