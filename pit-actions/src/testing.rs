//! Test tools (feature `testing`): an HTTP receiver on loopback that records every call, for
//! tests of actions, of runs that run them, and of frontends.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

/// A call the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as JSON (`null` when it is not).
    pub body: serde_json::Value,
}

/// An answer: a status with headers; `None` never answers (a receiver that hangs).
pub type Answer = Option<(u16, Vec<(&'static str, &'static str)>)>;

/// A receiver on a free loopback port, answering each call with the next of its answers (the
/// last one repeats); it serves until the runtime it was started on ends.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// A receiver answering 200 to every call.
    ///
    /// # Panics
    /// When no loopback port is free.
    pub async fn ok() -> Self {
        Self::answering(vec![Some((200, vec![]))]).await
    }

    /// A receiver answering as `answers` say, one per call.
    ///
    /// # Panics
    /// When no loopback port is free, or `answers` is empty.
    pub async fn answering(answers: Vec<Answer>) -> Self {
        assert!(!answers.is_empty(), "a receiver needs an answer");
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answers = Arc::new(answers);
        let app = axum::Router::new().fallback({
            let got = got.clone();
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let (got, answers) = (got.clone(), answers.clone());
                async move {
                    let n = {
                        let mut got = got.lock().expect("no panics while held");
                        got.push(Received {
                            path: uri.path().to_owned(),
                            headers,
                            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                        });
                        got.len()
                    };
                    match answers[(n - 1).min(answers.len() - 1)].clone() {
                        Some((status, headers)) => {
                            let mut map = HeaderMap::new();
                            for (k, v) in headers {
                                map.insert(k, v.parse().expect("a header value"));
                            }
                            let status = StatusCode::from_u16(status).expect("an HTTP status");
                            (status, map, "answer").into_response()
                        }
                        None => std::future::pending().await,
                    }
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let url = format!("http://{}", listener.local_addr().expect("a bound socket"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, got }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Received> {
        self.got.lock().expect("no panics while held").clone()
    }

    /// The bodies of every call so far.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.calls().into_iter().map(|r| r.body).collect()
    }
}
