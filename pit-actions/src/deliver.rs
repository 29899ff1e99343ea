//! Sending a message over HTTP: a timeout per call, retries with jittered backoff on connection
//! errors, 429 (honouring `Retry-After`) and 5xx, never on other 4xx. Errors never show the URL
//! (a webhook URL is a secret).

use std::time::Duration;

use crate::secret::Secret;

/// How a message is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The longest one call may take.
    pub timeout: Duration,
    /// How many calls at most.
    pub attempts: u32,
    /// The first pause between calls; it doubles up to [`MAX_BACKOFF`], with jitter (half to
    /// all of it).
    pub backoff: Duration,
    /// The longest pause a `Retry-After` may ask for; longer ones give up.
    pub max_retry_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// The longest pause between calls the doubling reaches (a `Retry-After` may ask for longer,
/// up to [`Policy::max_retry_after`]).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A message that was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The receiver's status.
    pub status: u16,
    /// Calls made.
    pub attempts: u32,
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The receiver refused it (a 4xx other than 429, or the last 429/5xx).
    #[error("the receiver answered HTTP {status} after {attempts} call(s){}", snippet(body))]
    Refused {
        /// Its status.
        status: u16,
        /// The start of its answer.
        body: String,
        /// Calls made.
        attempts: u32,
    },
    /// It could not be reached, or did not answer in time, on every call.
    #[error("the receiver could not be reached after {attempts} call(s): {reason}")]
    Unreachable {
        /// What went wrong on the last call (never the URL).
        reason: String,
        /// Calls made.
        attempts: u32,
    },
    /// It asked to wait longer than allowed.
    #[error("the receiver asked to retry after {}s, longer than the {}s allowed", .asked.as_secs(), .allowed.as_secs())]
    TooLongRetryAfter {
        /// What it asked for.
        asked: Duration,
        /// The most allowed.
        allowed: Duration,
    },
}

fn snippet(body: &str) -> String {
    let s: String = body.chars().take(200).collect();
    if s.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", s.trim())
    }
}

/// What an HTTP failure was, in words without the URL.
fn reason(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {}s", timeout.as_secs_f64())
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        let text = pit_core::engine::error_chain(e);
        match e.url() {
            Some(url) => text.replace(url.as_str(), "the receiver"),
            None => text,
        }
    }
}

/// How much of a refusal's body is kept (its first 200 characters are shown).
const ERROR_BODY_BYTES: usize = 4096;

/// How long a `Retry-After` value asks to wait: seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// POSTs `body` (JSON) to `url` with `headers`, as `policy` says.
///
/// # Errors
/// [`DeliveryError`], without the URL.
pub async fn post(
    client: &reqwest::Client,
    url: &Secret,
    headers: &[(String, String)],
    body: &[u8],
    policy: &Policy,
) -> Result<Delivered, DeliveryError> {
    let mut pause = policy.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut req = client
            .post(url.expose())
            .timeout(policy.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let last = attempt >= policy.attempts;
        let wait = match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return Ok(Delivered {
                        status: status.as_u16(),
                        attempts: attempt,
                    });
                }
                let asked = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after);
                let text = pit_core::http::error_text(resp, ERROR_BODY_BYTES).await;
                let retryable = status.as_u16() == 429 || status.is_server_error();
                if !retryable || last {
                    return Err(DeliveryError::Refused {
                        status: status.as_u16(),
                        body: text,
                        attempts: attempt,
                    });
                }
                match asked {
                    Some(asked) if asked > policy.max_retry_after => {
                        return Err(DeliveryError::TooLongRetryAfter {
                            asked,
                            allowed: policy.max_retry_after,
                        })
                    }
                    Some(asked) => asked,
                    None => jitter(pause),
                }
            }
            Err(e) => {
                if last {
                    return Err(DeliveryError::Unreachable {
                        reason: reason(&e, policy.timeout),
                        attempts: attempt,
                    });
                }
                tracing::debug!(attempt, reason = %reason(&e, policy.timeout), "delivery failed; trying again");
                jitter(pause)
            }
        };
        tokio::time::sleep(wait).await;
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

/// Half to all of `d`.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        let d = retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(retry_after("soon"), None);
    }
}
