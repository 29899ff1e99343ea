//! The Test Runner client (and `pit_core::http`) against a misbehaving test app on loopback:
//! answers too large, or sent without end, and answers that are not the protocol's JSON. The app
//! is a raw TCP server here because the faults are in the bytes (a false Content-Length, a body
//! that never ends).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pit_core::pitfile::SuiteId;
use pit_core::runner::{HttpTestRunnerClient, RunnerError, TestRunnerClient, MAX_ANSWER_BYTES, MAX_REPORT_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the app sends after the status line.
#[derive(Clone, Copy)]
enum Answer {
    /// A Content-Length over the report limit, and then nothing.
    DeclaresHuge,
    /// A chunked body of JSON-looking bytes that never ends.
    Endless,
    /// A whole answer that is not JSON.
    NotJson,
}

/// Reads one request's head.
async fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
}

/// A test app answering every request with `answer`; the second value counts the body bytes
/// it managed to send.
async fn app(answer: Answer) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let sent = counter.clone();
            tokio::spawn(async move {
                read_head(&mut stream).await;
                match answer {
                    Answer::DeclaresHuge => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            MAX_REPORT_BYTES + 1
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        // Hold the connection: the client must not wait for the body.
                        let _ = stream.read(&mut [0u8; 1]).await;
                    }
                    Answer::Endless => {
                        let head =
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                        if stream.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = format!("{:x}\r\n{}\r\n", 4096, "[0,".repeat(4096 / 3) + "0");
                        let body = 4096 / 3 * 3 + 1;
                        assert_eq!(body, 4096);
                        while stream.write_all(chunk.as_bytes()).await.is_ok() {
                            sent.fetch_add(body, Ordering::Relaxed);
                        }
                    }
                    Answer::NotJson => {
                        let body = "{\"sessionId\": \"s1\", oops";
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                    }
                }
            });
        }
    });
    (url, sent)
}

#[tokio::test]
async fn a_report_declared_larger_than_the_limit_is_refused_before_its_body() {
    let (url, _) = app(Answer::DeclaresHuge).await;
    let err = HttpTestRunnerClient::new(&url).report("s1").await.unwrap_err();
    assert!(
        matches!(err, RunnerError::TooLarge { what: "GET /reports", limit, .. } if limit == MAX_REPORT_BYTES),
        "{err:?}"
    );
    assert!(err.to_string().contains("more than 256 MiB"), "{err}");
    assert!(err.to_string().contains("hint: a report this large"), "{err}");
    assert!(!err.is_transient(), "a status poll would not ask again");
}

#[tokio::test]
async fn an_answer_without_end_is_cut_at_the_limit() {
    let (url, sent) = app(Answer::Endless).await;
    let err = HttpTestRunnerClient::new(&url).status("s1", None).await.unwrap_err();
    assert!(
        matches!(err, RunnerError::TooLarge { what: "GET /status", limit, .. } if limit == MAX_ANSWER_BYTES),
        "{err:?}"
    );
    assert!(err.to_string().contains("more than 1 MiB"), "{err}");
    assert!(err.to_string().contains("is this URL the test app's?"), "{err}");
    // The client stopped reading: the app could send the limit and what the sockets buffer,
    // not more.
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent >= MAX_ANSWER_BYTES, "{sent}");
    assert!(sent < MAX_ANSWER_BYTES + (32 << 20), "{sent} bytes went out");
}

#[tokio::test]
async fn an_answer_that_is_not_json_says_where() {
    let (url, _) = app(Answer::NotJson).await;
    let err = HttpTestRunnerClient::new(&url)
        .start(&SuiteId::from("s"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RunnerError::Invalid {
                what: "POST /start",
                ..
            }
        ),
        "{err:?}"
    );
    let chain = pit_core::engine::error_chain(&err);
    assert!(chain.contains("not the protocol's JSON"), "{chain}");
    assert!(chain.contains("line 1 column"), "{chain}");
}

#[tokio::test]
async fn the_start_of_an_endless_error_body_is_read_and_marked_cut() {
    let (url, _) = app(Answer::Endless).await;
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(pit_core::http::error_text(response, 10).await, "[0,[0,[0,[…");
    let (url, _) = app(Answer::NotJson).await;
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(
        pit_core::http::error_text(response, 1024).await,
        "{\"sessionId\": \"s1\", oops",
        "a short body whole, unmarked"
    );
}
