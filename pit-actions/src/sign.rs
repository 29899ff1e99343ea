//! Signatures per the Standard Webhooks convention (<https://www.standardwebhooks.com>):
//! `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`. A secret written `whsec_<base64>` is that key; any other is used as
//! its bytes.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// The key bytes of `secret`.
fn key(secret: &Secret) -> Vec<u8> {
    let s = secret.expose();
    s.strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_else(|| s.as_bytes().to_vec())
}

/// The signature of `body` sent as message `id` at `timestamp` (Unix seconds): `v1,<base64>`.
///
/// ```
/// use pit_actions::{secret::Secret, sign::signature};
/// // The example of the Standard Webhooks specification.
/// let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
/// let body = br#"{"test": 2432232314}"#;
/// assert_eq!(signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
///            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
/// ```
pub fn signature(secret: &Secret, id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The three headers for `body`, with a new message id and the current time.
pub fn headers(secret: &Secret, body: &[u8]) -> Vec<(String, String)> {
    let id = format!("msg_{}", ulid::Ulid::new());
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    vec![
        ("webhook-signature".to_owned(), signature(secret, &id, timestamp, body)),
        ("webhook-id".to_owned(), id),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
    ]
}
