//! The Lock Manager service and its client, over HTTP on loopback: the same contract (v1 and
//! v2) against each store, a real PostgreSQL and the in-memory one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pit_core::lock::{LockError, LockStore, WaitProgress};
use pit_core::testing::lock_request;
use pit_lock::server::Auth;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[macro_use]
mod common;
use common::{client_with, service_on, Kind};

async fn post(addr: std::net::SocketAddr, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} answered {status} without JSON ({ct}): {text}"));
    (status, value)
}

async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Waits (bounded) until `cond` holds for the service's lock list.
async fn until_list(client: &pit_lock::HttpLockStore, what: &str, cond: impl Fn(&pit_lock::api::LockList) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = client.list().await.unwrap();
        if cond(&list) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {list:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn the_http_store_keeps_the_lock_contract(kind: Kind) {
    let (running, client) = service_on(kind, "http_contract", Auth::default()).await;
    pit_core::testing::lock_contract(Arc::new(client)).await;
    running.shutdown().await.unwrap();
}

async fn the_v1_api_answers_the_existing_toolkits_clients(kind: Kind) {
    let (running, _) = service_on(kind, "v1", Auth::default()).await;
    let a = running.addr;
    let (s, v) = post(
        a,
        "/locks/acquire",
        r#"{"lockId":"lock-node-1","owner":"owner-a","expiryInSec":30}"#,
    )
    .await;
    assert_eq!((s, &v["acquired"]), (200, &json!(true)), "{v}");
    assert!(v["lockExpiry"].as_str().unwrap().ends_with('Z'), "{v}");
    let (s, v) = post(
        a,
        "/locks/acquire",
        r#"{"lockId":"lock-node-1","owner":"owner-b","expiryInSec":30}"#,
    )
    .await;
    assert_eq!((s, v), (200, json!({"lockId":"lock-node-1","acquired":false})));
    // Re-entrant for its owner (the existing service says false here).
    let (_, v) = post(
        a,
        "/locks/acquire",
        r#"{"lockId":"lock-node-1","owner":"owner-a","expiryInSec":30}"#,
    )
    .await;
    assert_eq!(v["acquired"], json!(true), "{v}");
    // Keep-alive honours the expiry asked for.
    let before = pit_core::lock::now_ms();
    let (s, v) = post(
        a,
        "/locks/keep-alive",
        r#"{"lockIds":["lock-node-1"],"owner":"owner-a","expiryInSec":600}"#,
    )
    .await;
    assert_eq!((s, v), (200, json!(["lock-node-1"])));
    let list = client_with(&running, None).list().await.unwrap();
    let expiry = list.locks[0].expires_at_ms;
    assert!(
        expiry >= before + 590_000 && expiry <= before + 610_000,
        "expiry {expiry} is not 600 s on"
    );
    let (s, v) = post(
        a,
        "/locks/keep-alive",
        r#"{"lockIds":["lock-node-1"],"owner":"owner-b"}"#,
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["code"], "not_held");
    // Release answers the subset it freed.
    let (s, v) = post(
        a,
        "/locks/release",
        r#"{"lockIds":["lock-node-1","lock-unknown"],"owner":"owner-a"}"#,
    )
    .await;
    assert_eq!((s, v), (200, json!(["lock-node-1"])));
    let (s, v) = post(a, "/locks/release", r#"{"lockIds":["lock-node-1"],"owner":"owner-a"}"#).await;
    assert_eq!(s, 400, "{v}");
    // Keep-alive never revives an expired lock.
    let (_, v) = post(
        a,
        "/locks/acquire",
        r#"{"lockId":"short","owner":"owner-a","expiryInSec":1}"#,
    )
    .await;
    assert_eq!(v["acquired"], json!(true));
    let client = client_with(&running, None);
    until_list(&client, "the 1 s lock expires", |l| {
        l.locks.iter().all(|e| e.id.as_str() != "short")
    })
    .await;
    let (s, v) = post(
        a,
        "/locks/keep-alive",
        r#"{"lockIds":["short"],"owner":"owner-a","expiryInSec":30}"#,
    )
    .await;
    assert_eq!(s, 400, "an expired lock was revived: {v}");
    // Health check.
    let v: Value = get_json(format!("http://{a}/")).await;
    assert_eq!(v["app"], "lock-manager");
    running.shutdown().await.unwrap();
}

/// The expiry of `id` in the service's list, in ms from `since`.
async fn expiry_after(client: &pit_lock::HttpLockStore, id: &str, since: u64) -> i64 {
    let list = client.list().await.unwrap();
    let e = list.locks.iter().find(|e| e.id.as_str() == id).expect("held");
    i64::try_from(e.expires_at_ms).unwrap() - i64::try_from(since).unwrap()
}

/// Issue 14: what the existing deployer's lock client depends on. It sends its pitfile's lock
/// timeout as `expiryInSec` (`48h`: 172800), and dies on a 400 from release.
async fn the_v1_api_is_as_lenient_as_the_existing_clients_need(kind: Kind) {
    let (running, _) = service_on(kind, "v1_lenient", Auth::default()).await;
    let a = running.addr;
    let client = client_with(&running, None);
    let day_ms = 86_400_000;
    // Longer than a day: clamped, not refused.
    let before = pit_core::lock::now_ms();
    let (s, v) = post(
        a,
        "/locks/acquire",
        r#"{"lockId":"long","owner":"deployer","expiryInSec":172800}"#,
    )
    .await;
    assert_eq!((s, &v["acquired"]), (200, &json!(true)), "{v}");
    let e = expiry_after(&client, "long", before).await;
    assert!(
        (day_ms - 5_000..=day_ms + 5_000).contains(&e),
        "clamped to a day: {e} ms"
    );
    let (s, v) = post(
        a,
        "/locks/keep-alive",
        r#"{"lockIds":["long"],"owner":"deployer","expiryInSec":172800}"#,
    )
    .await;
    assert_eq!((s, v), (200, json!(["long"])));
    // Fractions are seconds; 0 is the shortest lease, a second.
    let before = pit_core::lock::now_ms();
    let (s, v) = post(
        a,
        "/locks/acquire",
        r#"{"lockId":"fraction","owner":"deployer","expiryInSec":1.5}"#,
    )
    .await;
    assert_eq!((s, &v["acquired"]), (200, &json!(true)), "{v}");
    let e = expiry_after(&client, "fraction", before).await;
    assert!((1_400..=2_500).contains(&e), "1.5 s: {e} ms");
    let before = pit_core::lock::now_ms();
    let (s, v) = post(
        a,
        "/locks/acquire",
        r#"{"lockId":"zero","owner":"deployer","expiryInSec":0}"#,
    )
    .await;
    assert_eq!((s, &v["acquired"]), (200, &json!(true)), "{v}");
    let e = expiry_after(&client, "zero", before).await;
    assert!((900..=2_000).contains(&e), "raised to 1 s: {e} ms");
    // A lock that expired and that nobody took: its owner's release answers 200 with the id.
    until_list(&client, "the short locks expire", |l| {
        l.locks.iter().all(|e| !["fraction", "zero"].contains(&e.id.as_str()))
    })
    .await;
    let (s, v) = post(
        a,
        "/locks/release",
        r#"{"lockIds":["fraction","zero"],"owner":"deployer"}"#,
    )
    .await;
    assert_eq!((s, v), (200, json!(["fraction", "zero"])));
    // Once someone else took it, it is theirs: the old owner's release is refused.
    let (_, v) = post(
        a,
        "/locks/acquire",
        r#"{"lockId":"taken","owner":"first","expiryInSec":1}"#,
    )
    .await;
    assert_eq!(v["acquired"], json!(true));
    until_list(&client, "`taken` expires", |l| {
        l.locks.iter().all(|e| e.id.as_str() != "taken")
    })
    .await;
    let (_, v) = post(
        a,
        "/locks/acquire",
        r#"{"lockId":"taken","owner":"second","expiryInSec":30}"#,
    )
    .await;
    assert_eq!(v["acquired"], json!(true), "an expired lock is free: {v}");
    let (s, v) = post(a, "/locks/release", r#"{"lockIds":["taken"],"owner":"first"}"#).await;
    assert_eq!((s, &v["code"]), (400, &json!("not_held")), "{v}");
    // v2 stays strict: a day at most, and no zero.
    let (s, _) = post(
        a,
        "/v2/leases",
        r#"{"ids":["v2"],"ttlMs":172800000,"owner":{"name":"o"}}"#,
    )
    .await;
    assert_eq!(s, 400);
    running.shutdown().await.unwrap();
}

async fn every_bad_input_is_a_json_4xx_naming_the_problem(kind: Kind) {
    let (running, _) = service_on(kind, "bad_input", Auth::default()).await;
    let a = running.addr;
    let long = "x".repeat(300);
    let many: Vec<String> = (0..65).map(|i| format!("id{i}")).collect();
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        ("/locks/acquire", "not json".into(), 400, "malformed_json", "expected"),
        ("/locks/acquire", "{}".into(), 400, "invalid_request", "lockId"),
        (
            "/locks/acquire",
            r#"{"owner":"o"}"#.into(),
            400,
            "invalid_request",
            "lockId",
        ),
        (
            "/locks/acquire",
            r#"{"lockId":"x","owner":"o","expiryInSec":"10"}"#.into(),
            400,
            "invalid_request",
            "invalid type",
        ),
        (
            "/locks/acquire",
            r#"{"lockId":"x","owner":"o","expiryInSec":-1}"#.into(),
            400,
            "invalid_request",
            "0 or more",
        ),
        (
            "/locks/acquire",
            r#"{"lockId":"","owner":"o"}"#.into(),
            400,
            "invalid_request",
            "empty",
        ),
        (
            "/locks/keep-alive",
            r#"{"lockIds":[],"owner":"o"}"#.into(),
            400,
            "invalid_request",
            "no lock ids",
        ),
        (
            "/locks/release",
            r#"{"lockIds":"a","owner":"o"}"#.into(),
            400,
            "invalid_request",
            "invalid type",
        ),
        ("/v2/leases", r#"{"ids":["a""#.into(), 400, "malformed_json", "EOF"),
        ("/v2/leases", "".into(), 400, "malformed_json", "empty"),
        (
            "/v2/leases",
            r#"{"ids":["a"],"owner":{"name":"o"}}"#.into(),
            400,
            "invalid_request",
            "ttlMs",
        ),
        (
            "/v2/leases",
            r#"{"ids":["a"],"ttlMs":"60","owner":{"name":"o"}}"#.into(),
            400,
            "invalid_request",
            "invalid type",
        ),
        (
            "/v2/leases",
            r#"{"ids":[""],"ttlMs":1000,"owner":{"name":"o"}}"#.into(),
            400,
            "invalid_request",
            "empty",
        ),
        (
            "/v2/leases",
            format!(r#"{{"ids":["{long}"],"ttlMs":1000,"owner":{{"name":"o"}}}}"#),
            400,
            "invalid_request",
            "at most 256",
        ),
        (
            "/v2/leases",
            json!({"ids": many, "ttlMs": 1000, "owner": {"name": "o"}}).to_string(),
            400,
            "invalid_request",
            "at most 64",
        ),
        (
            "/v2/leases",
            r#"{"ids":["a"],"ttlMs":0,"owner":{"name":"o"}}"#.into(),
            400,
            "invalid_request",
            "between",
        ),
        (
            "/v2/leases",
            r#"{"ids":["a"],"ttlMs":-5,"owner":{"name":"o"}}"#.into(),
            400,
            "invalid_request",
            "invalid value",
        ),
        (
            "/v2/leases",
            r#"{"ids":["a"],"ttlMs":99999999999999,"owner":{"name":"o"}}"#.into(),
            400,
            "invalid_request",
            "between",
        ),
        (
            "/v2/leases",
            r#"{"ids":["a"],"ttlMs":1000,"waitMs":99999999999,"owner":{"name":"o"}}"#.into(),
            400,
            "invalid_request",
            "waitMs",
        ),
        (
            "/v2/leases",
            r#"{"ids":["a"],"ttlMs":1000,"owner":{"name":" "}}"#.into(),
            400,
            "invalid_request",
            "owner.name",
        ),
        (
            "/v2/leases/01jq/renew",
            r#"{"ttlMs":0}"#.into(),
            400,
            "invalid_request",
            "between",
        ),
        (
            "/v2/leases",
            format!(r#"{{"ids":["a"],"pad":"{}"}}"#, "x".repeat(70_000)),
            413,
            "body_too_large",
            "larger than",
        ),
        ("/v2/nothing-here", "{}".into(), 404, "not_found", "no such route"),
    ];
    for (path, body, status, code, says) in cases {
        let shown: String = body.chars().take(60).collect();
        let (s, v) = post(a, path, body).await;
        assert_eq!(s, status, "{path} {shown}: {v}");
        assert_eq!(v["code"], code, "{path} {shown}: {v}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{path} {shown}: `{message}` does not say `{says}`"
        );
        if path.starts_with("/locks/") {
            assert_eq!(v["error"].as_str(), Some(message), "v1 errors carry `error` too");
        }
    }
    running.shutdown().await.unwrap();
}

async fn a_plain_json_acquire_delivers_a_lease_that_stays_held(kind: Kind) {
    let (running, client) = service_on(kind, "plain", Auth::default()).await;
    let (s, lease) = post(
        running.addr,
        "/v2/leases",
        r#"{"ids":["db","db","topic"],"ttlMs":60000,"owner":{"name":"plain","runId":"r1","suite":"s","ciJob":"j"}}"#,
    )
    .await;
    assert_eq!(s, 200, "{lease}");
    assert_eq!(lease["ids"], json!(["db", "topic"]), "duplicates are merged");
    assert_eq!(lease["fencing"]["db"], 1);
    // Delivered, so not released by the delivery guard.
    let list = client.list().await.unwrap();
    assert_eq!(list.locks.len(), 2, "{list:?}");
    assert_eq!(list.locks[0].owner.run_id.as_deref(), Some("r1"));
    assert_eq!(list.locks[0].owner.ci_job.as_deref(), Some("j"));
    running.shutdown().await.unwrap();
}

async fn waiters_are_served_first_come_first_served_and_see_their_place(kind: Kind) {
    let (running, client) = service_on(kind, "fifo", Auth::default()).await;
    let never = CancellationToken::new();
    let holder = client
        .acquire(&lock_request(&["db"], "holder", 0, 60_000), &never)
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let wait = |name: &'static str| {
        let (client, seen) = (client.clone(), seen.clone());
        tokio::spawn(async move {
            let progress = move |p: &WaitProgress| seen.lock().unwrap().push((name.to_owned(), p.position));
            client
                .acquire_with_progress(
                    &lock_request(&["db"], name, 60_000, 60_000),
                    &CancellationToken::new(),
                    &progress,
                )
                .await
        })
    };
    let first = wait("first");
    until_list(&client, "first queues", |l| l.queue.len() == 1).await;
    let second = wait("second");
    until_list(&client, "second queues", |l| l.queue.len() == 2).await;
    let list = client.list().await.unwrap();
    let waiting: Vec<(u32, &str)> = list.locks[0]
        .waiting
        .iter()
        .map(|w| (w.position, w.owner.name.as_str()))
        .collect();
    assert_eq!(waiting, vec![(1, "first"), (2, "second")]);
    assert_eq!(list.locks[0].owner.name, "holder");
    client.release(&holder).await.unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.owner.name, "first");
    assert!(first.fencing[&"db".into()] > holder.fencing[&"db".into()]);
    assert!(!second.is_finished(), "second overtook first");
    client.release(&first).await.unwrap();
    let second = second.await.unwrap().unwrap();
    assert_eq!(second.owner.name, "second");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&("first".into(), 1)), "{seen:?}");
    assert!(seen.contains(&("second".into(), 2)), "{seen:?}");
    client.release(&second).await.unwrap();
    running.shutdown().await.unwrap();
}

async fn a_client_that_goes_away_while_waiting_leaves_no_lease_behind(kind: Kind) {
    let (running, client) = service_on(kind, "disconnect", Auth::default()).await;
    let never = CancellationToken::new();
    let holder = client
        .acquire(&lock_request(&["db"], "holder", 0, 60_000), &never)
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let gone = {
        let (client, cancel) = (client.clone(), cancel.clone());
        tokio::spawn(async move {
            client
                .acquire(&lock_request(&["db"], "gone", 60_000, 60_000), &cancel)
                .await
        })
    };
    until_list(&client, "the waiter queues", |l| l.queue.len() == 1).await;
    cancel.cancel();
    assert!(matches!(gone.await.unwrap(), Err(LockError::Cancelled { .. })));
    until_list(&client, "the waiter leaves the queue", |l| l.queue.is_empty()).await;
    client.release(&holder).await.unwrap();
    // Nobody got the lock on the departed waiter's behalf.
    let list = client.list().await.unwrap();
    assert!(list.locks.is_empty(), "{list:?}");
    let next = client
        .acquire(&lock_request(&["db"], "next", 0, 60_000), &never)
        .await
        .unwrap();
    client.release(&next).await.unwrap();
    running.shutdown().await.unwrap();
}

async fn a_lost_lease_answers_409_and_admins_can_force_release(kind: Kind) {
    let auth = Auth {
        tokens: vec!["user-token".into()],
        admin_tokens: vec!["admin-token".into()],
    };
    let (running, _) = service_on(kind, "admin", auth).await;
    let user = client_with(&running, Some("user-token"));
    let admin = client_with(&running, Some("admin-token"));
    let never = CancellationToken::new();
    let lease = user
        .acquire(&lock_request(&["db", "topic"], "victim", 0, 60_000), &never)
        .await
        .unwrap();
    let err = user.force_release(&["db".into()]).await.unwrap_err();
    assert!(err.to_string().contains("admin token"), "{err}");
    let ended = admin.force_release(&["db".into()]).await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].ids.len(), 2, "the whole lease ends");
    let err = user.renew(&lease, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, LockError::Lost { .. }), "{err}");
    let r = reqwest::Client::new()
        .post(format!("http://{}/v2/leases/{}/renew", running.addr, lease.id))
        .bearer_auth("user-token")
        .json(&json!({"ttlMs": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "lease_lost");
    assert!(v["message"].as_str().unwrap().contains("was lost"), "{v}");
    running.shutdown().await.unwrap();
}

async fn tokens_are_checked_and_open_mode_is_announced(kind: Kind) {
    let auth = Auth {
        tokens: vec!["user-token".into()],
        admin_tokens: vec![],
    };
    let (running, _) = service_on(kind, "auth", auth).await;
    let a = running.addr;
    let http = reqwest::Client::new();
    for (token, status) in [(None, 401), (Some("wrong"), 401), (Some("user-token"), 200)] {
        let mut r = http.get(format!("http://{a}/v2/locks"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "token {token:?}");
    }
    let err = client_with(&running, None).list().await.unwrap_err();
    assert!(err.to_string().contains("PIT_LOCK_TOKEN"), "{err}");
    // Health endpoints need no token; readiness says how callers are checked.
    let v: Value = get_json(format!("http://{a}/readyz")).await;
    assert_eq!(
        (v["status"].as_str(), v["auth"].as_str()),
        (Some("ready"), Some("bearer-token"))
    );
    running.shutdown().await.unwrap();
    let (open, _) = service_on(kind, "open", Auth::default()).await;
    let v: Value = get_json(format!("http://{}/readyz", open.addr)).await;
    assert_eq!(v["auth"], "open");
    open.shutdown().await.unwrap();
}

async fn metrics_count_acquisitions_waits_and_held_locks(kind: Kind) {
    let (running, client) = service_on(kind, "metrics", Auth::default()).await;
    let never = CancellationToken::new();
    let a = client
        .acquire(&lock_request(&["m"], "a", 0, 60_000), &never)
        .await
        .unwrap();
    let _ = client
        .acquire(&lock_request(&["m"], "b", 0, 60_000), &never)
        .await
        .unwrap_err();
    let text = reqwest::get(format!("http://{}/metrics", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"pit_lock_acquisitions_total{api="v2",outcome="acquired"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"pit_lock_acquisitions_total{api="v2",outcome="busy"} 1"#),
        "{text}"
    );
    assert!(text.contains("pit_lock_held 1"), "{text}");
    assert!(text.contains("pit_lock_wait_seconds_bucket"), "{text}");
    client.release(&a).await.unwrap();
    let spec = reqwest::get(format!("http://{}/openapi.yaml", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(spec.contains("/v2/leases"), "the OpenAPI document is served");
    running.shutdown().await.unwrap();
}

async fn shutting_down_ends_waits_with_a_retryable_answer(kind: Kind) {
    let (running, client) = service_on(kind, "shutdown", Auth::default()).await;
    let never = CancellationToken::new();
    let _held = client
        .acquire(&lock_request(&["db"], "holder", 0, 60_000), &never)
        .await
        .unwrap();
    let addr = running.addr;
    let waiter = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://{addr}/v2/leases"))
            .json(&json!({"ids": ["db"], "ttlMs": 60_000, "waitMs": 60_000, "owner": {"name": "w"}}))
            .send()
            .await
            .unwrap()
    });
    until_list(&client, "the waiter queues", |l| l.queue.len() == 1).await;
    let stopped = tokio::spawn(running.shutdown());
    let r = waiter.await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "shutting_down");
    stopped.await.unwrap().unwrap();
}

on_every_store!(
    the_http_store_keeps_the_lock_contract,
    the_v1_api_answers_the_existing_toolkits_clients,
    the_v1_api_is_as_lenient_as_the_existing_clients_need,
    every_bad_input_is_a_json_4xx_naming_the_problem,
    a_plain_json_acquire_delivers_a_lease_that_stays_held,
    waiters_are_served_first_come_first_served_and_see_their_place,
    a_client_that_goes_away_while_waiting_leaves_no_lease_behind,
    a_lost_lease_answers_409_and_admins_can_force_release,
    tokens_are_checked_and_open_mode_is_announced,
    metrics_count_acquisitions_waits_and_held_locks,
    shutting_down_ends_waits_with_a_retryable_answer,
);
