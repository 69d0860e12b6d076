//! The operations endpoint on hyper: `GET`/`HEAD` `/metrics` (Prometheus
//! text format) and `/healthz` (200 while the processing loop beat in the
//! last 60 s, else 503). Paths are matched without their query string;
//! other methods get 405, other paths 404. A failed `accept` (e.g. out of
//! file descriptors) is logged and retried after a pause, never in a busy
//! loop; slow clients time out; at most [`MAX_CONNECTIONS`] at once.

use super::Health;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// `/healthz` fails when the loop has not beaten for this long.
pub const STALL_AFTER: Duration = Duration::from_secs(60);

/// The response to `req`.
pub fn respond<B>(
    req: &Request<B>,
    render: impl FnOnce() -> String,
    health: &Health,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, ctype: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        r
    };
    let path = req.uri().path();
    if !matches!(path, "/metrics" | "/healthz") {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /healthz\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        _ if health.is_healthy(STALL_AFTER) => {
            text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
        }
        _ => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "processing loop stalled\n".into(),
        ),
    }
}

/// Serves connections from `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, handle: PrometheusHandle, health: Health) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: cannot accept a connection; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (handle, health) = (handle.clone(), health.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = respond(&req, || handle.render(), &health);
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            // Keep-alive connections (Prometheus reuses them) may stay a while.
            let _ = tokio::time::timeout(Duration::from_secs(300), conn).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: Method, uri: &str, health: &Health) -> Response<Full<Bytes>> {
        let req = Request::builder().method(method).uri(uri).body(()).unwrap();
        respond(&req, || "# metrics\n".into(), health)
    }

    #[test]
    fn routes_ignore_the_query_string() {
        let health = Health::default();
        assert_eq!(
            get(Method::GET, "/metrics?x=1", &health).status(),
            StatusCode::OK
        );
        assert_eq!(
            get(Method::HEAD, "/metrics", &health).status(),
            StatusCode::OK
        );
        assert_eq!(
            get(Method::GET, "/healthz?verbose", &health).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        health.beat();
        assert_eq!(
            get(Method::GET, "/healthz", &health).status(),
            StatusCode::OK
        );
        assert_eq!(
            get(Method::GET, "/nope", &health).status(),
            StatusCode::NOT_FOUND
        );
        let post = get(Method::POST, "/metrics", &health);
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
    }
}
