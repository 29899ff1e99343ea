//! Who may call: bearer tokens, their principals, and the checks on each route.

#[allow(clippy::wildcard_imports)] // the service's shared imports
use super::*;

/// Who may call the service.
///
/// Each entry is a bearer token, or `principal:token` to name the identity its leases belong
/// to. A token without a name is its own principal, `token-` and the first 12 hex digits of
/// its SHA-256 digest (never the token itself). Several tokens may share a principal: they
/// may then renew and release each other's leases.
#[derive(Clone, Default)]
pub struct Auth {
    /// Tokens for the v1 and v2 lock routes.
    pub tokens: Vec<String>,
    /// Tokens for those and the admin routes.
    pub admin_tokens: Vec<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .field("admin_tokens", &self.admin_tokens.len())
            .finish()
    }
}

impl Auth {
    /// With no token at all, the service is open, as the existing toolkit's is.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.admin_tokens.is_empty()
    }

    /// Who a request with bearer token `given` is: `None` when no configured token matches.
    /// Every configured token is compared, each in constant time.
    ///
    /// ```
    /// use pit_lock::server::Auth;
    /// let auth = Auth { tokens: vec!["ci:s3cret".into(), "plain".into()], admin_tokens: vec!["root".into()] };
    /// let ci = auth.identify(b"s3cret").unwrap();
    /// assert_eq!((ci.principal.as_deref(), ci.admin), (Some("ci"), false));
    /// assert!(auth.identify(b"plain").unwrap().principal.unwrap().starts_with("token-"));
    /// assert!(auth.identify(b"root").unwrap().admin);
    /// assert!(auth.identify(b"ci:s3cret").is_none());
    /// ```
    pub fn identify(&self, given: &[u8]) -> Option<Caller> {
        let mut found: Option<Caller> = None;
        for (entries, admin) in [(&self.admin_tokens, true), (&self.tokens, false)] {
            for entry in entries {
                let (principal, secret) = split_token(entry);
                if bool::from(secret.as_bytes().ct_eq(given)) && found.is_none() {
                    found = Some(Caller {
                        principal: Some(principal.map_or_else(|| token_principal(secret), str::to_owned)),
                        admin,
                    });
                }
            }
        }
        found
    }

    pub(super) fn mode(&self) -> &'static str {
        if self.is_open() {
            "open"
        } else {
            "bearer-token"
        }
    }
}

/// A token entry's principal (before the first `:`, when there is one) and secret.
pub(super) fn split_token(entry: &str) -> (Option<&str>, &str) {
    match entry.split_once(':') {
        Some((principal, secret)) if !principal.is_empty() && !secret.is_empty() => (Some(principal), secret),
        _ => (None, entry),
    }
}

/// The principal of a token configured without a name: a short digest, never the token.
pub(super) fn token_principal(secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("token-{hex}")
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is matched without
/// regard to case (RFC 7235).
pub(super) fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| token.trim_ascii())
}

pub(super) fn unauthorized(message: &str) -> Response {
    let mut r = Failure(ApiError::new(401, "unauthorized", message)).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    r
}

/// Who the request comes from, or the 401 answer.
#[allow(clippy::result_large_err)] // called once per request, the answer is sent at once
pub(super) fn caller_of(app: &AppState, req: &Request, missing: &str) -> Result<Caller, Response> {
    if app.auth.is_open() {
        return Ok(Caller::anyone());
    }
    match bearer(req.headers()) {
        None => Err(unauthorized(missing)),
        Some(t) => app
            .auth
            .identify(t)
            .ok_or_else(|| unauthorized("the bearer token is not one this Lock Manager accepts")),
    }
}

pub(super) async fn require_user(State(app): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    match caller_of(
        &app,
        &req,
        "this Lock Manager needs `Authorization: Bearer <token>` (PIT_LOCK_TOKEN for pit)",
    ) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(r) => r,
    }
}

pub(super) async fn require_admin(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match caller_of(&app, &req, "admin routes need `Authorization: Bearer <admin token>`") {
        Ok(caller) if caller.admin => next.run(req).await,
        Ok(_) => Failure(ApiError::new(
            403,
            "forbidden",
            "this route needs an admin token; yours is a user token",
        ))
        .into_response(),
        Err(r) => r,
    }
}
