//! Reaching a test app (or a deployed Lock Manager) that published no URL of its own, the ways
//! the existing toolkit's deployer does: through the cluster's ingress, or through the API
//! server's service proxy with the kubeconfig's credentials.
//!
//! The service proxy needs those credentials on every request, which a plain HTTP client (the
//! Test Runner client, the Lock Manager client) does not have: [`ApiProxy`] serves the
//! service on a loopback port of this machine and forwards each request through `kube`'s
//! client, for the suite's lifetime.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;

/// The largest request or answer body forwarded (reports are the largest: a few MiB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// How PIT reaches a component that publishes no URL of its own (`PIT_TEST_APP_URL`,
/// `PIT_LOCK_MANAGER_URL`).
///
/// ```
/// use pit_k8s::ServiceAccess;
/// let ingress = ServiceAccess::Ingress { cluster_url: "http://localhost".into() };
/// assert_eq!(ingress.ingress_url("pit-s-01jq", "checkout").as_deref(), Some("http://localhost/pit-s-01jq.checkout"));
/// assert_eq!(ServiceAccess::default(), ServiceAccess::ApiProxy { port: 80 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAccess {
    /// Only what the deploy commands publish.
    Published,
    /// Through the cluster's ingress (NGINX, on the existing toolkit's clusters):
    /// `<cluster_url>/<namespace>.<route>`, the route being the suite id for a test app.
    Ingress {
        /// The ingress's base URL (the existing toolkit's `--cluster-url`, default
        /// `http://localhost`).
        cluster_url: String,
    },
    /// Through the API server's service proxy,
    /// `/api/v1/namespaces/<namespace>/services/<component id>:<port>/proxy`, with the
    /// kubeconfig's credentials (the existing toolkit's `--use-kube-proxy`, its default).
    ApiProxy {
        /// The Service's port (the existing toolkit's `--test-runner-app-port`, default 80).
        port: u16,
    },
}

impl Default for ServiceAccess {
    fn default() -> Self {
        Self::ApiProxy { port: 80 }
    }
}

impl ServiceAccess {
    /// The ingress URL of `route` in `namespace`, in [`ServiceAccess::Ingress`] mode.
    pub fn ingress_url(&self, namespace: &str, route: &str) -> Option<String> {
        match self {
            Self::Ingress { cluster_url } => Some(format!("{}/{namespace}.{route}", cluster_url.trim_end_matches('/'))),
            _ => None,
        }
    }
}

/// The API server's proxy path of a Service's port.
///
/// ```
/// assert_eq!(
///     pit_k8s::access::service_proxy_path("pit-s-01jq", "node-1-test-app", 80),
///     "/api/v1/namespaces/pit-s-01jq/services/node-1-test-app:80/proxy"
/// );
/// ```
pub fn service_proxy_path(namespace: &str, service: &str, port: u16) -> String {
    format!("/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy")
}

/// A Service served on loopback through the API server's service proxy; stops when
/// [`shutdown`](Self::shutdown) or dropped.
#[derive(Debug)]
pub struct ApiProxy {
    url: String,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ApiProxy {
    /// Serves `service`'s `port` in `namespace` at `http://127.0.0.1:<free port>`: each request
    /// goes to the API server's service proxy through `client`, with its credentials.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start(client: kube::Client, namespace: &str, service: &str, port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let prefix = service_proxy_path(namespace, service, port);
        let app = axum::Router::new().fallback(move |req: Request| forward(client.clone(), prefix.clone(), req));
        let stop = CancellationToken::new();
        let until = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(until).await {
                tracing::warn!(error = %e, "the API server proxy stopped");
            }
        });
        Ok(Self {
            url,
            stop,
            task: Some(task),
        })
    }

    /// The base URL to give HTTP clients.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops serving: requests in flight get up to `grace` to finish, then are cut. When it
    /// returns, the port is closed.
    pub async fn shutdown(mut self, grace: Duration) {
        self.stop.cancel();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Forwards `req` to `prefix` + its path and query (such as a [`service_proxy_path`]) through
/// the API server with `client`'s credentials, and returns its answer (502 when the API server
/// cannot be reached).
pub async fn forward(client: kube::Client, prefix: String, req: Request) -> Response {
    let bad_gateway = |what: String| (http::StatusCode::BAD_GATEWAY, what).into_response();
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return (http::StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    };
    let path = parts.uri.path_and_query().map_or("/", http::uri::PathAndQuery::as_str);
    let mut out = http::Request::builder()
        .method(parts.method)
        .uri(format!("{prefix}{path}"));
    for name in [http::header::CONTENT_TYPE, http::header::ACCEPT] {
        if let Some(v) = parts.headers.get(&name) {
            out = out.header(name, v);
        }
    }
    let out = match out.body(kube::client::Body::from(body.to_vec())) {
        Ok(r) => r,
        Err(e) => return bad_gateway(e.to_string()),
    };
    // A long poll may hold the answer: the clients set their own limits.
    let answer = match tokio::time::timeout(Duration::from_secs(300), client.send(out)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return bad_gateway(format!("the API server's service proxy: {e}")),
        Err(_) => return bad_gateway("the API server's service proxy did not answer within 300 s".into()),
    };
    let (mut parts, body) = answer.into_parts();
    // Hop-by-hop headers belong to the API server's connection, not this one; the length is
    // that of the body as sent here.
    for name in [
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
        http::header::TE,
        http::header::TRAILER,
        http::header::UPGRADE,
        http::header::PROXY_AUTHENTICATE,
        http::header::CONTENT_LENGTH,
    ] {
        parts.headers.remove(name);
    }
    parts.headers.remove("keep-alive");
    match body.collect().await {
        Ok(bytes) => Response::from_parts(parts, Body::from(bytes.to_bytes())),
        Err(e) => bad_gateway(format!("the API server's service proxy: {e}")),
    }
}
