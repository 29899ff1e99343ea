//! The pages of a directory store over HTTP (`pit report serve`): an index of every run, a
//! page per suite with its history, a page per run compared with its baseline, and each run's
//! `report.json` and `junit.xml`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, pit_report::serve::router("reports")).await
//! # }
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{HeaderValue, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::compare::{against_earlier, history};
use crate::html::{relative_link, render_index, render_report, IndexRun, CONTENT_SECURITY_POLICY as CSP};
use crate::store::{DirStore, ReportCache};
use crate::{to_junit, Report};

type Store = Arc<ReportCache>;

/// The routes over the directory store at `root`. Pages hold no script and fetch nothing
/// (a strict `Content-Security-Policy` on every answer): a hostile value in a report cannot
/// run.
pub fn router(root: impl Into<PathBuf>) -> axum::Router {
    let store: Store = Arc::new(ReportCache::new(DirStore::new(root)));
    axum::Router::new()
        .route("/", get(index))
        .route("/{project}/{suite}/", get(suite_page))
        .route("/{project}/{suite}/{run}/", get(run_page))
        .route("/{project}/{suite}/{run}/{file}", get(run_file))
        .with_state(store)
        .layer(axum::middleware::from_fn(security_headers))
}

/// The headers of every answer.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn not_found(what: &str) -> Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        Html(format!("<h1>not found</h1><p>{what}</p>")),
    )
        .into_response()
}

fn page(html: Result<String, crate::html::RenderError>) -> Response {
    match html {
        Ok(html) => Html(html).into_response(),
        Err(e) => not_found(&e.to_string()),
    }
}

/// The reports of a suite the store has (never a path it was not listed under).
fn find(store: &ReportCache, project: &str, suite: &str) -> Option<Arc<Vec<Report>>> {
    let known = store.suites().ok()?;
    known
        .iter()
        .any(|(p, s)| p == project && s == suite)
        .then(|| store.reports(project, suite).ok())
        .flatten()
}

/// A run of a suite the store has, or what is missing.
fn find_run(
    store: &ReportCache,
    project: &str,
    suite: &str,
    run: &str,
) -> Result<(Arc<Vec<Report>>, usize), &'static str> {
    let reports = find(store, project, suite).ok_or("no such suite")?;
    let at = reports
        .iter()
        .position(|r| r.run_id.as_deref() == Some(run))
        .ok_or("no such run")?;
    Ok((reports, at))
}

async fn index(State(store): State<Store>) -> Response {
    let mut runs = Vec::new();
    for (p, s) in store.suites().unwrap_or_default() {
        for r in store.reports(&p, &s).unwrap_or_default().iter() {
            let href = relative_link(&[&p, &s, r.run_id.as_deref().unwrap_or_default()]);
            runs.push(IndexRun::of(r, Some(href)));
        }
    }
    page(render_index("PIT reports", &runs, &history(&[], 5.0), 0))
}

async fn suite_page(State(store): State<Store>, UrlPath((p, s)): UrlPath<(String, String)>) -> Response {
    let Some(reports) = find(&store, &p, &s) else {
        return not_found("no such suite");
    };
    let runs: Vec<IndexRun> = reports
        .iter()
        .map(|r| IndexRun::of(r, Some(relative_link(&[r.run_id.as_deref().unwrap_or_default()]))))
        .collect();
    page(render_index(&format!("{p} / {s}"), &runs, &history(&reports, 5.0), 40))
}

async fn run_page(State(store): State<Store>, UrlPath((p, s, run)): UrlPath<(String, String, String)>) -> Response {
    let (reports, at) = match find_run(&store, &p, &s, &run) {
        Ok(found) => found,
        Err(missing) => return not_found(missing),
    };
    let r = &reports[at];
    page(render_report(r, against_earlier(r, &reports).as_ref()))
}

async fn run_file(
    State(store): State<Store>,
    UrlPath((p, s, run, file)): UrlPath<(String, String, String, String)>,
) -> Response {
    let (reports, at) = match find_run(&store, &p, &s, &run) {
        Ok(found) => found,
        Err(missing) => return not_found(missing),
    };
    let r = &reports[at];
    match file.as_str() {
        "junit.xml" => ([(CONTENT_TYPE, "application/xml")], to_junit(r)).into_response(),
        "report.json" => axum::Json(r.clone()).into_response(),
        _ => not_found("no such file: report.json and junit.xml are served"),
    }
}
