//! Every action against a real HTTP receiver on loopback: the exact bodies and headers, the
//! webhook signature checked with the secret, retries, timeouts, and no secret in any error.

use std::time::Duration;

use base64::Engine as _;
use hmac::Mac as _;
use pit_actions::action::{Action, ActionError, Outcome, Runner};
use pit_actions::deliver::Policy;
use pit_actions::secret::SecretRef;
use pit_actions::summary::{Links, Summary};
use pit_actions::testing::Receiver;

fn summary() -> Summary {
    let report =
        pit_report::Report::load("../pit-report/tests/testdata/existing-toolkit-report.json".as_ref()).unwrap();
    Summary::of(
        &report,
        None,
        Links {
            report: Some("https://reports.example.com/shop/checkout/1/".into()),
            job: Some("https://ci.example.com/jobs/42".into()),
        },
    )
}

/// A runner whose environment holds `vars`, retrying fast.
fn runner(vars: &[(&str, String)]) -> Runner {
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    Runner::new(move |n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())).with_policy(Policy {
        timeout: Duration::from_millis(500),
        attempts: 3,
        backoff: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(5),
    })
}

#[tokio::test]
async fn teams_gets_an_adaptive_card_in_the_workflows_envelope() {
    let r = Receiver::answering(vec![Some((202, vec![]))]).await;
    let hook = format!("{}/workflows/abc?sig=s3cret", r.url);
    let action = Action::Teams {
        webhook: SecretRef::Env("TEAMS_WEBHOOK".into()),
        template: None,
    };
    let outcome = runner(&[("TEAMS_WEBHOOK", hook)])
        .run(&action, &summary())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Sent(d) if d.status == 202 && d.attempts == 1));
    let got = r.calls()[0].clone();
    assert_eq!(got.path, "/workflows/abc");
    assert_eq!(got.headers["content-type"], "application/json");
    let b = &got.body;
    assert_eq!(b["type"], "message");
    assert_eq!(
        b["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &b["attachments"][0]["content"];
    assert_eq!(
        (card["type"].as_str(), card["version"].as_str()),
        (Some("AdaptiveCard"), Some("1.5"))
    );
    let text = card.to_string();
    assert!(text.contains("Failing: Steady load / POST /orders"), "{text}");
    assert!(text.contains("required"), "requirement against observation: {text}");
    let urls: Vec<&str> = card["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "https://reports.example.com/shop/checkout/1/",
            "https://ci.example.com/jobs/42"
        ]
    );
}

#[tokio::test]
async fn slack_gets_blocks_with_a_text_fallback() {
    let r = Receiver::answering(vec![Some((200, vec![]))]).await;
    let action = Action::Slack {
        webhook: SecretRef::Env("SLACK_WEBHOOK".into()),
        template: None,
    };
    runner(&[("SLACK_WEBHOOK", format!("{}/services/T0/B0/x", r.url))])
        .run(&action, &summary())
        .await
        .unwrap();
    let body = r.calls()[0].body.clone();
    assert!(body["text"].as_str().unwrap().contains(": failed in "), "{body}");
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(blocks
        .iter()
        .any(|b| b["text"]["text"].as_str().is_some_and(|t| t.contains("POST /orders"))));
    assert_eq!(blocks.last().unwrap()["type"], "actions");
}

#[tokio::test]
async fn a_webhook_is_signed_per_standard_webhooks_and_the_signature_checks_out() {
    let r = Receiver::answering(vec![Some((204, vec![]))]).await;
    let key = b"a signing key of the receiver";
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key));
    let guard = tempfile::Builder::new()
        .prefix("pit-actions-secret-")
        .tempdir()
        .unwrap();
    let dir = guard.path();
    std::fs::write(dir.join("secret"), format!("{secret}\n")).unwrap();
    let action = Action::Webhook {
        url: SecretRef::Env("HOOK_URL".into()),
        secret: Some(SecretRef::File(dir.join("secret"))),
        template: None,
    };
    runner(&[("HOOK_URL", format!("{}/pit", r.url))])
        .run(&action, &summary())
        .await
        .unwrap();
    let got = r.calls()[0].clone();
    assert_eq!(got.body["type"], "pit.run.finished");
    assert_eq!(got.body["data"]["verdict"], "failed");
    // The receiver's check: HMAC-SHA256 over "id.timestamp.body" with the decoded key.
    let header = |n: &str| got.headers[n].to_str().unwrap().to_owned();
    let (id, ts, sig) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let raw = serde_json::to_vec(&got.body).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&raw);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(sig, format!("v1,{expected}"));
    let age = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - ts.parse::<u64>().unwrap();
    assert!(age < 60, "a fresh timestamp");
}

fn webhook() -> Action {
    Action::Webhook {
        url: SecretRef::Env("HOOK_URL".into()),
        secret: None,
        template: None,
    }
}

#[tokio::test]
async fn a_500_then_a_200_is_delivered_on_the_second_call() {
    let r = Receiver::answering(vec![Some((500, vec![])), Some((200, vec![]))]).await;
    let outcome = runner(&[("HOOK_URL", r.url.clone())])
        .run(&webhook(), &summary())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Sent(d) if d.attempts == 2), "{outcome:?}");
}

#[tokio::test]
async fn a_429_is_retried_after_what_retry_after_says() {
    let r = Receiver::answering(vec![Some((429, vec![("retry-after", "1")])), Some((200, vec![]))]).await;
    let started = std::time::Instant::now();
    let outcome = runner(&[("HOOK_URL", r.url.clone())])
        .run(&webhook(), &summary())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Sent(d) if d.attempts == 2), "{outcome:?}");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited as asked");
}

#[tokio::test]
async fn other_4xx_are_not_retried_and_no_error_shows_the_url() {
    let r = Receiver::answering(vec![Some((404, vec![]))]).await;
    let url = format!("{}/hooks/t0k3n-in-the-path", r.url);
    let err = runner(&[("HOOK_URL", url)])
        .run(&webhook(), &summary())
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::Delivery(_)), "{err}");
    let text = pit_core::engine::error_chain(&err);
    assert!(text.contains("HTTP 404 after 1 call"), "{text}");
    assert_eq!(r.calls().len(), 1, "not retried");
    assert!(!text.contains("t0k3n"), "{text}");
}

#[tokio::test]
async fn a_receiver_that_hangs_times_out_on_every_call_without_showing_the_url() {
    let r = Receiver::answering(vec![None]).await;
    let url = format!("{}/hooks/t0k3n-in-the-path", r.url);
    let err = runner(&[("HOOK_URL", url)])
        .run(&webhook(), &summary())
        .await
        .unwrap_err();
    let text = pit_core::engine::error_chain(&err);
    assert!(text.contains("after 3 call(s): no answer within 0.5s"), "{text}");
    assert!(!text.contains("t0k3n") && !text.contains("127.0.0.1"), "{text}");
    assert_eq!(r.calls().len(), 3);
}

#[tokio::test]
async fn a_dry_run_sends_nothing_and_reads_no_secret() {
    let r = Receiver::answering(vec![Some((200, vec![]))]).await;
    let outcome = runner(&[]).dry_run(true).run(&webhook(), &summary()).await.unwrap();
    let Outcome::DryRun { body } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(body["data"]["suite"], summary().suite);
    assert!(r.calls().is_empty());
}

#[tokio::test]
async fn an_unset_secret_is_named_and_a_broken_template_says_where() {
    let err = runner(&[]).run(&webhook(), &summary()).await.unwrap_err();
    assert!(err.to_string().contains("`HOOK_URL` is not set"), "{err}");
    let guard = tempfile::Builder::new()
        .prefix("pit-actions-template-")
        .tempdir()
        .unwrap();
    let dir = guard.path();
    let file = dir.join("mine.json.j2");
    // A `.json` template escapes values as JSON on its own…
    std::fs::write(
        &file,
        "{\"suite\": {{ summary.suite }}, \"error\": {{ summary.failing[0].stream }}}",
    )
    .unwrap();
    let action = Action::Slack {
        webhook: SecretRef::Env("X".into()),
        template: Some(file.clone()),
    };
    let Outcome::DryRun { body } = runner(&[]).dry_run(true).run(&action, &summary()).await.unwrap() else {
        panic!("a dry run")
    };
    assert_eq!(body["error"], "POST /orders");
    // …but what it writes must still be JSON.
    std::fs::write(&file, "{\"suite\": {{ summary.suite }},}").unwrap();
    let action = Action::Slack {
        webhook: SecretRef::Env("X".into()),
        template: Some(file.clone()),
    };
    let err = runner(&[]).dry_run(true).run(&action, &summary()).await.unwrap_err();
    let text = pit_core::engine::error_chain(&err);
    assert!(
        text.contains("mine.json.j2") && text.contains("did not make JSON"),
        "{text}"
    );
}

#[tokio::test]
async fn github_sets_a_commit_status_and_writes_the_step_summary_and_annotations() {
    let r = Receiver::answering(vec![Some((201, vec![]))]).await;
    let mut s = summary();
    s.commit = Some("0123456789abcdef0123456789abcdef01234567".into());
    let dir = tempfile::tempdir().unwrap();
    let step_summary = dir.path().join("step-summary.md");
    std::fs::write(&step_summary, "earlier step\n").unwrap();
    let token = "ghs_t0k3n".to_owned();
    let action: Action = "github".parse().unwrap();
    let run = runner(&[
        ("GITHUB_TOKEN", token.clone()),
        ("GITHUB_REPOSITORY", "acme/shop".into()),
        ("GITHUB_API_URL", format!("{}/api/v3/", r.url)),
        ("GITHUB_STEP_SUMMARY", step_summary.display().to_string()),
        ("GITHUB_ACTIONS", "true".into()),
    ]);
    let Outcome::Github {
        delivered,
        step_summary: written,
        annotations,
    } = run.run(&action, &s).await.unwrap()
    else {
        panic!("not a github outcome")
    };
    assert_eq!(delivered.status, 201);
    let got = r.calls();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].path,
        "/api/v3/repos/acme/shop/statuses/0123456789abcdef0123456789abcdef01234567"
    );
    let h = &got[0].headers;
    assert_eq!(h["authorization"], format!("Bearer {token}").as_str());
    assert_eq!(h["accept"], "application/vnd.github+json");
    assert_eq!(h["x-github-api-version"], "2022-11-28");
    assert!(h["user-agent"].to_str().unwrap().starts_with("pit/"));
    assert_eq!(
        got[0].body,
        serde_json::json!({
            "state": "failure",
            "target_url": "https://reports.example.com/shop/checkout/1/",
            "description": "1 failing stream(s): POST /orders",
            "context": format!("pit/{}", s.suite),
        })
    );
    // The step summary is appended to, with the failing stream's figures.
    assert_eq!(written.as_deref(), Some(step_summary.as_path()));
    let md = std::fs::read_to_string(&step_summary).unwrap();
    assert!(md.starts_with("earlier step\n### :x: PIT: "), "{md}");
    let check = &s.failing[0].checks[0];
    assert!(
        md.contains(&format!(
            "| {} | POST /orders | `{}` | {} |",
            s.failing[0].scenario, check.metric, check.required
        )),
        "{md}"
    );
    // One annotation per failing stream, escaped as a workflow command.
    assert_eq!(annotations.len(), s.failing.len());
    assert!(
        annotations[0].starts_with(&format!("::error title=PIT {}%3A ", s.suite)),
        "{}",
        annotations[0]
    );
    assert!(!format!("{annotations:?}{md}").contains(&token));
}

#[tokio::test]
async fn github_without_a_repository_or_token_says_what_to_set_and_calls_nothing() {
    let r = Receiver::answering(vec![Some((201, vec![]))]).await;
    let mut s = summary();
    s.commit = Some("0123456789abcdef0123456789abcdef01234567".into());
    let action: Action = "github".parse().unwrap();
    let e = runner(&[]).run(&action, &s).await.unwrap_err();
    assert!(e.to_string().contains("GITHUB_REPOSITORY"), "{e}");
    let e = runner(&[
        ("GITHUB_REPOSITORY", "acme/shop".into()),
        ("GITHUB_API_URL", r.url.clone()),
    ])
    .run(&action, &s)
    .await
    .unwrap_err();
    assert!(e.to_string().contains("`GITHUB_TOKEN` is not set"), "{e}");
    // A repository that would change the URL's path is refused.
    let bad = Action::Github {
        repository: Some("acme/shop/../../admin".into()),
        token: None,
        api_url: Some(r.url.clone()),
        context: None,
        template: None,
    };
    let e = runner(&[("GITHUB_TOKEN", "t".into())]).run(&bad, &s).await.unwrap_err();
    assert!(e.to_string().contains("owner/name"), "{e}");
    assert!(r.calls().is_empty());
}

#[tokio::test]
async fn a_github_dry_run_shows_the_status_and_writes_nothing() {
    let mut s = summary();
    s.commit = Some("0123456789abcdef0123456789abcdef01234567".into());
    let dir = tempfile::tempdir().unwrap();
    let step_summary = dir.path().join("step-summary.md");
    let out = runner(&[
        ("GITHUB_REPOSITORY", "acme/shop".into()),
        ("GITHUB_STEP_SUMMARY", step_summary.display().to_string()),
    ])
    .dry_run(true)
    .run(&"github".parse().unwrap(), &s)
    .await
    .unwrap();
    let Outcome::DryRun { body } = out else {
        panic!("not a dry run")
    };
    assert_eq!(body["status"]["state"], "failure");
    assert!(body["stepSummary"].as_str().unwrap().contains("#### Failing streams"));
    assert_eq!(body["annotations"].as_array().unwrap().len(), s.failing.len());
    assert!(!step_summary.exists());
}
