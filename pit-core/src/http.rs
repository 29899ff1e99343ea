//! Reading HTTP answers with a bound: what another program sends (a test app, a webhook
//! receiver, a Lock Manager) never fills PIT's memory.

/// Reads at most `limit` bytes of `response`'s body: the bytes, and whether the body had more.
/// Reading stops at the limit; the rest is never read.
///
/// # Errors
/// The body could not be read (the connection broke, the answer timed out).
///
/// ```no_run
/// # async fn demo(response: reqwest::Response) -> Result<(), reqwest::Error> {
/// let (start, cut) = pit_core::http::read_at_most(response, 4096).await?;
/// println!("{}{}", String::from_utf8_lossy(&start), if cut { "…" } else { "" });
/// # Ok(()) }
/// ```
pub async fn read_at_most(mut response: reqwest::Response, limit: usize) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// The start of an error answer's body as text, at most `limit` bytes (bytes that are not
/// UTF-8 replaced, `…` where it was cut); empty when it cannot be read.
pub async fn error_text(response: reqwest::Response, limit: usize) -> String {
    match read_at_most(response, limit).await {
        Ok((bytes, cut)) => {
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if cut {
                text.push('…');
            }
            text
        }
        Err(_) => String::new(),
    }
}
