//! The Lock Manager's HTTP client: a [`LockStore`] over the v2 API.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use pit_core::lock::{Holder, Lease, LockError, LockRequest, LockStore, Progress};
use pit_core::pitfile::LockId;
use reqwest::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::api::{v2, ApiError, LockList};

/// The most this client reads of an answer: 64 MiB, far more than a list of every lock and
/// waiter takes.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// The longest line of a streamed acquire: 1 MiB (an event names at most 64 ids and holders).
const MAX_EVENT_LINE_BYTES: usize = 1 << 20;

/// The environment variable `pit` reads the Lock Manager's token from.
pub const TOKEN_ENV: &str = "PIT_LOCK_TOKEN";

/// Talks to a Lock Manager.
///
/// Transient failures (the service or its database unreachable, 502/503/504) are retried with
/// jittered exponential backoff: an acquire until its wait is over, a renewal until the lease
/// would have expired anyway, a release a few times. A lease lost on the server is
/// [`LockError::Lost`].
///
/// ```no_run
/// # async fn demo() -> Result<(), pit_core::lock::LockError> {
/// use std::time::Duration;
/// use pit_core::lock::{LockOwner, LockRequest, LockStore};
/// let locks = pit_lock::HttpLockStore::new("http://127.0.0.1:8080", std::env::var("PIT_LOCK_TOKEN").ok())?;
/// let req = LockRequest {
///     ids: vec!["shared-db".into()],
///     owner: LockOwner { name: "nightly".into(), ..Default::default() },
///     ttl: Duration::from_secs(60),
///     wait: Duration::from_secs(600),
/// };
/// let lease = locks.acquire(&req, &Default::default()).await?;
/// println!("fencing token {}", lease.fencing[&"shared-db".into()]);
/// locks.release(&lease).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpLockStore {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for HttpLockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpLockStore")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What one call came to.
enum Outcome<T> {
    Done(T),
    /// Worth another try.
    Transient(String),
}

impl HttpLockStore {
    /// A client of the Lock Manager at `url` (such as `http://lock-manager:8080`), sending
    /// `token` as a bearer token when given.
    ///
    /// # Errors
    /// [`LockError::Invalid`] for a URL that is not `http` or `https`, or that carries
    /// credentials (`user:password@`): the token goes in `token`.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, LockError> {
        let mut base = reqwest::Url::parse(url)
            .map_err(|e| LockError::Invalid(format!("the Lock Manager URL `{url}` is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(LockError::Invalid(format!(
                "the Lock Manager URL `{url}` must start with http:// or https://"
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            // reqwest would send them as Basic credentials in place of the bearer token.
            return Err(LockError::Invalid(format!(
                "the Lock Manager URL `{}` carries credentials (`user:password@`), which the Lock Manager does not read: remove them and give the token in {TOKEN_ENV}",
                pit_core::naming::redact_url(url)
            )));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| LockError::Invalid(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            base,
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// The service's address.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    fn fail(&self, message: impl Into<String>) -> LockError {
        LockError::backend(self.base.to_string(), message)
    }

    /// A request that failed for good, keeping reqwest's error (without the URL) as the source.
    fn failed_request(&self, e: reqwest::Error) -> LockError {
        LockError::backend_caused_by(self.base.to_string(), describe(&e), e.without_url())
    }

    fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder, LockError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| LockError::Invalid(format!("bad path `{path}`: {e}")))?;
        let mut r = self.http.request(method, url);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        Ok(r)
    }

    /// Sends once: the decoded answer, a transient failure, or a final error.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<Outcome<T>, LockError> {
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                return Ok(Outcome::Transient(describe(&e)));
            }
            Err(e) => return Err(self.failed_request(e)),
        };
        let status = response.status();
        if status.is_success() {
            return match pit_core::http::read_at_most(response, MAX_ANSWER_BYTES).await {
                Err(e) => Ok(Outcome::Transient(format!("the answer broke off: {}", describe(&e)))),
                Ok((_, true)) => Err(self.fail(format!(
                    "the answer is larger than {} MiB, which a Lock Manager never sends (hint: is this URL a Lock Manager's?)",
                    MAX_ANSWER_BYTES >> 20
                ))),
                Ok((body, false)) => serde_json::from_slice(&body)
                    .map(Outcome::Done)
                    .or_else(|e| Ok(Outcome::Transient(format!("the answer broke off: {e}")))),
            };
        }
        let err = read_error(response).await;
        if is_transient(status) {
            return Ok(Outcome::Transient(err.message));
        }
        Err(self.api_error(err))
    }

    fn api_error(&self, e: ApiError) -> LockError {
        match e.code.as_str() {
            "unauthorized" | "forbidden" => self.fail(format!(
                "{} (HTTP {}; set {TOKEN_ENV} to a token the Lock Manager accepts)",
                e.message, e.status
            )),
            "invalid_request" | "malformed_json" => LockError::Invalid(e.message),
            // The caller fills in which lease (`for_lease`).
            "not_lease_holder" => LockError::NotHolder { lease: String::new() },
            "lease_lost" => LockError::Lost {
                lease: String::new(),
                ids: Vec::new(),
            },
            _ => self.fail(format!("{} (HTTP {}, {})", e.message, e.status, e.code)),
        }
    }

    /// Calls until done, retrying transient failures with jittered backoff until `deadline`.
    async fn retrying<T: serde::de::DeserializeOwned>(
        &self,
        deadline: Instant,
        mut make: impl FnMut() -> Result<reqwest::RequestBuilder, LockError>,
    ) -> Result<T, LockError> {
        let mut backoff = Backoff::new();
        loop {
            match self.call(make()?).await? {
                Outcome::Done(v) => return Ok(v),
                Outcome::Transient(why) => {
                    let pause = backoff.next();
                    if Instant::now() + pause >= deadline {
                        return Err(self.fail(why));
                    }
                    tracing::debug!(reason = %why, ?pause, "Lock Manager call failed; trying again");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// Locks held and requests waiting.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the service cannot be reached or refuses.
    pub async fn list(&self) -> Result<LockList, LockError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        self.retrying(deadline, || self.request(Method::GET, "v2/locks")).await
    }

    /// Frees `ids` whoever holds them (needs an admin token); the leases ended.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the service cannot be reached or refuses.
    pub async fn force_release(&self, ids: &[LockId]) -> Result<Vec<Lease>, LockError> {
        let body = v2::ForceReleaseRequest {
            ids: ids.iter().map(ToString::to_string).collect(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let answer: v2::ForceReleaseResponse = self
            .retrying(deadline, || {
                Ok(self.request(Method::POST, "v2/admin/force-release")?.json(&body))
            })
            .await?;
        Ok(answer.released)
    }

    /// Renews the lease with id `lease` (for callers who kept only the id).
    ///
    /// # Errors
    /// [`LockError::Lost`] when it is gone; [`LockError::Backend`] when the service fails.
    pub async fn renew_id(&self, lease: &str, ttl: Duration) -> Result<Lease, LockError> {
        self.renew_until(lease, &[], ttl, Instant::now() + ttl).await
    }

    async fn renew_until(
        &self,
        lease: &str,
        ids: &[LockId],
        ttl: Duration,
        deadline: Instant,
    ) -> Result<Lease, LockError> {
        let body = v2::RenewRequest {
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        };
        let path = format!("v2/leases/{lease}/renew");
        self.retrying(deadline, || Ok(self.request(Method::POST, &path)?.json(&body)))
            .await
            .map_err(|e| for_lease(e, lease, ids))
    }

    /// Releases the lease with id `lease`; whether it was still held.
    ///
    /// # Errors
    /// [`LockError::Backend`] when the service cannot be reached.
    pub async fn release_id(&self, lease: &str) -> Result<bool, LockError> {
        let path = format!("v2/leases/{lease}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let answer: serde_json::Value = self
            .retrying(deadline, || self.request(Method::DELETE, &path))
            .await
            .map_err(|e| for_lease(e, lease, &[]))?;
        Ok(answer
            .get("released")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false))
    }

    /// One streamed acquire: the lease, the failure, or a transient break.
    async fn acquire_once(
        &self,
        req: &LockRequest,
        wait: Duration,
        progress: &Progress<'_>,
    ) -> Result<Outcome<Lease>, LockError> {
        let body = v2::AcquireRequest {
            ids: req.ids.iter().map(ToString::to_string).collect(),
            ttl_ms: u64::try_from(req.ttl.as_millis()).unwrap_or(u64::MAX),
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            owner: req.owner.clone(),
        };
        let response = match self
            .request(Method::POST, "v2/leases")?
            .header(reqwest::header::ACCEPT, "application/x-ndjson")
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_request() => return Ok(Outcome::Transient(describe(&e))),
            Err(e) => return Err(self.failed_request(e)),
        };
        let status = response.status();
        if !status.is_success() {
            let err = read_error(response).await;
            if is_transient(status) {
                return Ok(Outcome::Transient(err.message));
            }
            return Err(self.event_error(req, err));
        }
        let mut chunks = response.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let event: v2::AcquireEvent = serde_json::from_slice(&line).map_err(|e| {
                    self.fail(format!(
                        "the Lock Manager sent a line this client does not understand: {e}"
                    ))
                })?;
                match event {
                    v2::AcquireEvent::Queued(p) => progress(&p),
                    v2::AcquireEvent::Acquired { lease } => {
                        // Read the answer to its end (it ends right after the lease): a
                        // connection closed before that tells the service the lease never
                        // arrived, and it releases it.
                        let _ = tokio::time::timeout(Duration::from_secs(2), async {
                            while let Some(Ok(_)) = chunks.next().await {}
                        })
                        .await;
                        return Ok(Outcome::Done(lease));
                    }
                    v2::AcquireEvent::Failed(e) if is_transient_code(&e) => return Ok(Outcome::Transient(e.message)),
                    v2::AcquireEvent::Failed(e) => return Err(self.event_error(req, e)),
                }
            }
            if buf.len() > MAX_EVENT_LINE_BYTES {
                return Err(self.fail(format!(
                    "the Lock Manager sent more than {} KiB without ending a line, which it never does (hint: is this URL a Lock Manager's?)",
                    MAX_EVENT_LINE_BYTES >> 10
                )));
            }
            match chunks.next().await {
                Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
                Some(Err(e)) => return Ok(Outcome::Transient(format!("the answer broke off: {}", describe(&e)))),
                None => return Ok(Outcome::Transient("the answer ended without a lease".into())),
            }
        }
    }

    fn event_error(&self, req: &LockRequest, e: ApiError) -> LockError {
        if e.code == "busy" {
            return LockError::Busy {
                wanted: req.ids.clone(),
                holders: e
                    .holders
                    .into_iter()
                    .map(|h| Holder {
                        id: h.id,
                        owner: h.owner,
                        expires_at_ms: h.expires_at_ms,
                    })
                    .collect(),
                waited: req.wait,
            };
        }
        self.api_error(e)
    }
}

/// `e` naming the lease it is about (the service's answer does not).
fn for_lease(e: LockError, lease: &str, ids: &[LockId]) -> LockError {
    match e {
        LockError::Lost { .. } => LockError::Lost {
            lease: lease.to_owned(),
            ids: ids.to_vec(),
        },
        LockError::NotHolder { .. } => LockError::NotHolder {
            lease: lease.to_owned(),
        },
        e => e,
    }
}

fn is_transient(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

fn is_transient_code(e: &ApiError) -> bool {
    matches!(e.code.as_str(), "database_unavailable" | "shutting_down")
}

/// An error's message with its causes (reqwest's own says little), without the URL's secrets.
fn describe(e: &reqwest::Error) -> String {
    let mut out = match e.url() {
        Some(url) => e.to_string().replace(url.as_str(), "the Lock Manager"),
        None => e.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn read_error(response: reqwest::Response) -> ApiError {
    let status = response.status();
    // An error answer is a small JSON object; a larger body is not one.
    let text = pit_core::http::error_text(response, 64 * 1024).await;
    serde_json::from_str::<ApiError>(&text).unwrap_or_else(|_| {
        let mut snippet: String = text.chars().take(200).collect();
        if snippet.is_empty() {
            snippet = status.canonical_reason().unwrap_or("no reason").to_owned();
        }
        ApiError::new(status.as_u16(), "http", format!("HTTP {status}: {snippet}"))
    })
}

/// Exponential backoff from 50 ms to 2 s with full jitter.
struct Backoff {
    ceiling: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            ceiling: Duration::from_millis(50),
        }
    }

    fn next(&mut self) -> Duration {
        let d = self.ceiling.mul_f64(0.5 + fastrand::f64() * 0.5);
        self.ceiling = (self.ceiling * 2).min(Duration::from_secs(2));
        d
    }
}

#[async_trait]
impl LockStore for HttpLockStore {
    async fn acquire(&self, req: &LockRequest, cancel: &CancellationToken) -> Result<Lease, LockError> {
        self.acquire_with_progress(req, cancel, &|_| {}).await
    }

    async fn acquire_with_progress(
        &self,
        req: &LockRequest,
        cancel: &CancellationToken,
        progress: &Progress<'_>,
    ) -> Result<Lease, LockError> {
        pit_core::lock::validate(req)?;
        let start = Instant::now();
        let deadline = start + req.wait;
        let mut backoff = Backoff::new();
        let attempt = async {
            loop {
                // The service waits a day at most; a longer wait (the existing toolkit's
                // pitfiles say `48h`) asks again for what is left.
                let left = deadline.saturating_duration_since(Instant::now());
                let wait = left.min(Duration::from_millis(crate::api::MAX_TTL_MS));
                let outcome = match self.acquire_once(req, wait, progress).await {
                    Err(LockError::Busy { .. }) if wait < left => continue,
                    outcome => outcome?,
                };
                match outcome {
                    Outcome::Done(lease) => return Ok(lease),
                    Outcome::Transient(why) => {
                        let pause = backoff.next();
                        // Even a request that does not wait gets a few tries.
                        if Instant::now() + pause >= deadline.max(start + Duration::from_secs(2)) {
                            return Err(self.fail(why));
                        }
                        tracing::debug!(reason = %why, ?pause, "acquire failed; trying again");
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        };
        tokio::select! {
            result = attempt => result,
            // Dropping the request closes the connection; the service takes the request out of
            // its queue (and releases a lease that could not be delivered).
            () = cancel.cancelled() => Err(LockError::Cancelled { wanted: req.ids.clone() }),
        }
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        // Worth retrying until the lease would have run out anyway.
        let left = Duration::from_millis(lease.expires_at_ms.saturating_sub(pit_core::lock::now_ms()));
        let deadline = Instant::now() + left.max(Duration::from_secs(1));
        self.renew_until(&lease.id, &lease.ids, ttl, deadline).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        self.release_id(&lease.id).await.map(drop)
    }
}
