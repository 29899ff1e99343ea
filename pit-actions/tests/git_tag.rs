//! The git-tag action against real repositories: a bare repository served by `git daemon`, and
//! a working copy on disk.

use std::path::Path;

use pit_actions::action::{Action, Outcome, Runner};
use pit_actions::summary::{Links, Summary};
use pit_git::testing::{git, git_output, GitDaemon};

/// A bare repository `app.git` under `base` with two commits on `main`; the tip's id.
fn repository(base: &Path) -> String {
    let work = base.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(base, &["init", "-q", "--bare", "-b", "main", "app.git"]);
    git(&work, &["init", "-q", "-b", "main"]);
    for n in ["one", "two"] {
        std::fs::write(work.join("file"), n).unwrap();
        git(&work, &["add", "file"]);
        git(&work, &["commit", "-q", "-m", n]);
    }
    git(&work, &["push", "-q", base.join("app.git").to_str().unwrap(), "main"]);
    git_output(&work, &["rev-parse", "HEAD"]).trim().to_owned()
}

/// The tags of the repository at `dir`: `name sha` lines.
fn tags(dir: &Path) -> String {
    git_output(
        dir,
        &["for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags"],
    )
}

fn summary(verdict: &'static str, commit: &str) -> Summary {
    let report =
        pit_report::Report::load("../pit-report/tests/testdata/existing-toolkit-report.json".as_ref()).unwrap();
    let mut s = Summary::of(&report, None, Links::default());
    s.verdict = verdict;
    s.commit = Some(commit.to_owned());
    s
}

fn tag_action(repository: &str, git_ref: Option<&str>) -> Action {
    Action::GitTag {
        repository: Some(repository.to_owned()),
        git_ref: git_ref.map(str::to_owned),
        pass_tag: None,
        fail_tag: None,
        token: None,
    }
}

fn runner() -> Runner {
    Runner::new(|_| None)
}

#[tokio::test]
async fn a_pass_then_a_fail_moves_the_tag_on_the_served_repository() {
    let base = tempfile::tempdir().unwrap();
    let sha = repository(base.path());
    let sha7 = &sha[..7];
    let daemon = GitDaemon::start(base.path());
    let action = tag_action(&daemon.url("app.git"), None);
    let bare = base.path().join("app.git");

    let Outcome::Tagged(plan) = runner().run(&action, &summary("passed", &sha)).await.unwrap() else {
        panic!("not tagged")
    };
    assert_eq!((plan.tag, plan.delete), (Some(format!("dpt-pass-{sha7}")), None));
    assert_eq!(tags(&bare), format!("dpt-pass-{sha7} {sha}\n"));

    let Outcome::Tagged(plan) = runner().run(&action, &summary("failed", &sha)).await.unwrap() else {
        panic!("not tagged")
    };
    assert_eq!(plan.tag, Some(format!("dpt-fail-{sha7}")));
    assert_eq!(plan.delete, Some(format!("dpt-pass-{sha7}")));
    assert_eq!(tags(&bare), format!("dpt-fail-{sha7} {sha}\n"));

    // The same outcome again: nothing to change, and nothing changes.
    let Outcome::Tagged(plan) = runner().run(&action, &summary("failed", &sha)).await.unwrap() else {
        panic!("not tagged")
    };
    assert!(plan.unchanged && plan.delete.is_none(), "{plan:?}");
    assert_eq!(tags(&bare), format!("dpt-fail-{sha7} {sha}\n"));
}

#[tokio::test]
async fn a_dry_run_leaves_the_served_and_the_local_repository_untouched() {
    let base = tempfile::tempdir().unwrap();
    let sha = repository(base.path());
    let daemon = GitDaemon::start(base.path());
    let (bare, work) = (base.path().join("app.git"), base.path().join("work"));
    // A failed run tagged both earlier.
    for repo in [daemon.url("app.git"), work.display().to_string()] {
        runner()
            .run(&tag_action(&repo, None), &summary("failed", &sha))
            .await
            .unwrap();
    }
    let before = (tags(&bare), tags(&work));
    assert!(
        before.0.contains("dpt-fail-") && before.1.contains("dpt-fail-"),
        "{before:?}"
    );

    for repo in [daemon.url("app.git"), work.display().to_string()] {
        let out = runner()
            .dry_run(true)
            .run(&tag_action(&repo, None), &summary("passed", &sha))
            .await
            .unwrap();
        let Outcome::DryRun { body } = out else {
            panic!("not a dry run")
        };
        assert_eq!(body["tag"], format!("dpt-pass-{}", &sha[..7]));
        assert_eq!(body["delete"], format!("dpt-fail-{}", &sha[..7]));
        assert_eq!(body["commit"], sha);
    }
    assert_eq!((tags(&bare), tags(&work)), before);
}

#[tokio::test]
async fn refs_name_branches_remote_branches_and_tags_as_the_existing_toolkit_takes_them() {
    let base = tempfile::tempdir().unwrap();
    let sha = repository(base.path());
    let daemon = GitDaemon::start(base.path());
    let url = daemon.url("app.git");
    for git_ref in ["main", "refs/remotes/origin/main", "refs/heads/main", &sha[..7]] {
        let out = runner()
            .dry_run(true)
            .run(&tag_action(&url, Some(git_ref)), &summary("passed", "unused"))
            .await
            .unwrap();
        let Outcome::DryRun { body } = out else {
            panic!("not a dry run")
        };
        assert_eq!(body["commit"], sha, "{git_ref}");
    }
    let e = runner()
        .run(&tag_action(&url, Some("no-such-branch")), &summary("passed", &sha))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no commit, branch or tag `no-such-branch`"),
        "{e}"
    );
}

#[tokio::test]
async fn tag_templates_name_the_tags_and_bad_names_are_refused() {
    let base = tempfile::tempdir().unwrap();
    let sha = repository(base.path());
    let bare = base.path().join("app.git");
    let custom = Action::GitTag {
        repository: Some(bare.display().to_string()),
        git_ref: None,
        pass_tag: Some("perf/{{ summary.suite | lower | replace(' ', '-') }}/ok-{{ sha[:10] }}".into()),
        fail_tag: Some("perf/failed".into()),
        token: None,
    };
    let s = summary("passed", &sha);
    let Outcome::Tagged(plan) = runner().run(&custom, &s).await.unwrap() else {
        panic!("not tagged")
    };
    let tag = plan.tag.unwrap();
    assert!(
        tag.starts_with("perf/") && tag.ends_with(&format!("/ok-{}", &sha[..10])),
        "{tag}"
    );
    assert_eq!(tags(&bare), format!("{tag} {sha}\n"));
    let bad = Action::GitTag {
        repository: Some(bare.display().to_string()),
        git_ref: None,
        pass_tag: Some("has space..{{ sha7 }}".into()),
        fail_tag: None,
        token: None,
    };
    let e = runner().run(&bad, &s).await.unwrap_err();
    assert!(e.to_string().contains("is not a valid tag name"), "{e}");
}

#[tokio::test]
async fn without_a_repository_the_origin_of_the_working_folder_is_tagged() {
    let base = tempfile::tempdir().unwrap();
    let sha = repository(base.path());
    let work = base.path().join("work");
    git(
        &work,
        &["remote", "add", "origin", base.path().join("app.git").to_str().unwrap()],
    );
    let out = runner()
        .with_workdir(&work)
        .run(&"git-tag".parse().unwrap(), &summary("passed", &sha))
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Tagged(_)));
    assert!(tags(&base.path().join("app.git")).starts_with("dpt-pass-"));
    let e = runner()
        .with_workdir(base.path())
        .run(&"git-tag".parse().unwrap(), &summary("passed", &sha))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no repository to tag"), "{e}");
}

#[tokio::test]
async fn an_empty_tag_template_sets_no_tag_but_still_removes_the_opposite_one() {
    // The existing toolkit's `--test-pass-actions tag-git-repository` alone: a failure removes
    // the pass tag and adds none.
    let base = tempfile::tempdir().unwrap();
    let sha = repository(base.path());
    let bare = base.path().join("app.git");
    let pass_only = Action::GitTag {
        repository: Some(bare.display().to_string()),
        git_ref: None,
        pass_tag: None,
        fail_tag: Some(String::new()),
        token: None,
    };
    runner().run(&pass_only, &summary("passed", &sha)).await.unwrap();
    assert!(tags(&bare).starts_with("dpt-pass-"));
    let Outcome::Tagged(plan) = runner().run(&pass_only, &summary("failed", &sha)).await.unwrap() else {
        panic!("not tagged")
    };
    assert_eq!((plan.tag, plan.delete), (None, Some(format!("dpt-pass-{}", &sha[..7]))));
    assert_eq!(tags(&bare), "");
}
