//! The `elasticsearch` module: deletes stale indices of Elasticsearch or OpenSearch over their
//! REST API with reqwest (three calls: `GET /`, `GET /_cat/indices`, `DELETE /<index>`).
//! Indices whose names start with `.` (system and hidden indices, data streams' backing
//! indices) are never touched.
//!
//! Several nodes may be given: each request goes to the first that answers. Credentials go in
//! a Basic `Authorization` header, never in a URL, so no error message can show them;
//! `https://user:password@host` is split into the two.

use async_trait::async_trait;
use reqwest::{Client, Method, StatusCode, Url};
use serde::Deserialize;

use crate::{Module, ModuleError, Resource};

/// The module's name in `--enabled-modules`.
pub const NAME: &str = "elasticsearch";

/// A user and password for Basic authentication.
#[derive(Clone)]
pub struct BasicAuth {
    /// The user.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicAuth({}, password: REDACTED)", self.username)
    }
}

/// An Elasticsearch or OpenSearch cluster whose stale indices are deleted.
pub struct Elasticsearch {
    client: Client,
    nodes: Vec<Url>,
    auth: Option<BasicAuth>,
}

impl std::fmt::Debug for Elasticsearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elasticsearch")
            .field("nodes", &self.nodes.iter().map(Url::as_str).collect::<Vec<_>>())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

fn failed(message: impl Into<String>) -> ModuleError {
    ModuleError {
        module: NAME.into(),
        message: message.into(),
    }
}

/// The part of an error body worth showing: `error.type: error.reason`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorDetail {
    Structured {
        #[serde(rename = "type")]
        kind: String,
        reason: Option<String>,
    },
    Text(String),
}

#[derive(Deserialize)]
struct CatIndex {
    index: String,
}

/// Whether `name` is one index, never an expression: `_all`, `*`, `-x` (an exclusion) and
/// comma lists would each delete more than one index.
fn is_literal_index(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['_', '-', '+'])
        && !name.contains(['*', '?', ',', '/', '\\', ' ', '"', '<', '>', '|', '#', ':'])
}

impl Elasticsearch {
    /// The cluster at `urls` (comma separated allowed: `http://n1:9200,http://n2:9200`), with
    /// `auth` when given, trusting the extra root certificates in `ca_pem` (PEM) besides the
    /// system's. Checks that a node answers and accepts the credentials.
    ///
    /// # Errors
    /// [`ModuleError`] when a URL cannot be read, the certificate is not PEM, or no node
    /// answers successfully.
    pub async fn connect(urls: &str, auth: Option<BasicAuth>, ca_pem: Option<&[u8]>) -> Result<Self, ModuleError> {
        let mut auth = auth;
        let mut nodes = Vec::new();
        for raw in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let mut url = Url::parse(raw).map_err(|e| {
                // The URL may carry a password: name the problem, not the value.
                failed(format!("a node URL cannot be read ({e}): give `http[s]://host:port`"))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(failed(format!("`{}` is not an http or https URL", url.scheme())));
            }
            if !url.username().is_empty() {
                auth.get_or_insert_with(|| BasicAuth {
                    username: url.username().to_owned(),
                    password: url.password().unwrap_or_default().to_owned(),
                });
                let _ = url.set_username("");
                let _ = url.set_password(None);
            }
            nodes.push(url);
        }
        if nodes.is_empty() {
            return Err(failed("no node URL given"));
        }
        let mut builder = Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("pit-brownie/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| failed(format!("the CA certificate is not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(failed(
                    "the CA certificate is not PEM: no `-----BEGIN CERTIFICATE-----` block found",
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| ModuleError::of(NAME, &e))?;
        let this = Self { client, nodes, auth };
        this.call(Method::GET, &[], &[]).await?;
        Ok(this)
    }

    /// Sends `method` to `path` (segments, encoded) with `query` on the first node that
    /// answers, and returns the body of a successful response.
    async fn call(&self, method: Method, path: &[&str], query: &[(&str, &str)]) -> Result<Vec<u8>, ModuleError> {
        let mut last = None;
        for node in &self.nodes {
            let mut url = node.clone();
            {
                let Ok(mut segments) = url.path_segments_mut() else {
                    return Err(failed(format!("{node} cannot take a path")));
                };
                segments.pop_if_empty().extend(path);
            }
            if !query.is_empty() {
                url.query_pairs_mut().extend_pairs(query);
            }
            let mut request = self.client.request(method.clone(), url);
            if let Some(a) = &self.auth {
                request = request.basic_auth(&a.username, Some(&a.password));
            }
            let response = match request.send().await {
                Ok(r) => r,
                // Not reached, or no answer: the next node may do.
                Err(e) => {
                    last = Some(failed(format!(
                        "{node}: {}",
                        pit_core::engine::error_chain(&e.without_url())
                    )));
                    continue;
                }
            };
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| ModuleError::of(NAME, &e.without_url()))?;
            if status.is_success() {
                return Ok(body.to_vec());
            }
            return Err(failed(describe(status, &body)));
        }
        Err(last.unwrap_or_else(|| failed("no node answered")))
    }
}

/// `HTTP 403 Forbidden: security_exception: no permissions for [indices:admin/delete]`.
fn describe(status: StatusCode, body: &[u8]) -> String {
    let detail = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: ErrorDetail::Structured { kind, reason },
        }) => format!("{kind}: {}", reason.unwrap_or_default()),
        Ok(ErrorBody {
            error: ErrorDetail::Text(text),
        }) => text,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    };
    let hint = match status {
        StatusCode::UNAUTHORIZED => " (hint: check --elasticsearch-username and the password)",
        StatusCode::FORBIDDEN => " (hint: the user needs the right to list and delete indices)",
        _ => "",
    };
    format!("HTTP {status}: {}{hint}", detail.trim())
}

#[async_trait]
impl Module for Elasticsearch {
    fn name(&self) -> &str {
        NAME
    }

    async fn list(&self) -> Result<Vec<Resource>, ModuleError> {
        let body = self
            .call(
                Method::GET,
                &["_cat", "indices"],
                &[("format", "json"), ("h", "index"), ("expand_wildcards", "all")],
            )
            .await?;
        let indices: Vec<CatIndex> =
            serde_json::from_slice(&body).map_err(|e| failed(format!("the index list cannot be read: {e}")))?;
        let mut out: Vec<Resource> = indices
            .into_iter()
            .map(|i| Resource {
                protected: if i.index.starts_with('.') {
                    Some("a system or hidden index (its name starts with `.`)".to_owned())
                } else if !is_literal_index(&i.index) {
                    Some("not a plain index name".to_owned())
                } else {
                    None
                },
                name: i.index,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete(&self, name: &str) -> Result<(), String> {
        if !is_literal_index(name) {
            return Err(format!("`{name}` is not a plain index name; refusing to delete it"));
        }
        // No wildcard may widen the request, whatever the cluster's settings.
        self.call(
            Method::DELETE,
            &[name],
            &[("expand_wildcards", "none"), ("allow_no_indices", "false")],
        )
        .await
        .map(drop)
        .map_err(|e| e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_indices_are_literal() {
        for ok in ["orders_pit_a_ts20240101000000", "logs-2024.01.01", "a"] {
            assert!(is_literal_index(ok), "{ok}");
        }
        for bad in ["", "_all", "*", "pit*", "-keep", "a,b", "a/b", "x:y", "a b"] {
            assert!(!is_literal_index(bad), "{bad}");
        }
    }

    #[test]
    fn errors_show_the_type_and_reason_and_a_hint() {
        let body = br#"{"error":{"type":"security_exception","reason":"no permissions"},"status":403}"#;
        let text = describe(StatusCode::FORBIDDEN, body);
        assert!(
            text.starts_with("HTTP 403 Forbidden: security_exception: no permissions"),
            "{text}"
        );
        assert!(text.contains("hint"), "{text}");
        assert_eq!(
            describe(StatusCode::BAD_GATEWAY, b"upstream"),
            "HTTP 502 Bad Gateway: upstream"
        );
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let auth = BasicAuth {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
