//! The Lock Manager under hostile or unlucky callers (issue 13): lease ownership per token,
//! input the database cannot store, slow and idle clients, secrets in URLs and logs.
//! Against a real PostgreSQL (`DATABASE_URL`, as `scripts/test` sets it).

use pit_lock::ServiceStore as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pit_core::lock::{LockError, LockStore};
use pit_core::testing::lock_request;
use pit_lock::server::{start, AppState, Auth, Timeouts};
use pit_lock::PgLockStore;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[macro_use]
mod common;
use common::{client_with, fresh_database, service_on, store_on, Kind};

/// One request with `token`; the status and the JSON answer.
async fn call(addr: std::net::SocketAddr, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("http://{addr}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn two_users_and_an_admin() -> Auth {
    Auth {
        // Alice's token names its principal; Bob's is its own.
        tokens: vec!["alice:tok-alice".into(), "tok-bob".into()],
        admin_tokens: vec!["ops:tok-admin".into()],
    }
}

async fn another_users_token_can_neither_renew_nor_release_a_lease_nor_see_its_id(kind: Kind) {
    let (running, _) = service_on(kind, "owner_v2", two_users_and_an_admin()).await;
    let a = running.addr;
    let alice = client_with(&running, Some("tok-alice"));
    let bob = client_with(&running, Some("tok-bob"));
    let never = CancellationToken::new();
    let lease = alice
        .acquire(&lock_request(&["db"], "alice-run", 0, 60_000), &never)
        .await
        .unwrap();

    // Bob sees that `db` is held, and by whom, but not the lease id.
    let list = bob.list().await.unwrap();
    assert_eq!(list.locks.len(), 1);
    assert_eq!(list.locks[0].lease, None, "{list:?}");
    assert_eq!(list.locks[0].principal.as_deref(), Some("alice"));
    assert_eq!(
        alice.list().await.unwrap().locks[0].lease.as_deref(),
        Some(lease.id.as_str())
    );

    // Knowing it anyway, Bob can neither extend nor end it.
    let (status, v) = call(
        a,
        "POST",
        &format!("/v2/leases/{}/renew", lease.id),
        "tok-bob",
        Some(json!({"ttlMs": 86_400_000})),
    )
    .await;
    assert_eq!((status, v["code"].as_str()), (403, Some("not_lease_holder")), "{v}");
    let (status, v) = call(a, "DELETE", &format!("/v2/leases/{}", lease.id), "tok-bob", None).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("not_lease_holder")), "{v}");
    let err = bob.release_id(&lease.id).await.unwrap_err();
    assert!(
        matches!(&err, LockError::NotHolder { lease: l } if *l == lease.id),
        "{err}"
    );
    // The renewal changed nothing: the lease still ends within its 60 s.
    let after = alice.list().await.unwrap();
    assert!(after.locks[0].expires_at_ms <= lease.expires_at_ms + 1_000, "{after:?}");

    // Alice still holds it and may renew it; an admin sees and may renew and release it.
    alice.renew(&lease, Duration::from_secs(60)).await.unwrap();
    let admin = client_with(&running, Some("tok-admin"));
    assert_eq!(
        admin.list().await.unwrap().locks[0].lease.as_deref(),
        Some(lease.id.as_str())
    );
    admin.renew_id(&lease.id, Duration::from_secs(30)).await.unwrap();
    assert!(admin.release_id(&lease.id).await.unwrap());
    // Bob's repeated release learns nothing about a lease that is not his.
    let (status, v) = call(a, "DELETE", &format!("/v2/leases/{}", lease.id), "tok-bob", None).await;
    assert_eq!((status, v["released"].as_bool()), (200, Some(false)), "{v}");
    running.shutdown().await.unwrap();
}

async fn v1_locks_belong_to_the_token_that_took_them_as_well_as_to_the_owner_name(kind: Kind) {
    let (running, _) = service_on(kind, "owner_v1", two_users_and_an_admin()).await;
    let a = running.addr;
    let acquire = json!({"lockId": "db", "owner": "deployer", "expiryInSec": 60});
    let (status, v) = call(a, "POST", "/locks/acquire", "tok-alice", Some(acquire.clone())).await;
    assert_eq!((status, v["acquired"].as_bool()), (200, Some(true)), "{v}");
    // The same owner name with Bob's token is someone else: not re-entrant, not his to keep.
    let (status, v) = call(a, "POST", "/locks/acquire", "tok-bob", Some(acquire.clone())).await;
    assert_eq!((status, v["acquired"].as_bool()), (200, Some(false)), "{v}");
    let ids = json!({"lockIds": ["db"], "owner": "deployer", "expiryInSec": 60});
    let (status, v) = call(a, "POST", "/locks/keep-alive", "tok-bob", Some(ids.clone())).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("not_held")), "{v}");
    let (status, v) = call(a, "POST", "/locks/release", "tok-bob", Some(ids.clone())).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("not_held")), "{v}");
    // Alice's token keeps and releases it; an admin's may too.
    let (status, v) = call(a, "POST", "/locks/keep-alive", "tok-alice", Some(ids.clone())).await;
    assert_eq!((status, v), (200, json!(["db"])));
    let (status, _) = call(a, "POST", "/locks/acquire", "tok-alice", Some(acquire)).await;
    assert_eq!(status, 200);
    let (status, v) = call(a, "POST", "/locks/release", "tok-admin", Some(ids)).await;
    assert_eq!((status, v), (200, json!(["db"])));
    running.shutdown().await.unwrap();
}

async fn the_bearer_scheme_is_matched_in_any_case(kind: Kind) {
    let (running, _) = service_on(kind, "bearer_case", two_users_and_an_admin()).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = reqwest::Client::new()
            .get(format!("http://{}/v2/locks", running.addr))
            .header("authorization", format!("{scheme} tok-bob"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
    running.shutdown().await.unwrap();
}

async fn a_nul_in_an_owner_is_a_400_naming_the_field_and_the_client_does_not_retry_it(kind: Kind) {
    let (running, client) = service_on(kind, "nul_owner", Auth::default()).await;
    let a = running.addr;
    let (status, v) = call(
        a,
        "POST",
        "/locks/acquire",
        "",
        Some(json!({"lockId": "db", "owner": "a\u{0}b"})),
    )
    .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_request")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("`owner`"), "{v}");
    let body = json!({"ids": ["db"], "ttlMs": 1000, "owner": {"name": "ok", "suite": "s\u{0}"}});
    let (status, v) = call(a, "POST", "/v2/leases", "", Some(body)).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_request")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("`owner.suite`"), "{v}");
    // Through the client, with a long wait: refused at once, not retried as "unavailable".
    let started = Instant::now();
    let err = client
        .acquire(
            &lock_request(&["db"], "a\u{0}b", 60_000, 1_000),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::Invalid(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "retried for {:?}",
        started.elapsed()
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn what_the_database_refuses_is_the_callers_error_with_the_databases_own_words() {
    // Past the edge (an embedding tool calling the store directly), PostgreSQL's refusal of a
    // NUL is an invalid request, with its text, not "database unavailable".
    let store = PgLockStore::connect(&fresh_database("db_refusal").await).await.unwrap();
    let err = store
        .v1_release(&["db".into()], "a\u{0}b", &pit_lock::api::Caller::anyone())
        .await
        .unwrap_err();
    match err {
        LockError::Invalid(m) => assert!(m.contains("SQLSTATE 22"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// A service with short timeouts.
async fn impatient(name: &str) -> pit_lock::server::Running {
    let store = PgLockStore::connect(&fresh_database(name).await).await.unwrap();
    let timeouts = Timeouts {
        header: Duration::from_millis(300),
        body: Duration::from_millis(300),
        shutdown_grace: Duration::from_millis(500),
    };
    start(
        "127.0.0.1:0".parse().unwrap(),
        AppState::with_timeouts(Arc::new(store), Auth::default(), timeouts),
    )
    .await
    .unwrap()
}

/// Reads until the server closes the connection (bounded); what it sent.
fn read_until_closed(mut tcp: TcpStream) -> String {
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    match tcp.read_to_end(&mut out) {
        Ok(_) => String::from_utf8_lossy(&out).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => String::from_utf8_lossy(&out).into_owned(),
        Err(e) => panic!(
            "the server kept the connection open: {e}; it sent {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
}

#[tokio::test]
async fn slow_header_slow_body_and_idle_clients_are_dropped() {
    let running = impatient("timeouts").await;
    let addr = running.addr;
    let (slow_header, slow_body, idle) = tokio::task::spawn_blocking(move || {
        // Half a header, then nothing.
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.write_all(b"GET /v2/locks HTTP/1.1\r\nHost: x\r\n").unwrap();
        let slow_header = read_until_closed(tcp);
        // A whole header, 2 of 40 body bytes, then nothing.
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.write_all(
            b"POST /v2/leases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"",
        )
        .unwrap();
        let slow_body = read_until_closed(tcp);
        // One whole request on a kept-alive connection, then silence.
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let idle = read_until_closed(tcp);
        (slow_header, slow_body, idle)
    })
    .await
    .unwrap();
    assert!(!slow_header.contains("200 OK"), "{slow_header}");
    assert!(slow_body.starts_with("HTTP/1.1 408"), "{slow_body}");
    assert!(slow_body.contains("body_timeout"), "{slow_body}");
    assert!(idle.starts_with("HTTP/1.1 200"), "{idle}");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_half_open_client_past_the_grace_period() {
    // A request whose body never ends, with a body timeout far beyond the grace period: only
    // the grace period can end it.
    let store = PgLockStore::connect(&fresh_database("grace").await).await.unwrap();
    let timeouts = Timeouts {
        header: Duration::from_secs(300),
        body: Duration::from_secs(300),
        shutdown_grace: Duration::from_millis(500),
    };
    let running = start(
        "127.0.0.1:0".parse().unwrap(),
        AppState::with_timeouts(Arc::new(store), Auth::default(), timeouts),
    )
    .await
    .unwrap();
    let mut tcp = TcpStream::connect(running.addr).unwrap();
    tcp.write_all(b"POST /v2/leases HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{")
        .unwrap();
    // The request reached the handler once the service answers another request.
    let probe = client_with(&running, None);
    probe.list().await.unwrap();
    let shut = tokio::time::timeout(Duration::from_secs(60), running.shutdown()).await;
    assert!(shut.is_ok(), "shutdown waited for the half-open client");
    drop(tcp);
}

#[tokio::test]
async fn a_lock_manager_url_with_credentials_is_refused_without_showing_them() {
    let err = pit_lock::HttpLockStore::new("http://ci:hunter2@127.0.0.1:8080", Some("tok".into())).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("PIT_LOCK_TOKEN") && text.contains("credentials"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn the_database_password_never_reaches_the_log_in_any_form_libpq_accepts() {
    let url = fresh_database("redact").await;
    // The test server trusts loopback, so a password is accepted and ignored.
    let (host_port, db) = url.trim_start_matches("postgres://postgres@").split_once('/').unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let forms = [
        format!("host={host} port={port} user=postgres password=hunter2 dbname={db}"),
        format!("host={host} port={port} user=postgres password='hunter2 x' dbname={db}"),
        format!("postgres://postgres:hunter2@{host}:{port}/{db}?password=hunter2"),
    ];
    for form in &forms {
        let store = PgLockStore::connect(form).await.unwrap();
        assert!(!store.name().contains("hunter2"), "{}", store.name());
        assert!(!format!("{store:?}").contains("hunter2"));
    }
    // A start-up error (nothing listens on port 1) does not show it either.
    let err = PgLockStore::connect("host=127.0.0.1 port=1 user=pit password=hunter2 dbname=pit connect_timeout=2")
        .await
        .unwrap_err();
    let text = pit_core::engine::error_chain(&err);
    assert!(!text.contains("hunter2"), "{text}");

    // The service's start-up log, from the binary, with a key=value DATABASE_URL: neither the
    // password nor PostgreSQL's NOTICEs about migrations that have nothing to do.
    let mut started = common::start_binary(
        &["--listen", "127.0.0.1:0"],
        &[("DATABASE_URL", forms[0].as_str()), ("PIT_LOG", "info")],
    );
    let _ = started.child.kill();
    let _ = started.child.wait();
    let log = started.log;
    assert!(!log.contains("hunter2"), "{log}");
    assert!(log.contains("password=REDACTED"), "{log}");
    assert!(!log.contains("NOTICE") && !log.contains("already exists"), "{log}");
}

async fn a_store_alone_keeps_ownership_for_embedders(kind: Kind) {
    // The same rules for a tool that embeds the store: a caller restricted to a principal.
    let store = store_on(kind, "embed_owner").await;
    let alice = pit_lock::api::Caller {
        principal: Some("alice".into()),
        admin: false,
    };
    let bob = pit_lock::api::Caller {
        principal: Some("bob".into()),
        admin: false,
    };
    let lease = store
        .acquire_as(
            &lock_request(&["x"], "a", 0, 60_000),
            &alice,
            &CancellationToken::new(),
            &|_| {},
        )
        .await
        .unwrap();
    assert!(matches!(
        store.release_as(&lease.id, &bob).await,
        Err(LockError::NotHolder { .. })
    ));
    assert!(store.release_as(&lease.id, &alice).await.unwrap());
    assert!(store.list().await.unwrap().locks.is_empty());
}

on_every_store!(
    another_users_token_can_neither_renew_nor_release_a_lease_nor_see_its_id,
    v1_locks_belong_to_the_token_that_took_them_as_well_as_to_the_owner_name,
    the_bearer_scheme_is_matched_in_any_case,
    a_nul_in_an_owner_is_a_400_naming_the_field_and_the_client_does_not_retry_it,
    a_store_alone_keeps_ownership_for_embedders,
);

/// A server on loopback that answers every request with 200 and a body that never ends and
/// never ends a line: what a wrong URL (a stream, a file server) or a broken proxy can send.
async fn endless_server() -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                // The request's head and body, enough of them: the answer comes regardless.
                let _ = tcp.read(&mut [0u8; 4096]).await;
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n";
                if tcp.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
                while tcp.write_all(chunk.as_bytes()).await.is_ok() {}
            });
        }
    });
    url
}

#[tokio::test]
async fn a_client_stops_reading_an_answer_without_end_and_says_so_at_once() {
    let url = endless_server().await;
    let client = pit_lock::HttpLockStore::new(&url, None).unwrap();
    let started = Instant::now();
    let err = client.list().await.unwrap_err();
    assert!(matches!(err, LockError::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("larger than 64 MiB"), "{err}");
    assert!(err.to_string().contains("a Lock Manager's?"), "{err}");
    // A streamed acquire, which would otherwise wait for a line to end: a final error, not a
    // retry until the lock wait runs out.
    let err = client
        .acquire(&lock_request(&["db"], "ci", 60_000, 60_000), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("more than 1024 KiB without ending a line"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}
