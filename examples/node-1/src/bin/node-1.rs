//! The example service, in one of three roles:
//!
//! - `store`: an in-memory key-value store (`PUT`/`GET /items/{key}`);
//! - `audit`: counts events (`POST /events`, `GET /events`);
//! - `api`: the public API; forwards items to the store (`STORE_URL`) and reports every write
//!   to the audit service (`AUDIT_URL`).
//!
//! `node-1 serve --role ROLE --url-file FILE` listens on a free loopback port and writes its
//! URL to FILE; `node-1 check URL` exits 0 when the service at URL is healthy (status checks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

#[derive(Clone, Default)]
struct AppState {
    items: Arc<Mutex<HashMap<String, String>>>,
    events: Arc<Mutex<u64>>,
    store: Option<String>,
    audit: Option<String>,
    http: reqwest::Client,
}

fn usage() -> ! {
    eprintln!("usage: node-1 serve --role store|audit|api --url-file FILE\n       node-1 check URL");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check") => {
            let url = args.get(1).unwrap_or_else(|| usage());
            let healthy = match reqwest::get(format!("{url}/healthz")).await {
                Ok(r) => r.status().is_success(),
                Err(_) => false,
            };
            std::process::exit(if healthy { 0 } else { 1 });
        }
        Some("serve") => {}
        _ => usage(),
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let role = flag("--role").unwrap_or_else(|| usage());
    let url_file = flag("--url-file").unwrap_or_else(|| usage());
    let mut state = AppState::default();
    let app = match role.as_str() {
        "store" => Router::new().route("/items/{key}", get(get_item).put(put_item)),
        "audit" => Router::new().route("/events", post(add_event).get(count_events)),
        "api" => {
            state.store = Some(std::env::var("STORE_URL").expect("the api needs STORE_URL (from the store's outputs)"));
            state.audit = Some(std::env::var("AUDIT_URL").expect("the api needs AUDIT_URL (from the audit's outputs)"));
            Router::new().route("/items/{key}", get(api_get).put(api_put))
        }
        _ => usage(),
    };
    let app = app.route("/healthz", get(healthz)).with_state(state);
    let listener = pit_testapp::listen_and_announce(std::path::Path::new(&url_file))
        .await
        .expect("a free loopback port and a writable URL file");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    eprintln!("node-1 {role} listening on {url}");
    axum::serve(listener, app).await.expect("the server runs");
}

async fn healthz(State(s): State<AppState>) -> StatusCode {
    // The api is healthy only when what it depends on is.
    for dep in [&s.store, &s.audit].into_iter().flatten() {
        if !s
            .http
            .get(format!("{dep}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    StatusCode::OK
}

async fn get_item(State(s): State<AppState>, Path(key): Path<String>) -> Result<String, StatusCode> {
    s.items
        .lock()
        .expect("no panics while held")
        .get(&key)
        .cloned()
        .ok_or(StatusCode::NOT_FOUND)
}

async fn put_item(State(s): State<AppState>, Path(key): Path<String>, body: String) -> StatusCode {
    s.items.lock().expect("no panics while held").insert(key, body);
    StatusCode::NO_CONTENT
}

async fn add_event(State(s): State<AppState>) -> StatusCode {
    *s.events.lock().expect("no panics while held") += 1;
    StatusCode::NO_CONTENT
}

async fn count_events(State(s): State<AppState>) -> String {
    s.events.lock().expect("no panics while held").to_string()
}

async fn api_get(State(s): State<AppState>, Path(key): Path<String>) -> Result<String, StatusCode> {
    let store = s.store.as_deref().unwrap_or_default();
    let r = s
        .http
        .get(format!("{store}/items/{key}"))
        .send()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(StatusCode::NOT_FOUND);
    }
    r.text().await.map_err(|_| StatusCode::BAD_GATEWAY)
}

async fn api_put(State(s): State<AppState>, Path(key): Path<String>, body: String) -> StatusCode {
    let (store, audit) = (
        s.store.as_deref().unwrap_or_default(),
        s.audit.as_deref().unwrap_or_default(),
    );
    let stored = s.http.put(format!("{store}/items/{key}")).body(body).send().await;
    if !stored.is_ok_and(|r| r.status().is_success()) {
        return StatusCode::BAD_GATEWAY;
    }
    let audited = s.http.post(format!("{audit}/events")).send().await;
    if !audited.is_ok_and(|r| r.status().is_success()) {
        return StatusCode::BAD_GATEWAY;
    }
    StatusCode::NO_CONTENT
}
