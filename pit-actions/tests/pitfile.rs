//! Every action a pitfile's `postTestActions` can hold becomes an action that runs.

use pit_actions::action::Action;
use pit_actions::secret::SecretRef;

#[test]
fn every_action_of_a_valid_pitfile_converts_with_its_settings() {
    let loaded = pit_core::pitfile::load_file(
        "../pit-core/tests/testdata/valid/post-test-actions.yml".as_ref(),
        &pit_core::pitfile::LoadOptions::default(),
    )
    .unwrap();
    let section = loaded.pitfile.post_test_actions.unwrap();
    let all: Vec<Action> = [&section.on_pass, &section.on_fail, &section.on_regression]
        .into_iter()
        .flatten()
        .map(|spec| Action::try_from(spec).unwrap())
        .collect();
    let names: Vec<&str> = all.iter().map(Action::name).collect();
    assert_eq!(
        names,
        ["git-tag", "slack", "teams", "webhook", "github", "git-tag", "slack"]
    );
    assert_eq!(
        all[4],
        Action::Github {
            repository: Some("acme/shop".into()),
            token: None,
            api_url: Some("https://github.example.com/api/v3".into()),
            context: Some("pit/perf".into()),
            template: None,
        }
    );
    assert_eq!(
        all[5],
        Action::GitTag {
            repository: Some("https://git.example.com/acme/shop.git".into()),
            git_ref: Some("refs/remotes/origin/main".into()),
            pass_tag: None,
            fail_tag: None,
            token: Some(SecretRef::Env("GIT_TAG_TOKEN".into())),
        }
    );
    assert!(matches!(&all[0], Action::GitTag { pass_tag: Some(t), .. } if t == "perf-ok-{{ sha7 }}"));
}
