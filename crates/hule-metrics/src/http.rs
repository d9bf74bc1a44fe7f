//! The HTTP endpoint (axum): `GET /metrics` (and `/`) with the OpenMetrics exposition, `GET /healthz` with the
//! health board as JSON, 200 when every part is well and 503 otherwise.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::Registry;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(State(registry): State<Registry>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], registry.render())
}

async fn healthz(State(registry): State<Registry>) -> impl IntoResponse {
    let report = registry.health().report();
    let status = if report.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report.to_json()))
}

/// Serves `/metrics` and `/healthz` for `registry` until the task is dropped. Binds first, so a taken address is
/// reported to the caller instead of in a background task.
pub async fn serve(
    registry: Registry,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(registry);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
        let mut body = String::new();
        s.read_to_string(&mut body).await.expect("read");
        body
    }

    #[tokio::test]
    async fn serves_metrics_and_health() {
        let r = Registry::new();
        r.counter("served_total", "S.", &[]).inc(&[]);
        let (addr, task) = serve(r.clone(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let body = get(addr, "/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("application/openmetrics-text"), "{body}");
        assert!(body.contains("served_total 1"), "{body}");

        r.health().set("kafka", false, "no broker reachable");
        let body = get(addr, "/healthz").await;
        assert!(body.starts_with("HTTP/1.1 503"), "{body}");
        assert!(body.contains("no broker reachable"), "{body}");
        r.health().set("kafka", true, "connected");
        let body = get(addr, "/healthz").await;
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        task.abort();
    }
}
