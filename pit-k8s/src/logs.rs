//! `logTailing` on Kubernetes: follows the containers of a component's pods while the suite
//! runs, as `kubectl logs -f` would, through the API server's `pods/log` subresource.
//!
//! A pod belongs to a component when one of its labels `app.kubernetes.io/name`,
//! `app.kubernetes.io/component` or `app` is the component's id (the labels Helm charts and
//! `kubectl create deployment` set). Pods are found by watching the namespace, so pods that
//! start later (a rollout, a restart) are followed too.

use std::collections::HashSet;
use std::path::Path;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder, FramedRead};
use tokio_util::compat::FuturesAsyncReadCompatExt;
use tokio_util::sync::CancellationToken;

/// The longest log line passed on: 1 MiB. A longer one is replaced by a note and the lines
/// after it still come, so a container printing without newlines cannot fill PIT's memory.
const MAX_LOG_LINE: usize = 1 << 20;

/// The labels that tie a pod to a component, in the order they are looked at.
pub const COMPONENT_LABELS: [&str; 3] = ["app.kubernetes.io/name", "app.kubernetes.io/component", "app"];

/// Whether `pod` belongs to `component` (see [`COMPONENT_LABELS`]).
#[must_use]
pub fn belongs_to(pod: &Pod, component: &str) -> bool {
    let labels = pod.labels();
    COMPONENT_LABELS
        .iter()
        .any(|l| labels.get(*l).is_some_and(|v| v == component))
}

/// The containers of `pod` to follow: `container` when given (if the pod has it), else all.
fn containers(pod: &Pod, container: Option<&str>) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .filter(|c| container.is_none_or(|want| want == c))
        .collect()
}

/// Whether `container` of `pod` has started, so that its log can be read.
fn started(pod: &Pod, container: &str) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .any(|c| {
            c.name == container
                && c.state
                    .as_ref()
                    .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
}

/// Follows the logs of `component`'s pods in `ns` until `stop`: each line goes to `out` as
/// `pod/container| line` and is appended to `file`. Returns when `stop` is cancelled or `out` is
/// closed.
///
/// # Errors
/// When `file` cannot be written, or the namespace cannot be watched at all.
pub async fn follow(
    client: &Client,
    ns: &str,
    component: &str,
    container: Option<&str>,
    file: &Path,
    out: UnboundedSender<String>,
    stop: &CancellationToken,
) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut followed: HashSet<(String, String)> = HashSet::new();
    let mut followers = JoinSet::new();
    let mut events = std::pin::pin!(watcher(pods.clone(), watcher::Config::default()).touched_objects());
    let mut log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .await?;
    let mut watching = true;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            line = lines_rx.recv() => {
                // Never None: `lines_tx` lives as long as this loop.
                let Some(line) = line else { continue };
                log.write_all(format!("{line}\n").as_bytes()).await?;
                if out.send(line).is_err() {
                    break;
                }
            }
            event = events.next(), if watching => match event {
                Some(Ok(pod)) if belongs_to(&pod, component) => {
                    for c in containers(&pod, container) {
                        let key = (pod.uid().unwrap_or_default(), c.clone());
                        if !started(&pod, &c) || !followed.insert(key) {
                            continue;
                        }
                        let (pods, name, tx, stop) = (pods.clone(), pod.name_any(), lines_tx.clone(), stop.clone());
                        followers.spawn(async move {
                            tokio::select! {
                                () = stop.cancelled() => {}
                                () = follow_container(&pods, &name, &c, &tx) => {}
                            }
                        });
                    }
                }
                Some(Ok(_)) => {}
                // The watcher retries by itself; say why, once per error.
                Some(Err(e)) => tracing::warn!(namespace = ns, component, error = %e, "watching pods for log tailing"),
                None => watching = false,
            },
        }
    }
    followers.shutdown().await;
    // What the followers sent before they stopped still reaches the file.
    while let Ok(line) = lines_rx.try_recv() {
        log.write_all(format!("{line}\n").as_bytes()).await?;
        let _ = out.send(line);
    }
    log.flush().await
}

/// A container's log as lines: without their `\r\n` or `\n`, bytes that are not UTF-8
/// replaced (a binary write does not end the stream), and a line longer than `max` bytes
/// replaced by a note.
fn log_lines(log: impl futures::AsyncRead + Unpin, max: usize) -> impl Stream<Item = Result<String, std::io::Error>> {
    FramedRead::new(
        log.compat(),
        LogLines(AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), max)),
    )
}

/// [`AnyDelimiterCodec`] with its "too long" error turned into a note: a [`FramedRead`] ends
/// at a decoder's error, and the codec goes on with the next line after it.
struct LogLines(AnyDelimiterCodec);

impl LogLines {
    fn line(&self, decoded: Result<Option<bytes::Bytes>, AnyDelimiterCodecError>) -> std::io::Result<Option<String>> {
        match decoded {
            Ok(line) => Ok(line.map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(&l)).into_owned())),
            Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => Ok(Some(format!(
                "(a line of more than {} KiB left out)",
                self.0.max_length() >> 10
            ))),
            Err(AnyDelimiterCodecError::Io(e)) => Err(e),
        }
    }
}

impl Decoder for LogLines {
    type Item = String;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut bytes::BytesMut) -> std::io::Result<Option<String>> {
        let decoded = self.0.decode(buf);
        self.line(decoded)
    }

    fn decode_eof(&mut self, buf: &mut bytes::BytesMut) -> std::io::Result<Option<String>> {
        let decoded = self.0.decode_eof(buf);
        self.line(decoded)
    }
}

/// Sends the lines of one container's log until it ends (or cannot be read; then says why in
/// one line).
async fn follow_container(pods: &Api<Pod>, pod: &str, container: &str, out: &UnboundedSender<String>) {
    let params = LogParams {
        container: Some(container.to_owned()),
        follow: true,
        ..LogParams::default()
    };
    let prefix = format!("{pod}/{container}|");
    match pods.log_stream(pod, &params).await {
        Ok(stream) => {
            let mut lines = std::pin::pin!(log_lines(stream, MAX_LOG_LINE));
            loop {
                match lines.try_next().await {
                    Ok(Some(line)) => {
                        if out.send(format!("{prefix} {line}")).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = out.send(format!("{prefix} (log stream broken: {e})"));
                        return;
                    }
                }
            }
        }
        Err(e) => {
            let _ = out.send(format!("{prefix} (log unavailable: {})", crate::error_chain(&e)));
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::log_lines;

    #[tokio::test]
    async fn a_long_line_or_bytes_that_are_not_utf8_never_end_the_log() {
        let mut log = b"first\r\n".to_vec();
        log.extend(vec![b'a'; 2048]);
        log.push(b'\n');
        log.extend(vec![b'b'; 5000]);
        log.extend(b"\nbinary \xff\xfe here\nlast, without a newline");
        let lines: Vec<String> = log_lines(futures::io::Cursor::new(log), 2048)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            lines,
            [
                "first".to_owned(),
                "a".repeat(2048),
                "(a line of more than 2 KiB left out)".to_owned(),
                "binary \u{fffd}\u{fffd} here".to_owned(),
                "last, without a newline".to_owned(),
            ]
        );
    }
}
