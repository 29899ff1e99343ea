"""Pitfile.load / from_str, .validate() and .plan() against the CLI's fixtures."""

from pathlib import Path

import pytest

import pit

TESTDATA = Path(__file__).resolve().parents[2] / "pit-core" / "tests" / "testdata"


def test_a_valid_pitfile_validates_and_plans_as_pit_plan_does(repo: Path) -> None:
    pitfile = pit.Pitfile.load(repo / "examples" / "node-1" / "pitfile.yml")
    assert pitfile.validate() == []
    plan = pitfile.plan(run_id="01jq3v5c2m8k4r6t9w0x1y2z3a")
    assert plan["schema"] == "pit.plan/v1"
    assert plan["project"] == "node-1"
    suite = plan["suites"][0]
    assert suite["environment"] == "pit-node-1-items-01jq3v5c2m8k4r6t9w0x1y2z3a"
    # Waves in dependency order: the api after the store and the audit log.
    waves = [[c["id"] for c in wave] for wave in suite["waves"]]
    assert waves == [["store", "audit"], ["api"]]
    assert suite["testApp"]["id"] == "node-1-test-app"


def test_errors_raise_pitfile_error_with_line_column_path_and_message() -> None:
    pitfile = pit.Pitfile.load(TESTDATA / "invalid" / "unknown-dependency.yml")
    with pytest.raises(pit.PitfileError) as raised:
        pitfile.validate()
    err = raised.value
    assert err.exit_code == 2
    assert [d.code for d in err.diagnostics] == ["pit::unknown-dependency"] * 2
    d = err.diagnostics[0]
    assert d.severity == "error"
    assert d.path == "testSuites[0].deployment.graph.components[1].dependsOn[0]"
    assert (d.line, d.column) == (15, 47)
    assert "unknown component" in d.message
    assert d.file.endswith("unknown-dependency.yml")
    # The message is what `pit validate` prints: the source excerpt and the help.
    assert f"{d.file}:{d.line}:{d.column}" in str(err)
    assert d.help and d.help in str(err)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(pit.PitfileError) as raised:
        pit.Pitfile.load(TESTDATA / "invalid" / "many-problems.yml").validate()
    assert len({d.code for d in raised.value.diagnostics}) > 1


def test_plan_refuses_an_invalid_pitfile() -> None:
    with pytest.raises(pit.PitfileError):
        pit.Pitfile.load(TESTDATA / "invalid" / "dependency-cycle.yml").plan()


def test_text_yaml_errors_point_at_the_line() -> None:
    text = 'version: "1.0"\nprojectName: x\ntestSuites:\n  - name: a\n   id: b\n'
    with pytest.raises(pit.PitfileError) as raised:
        pit.Pitfile.from_str(text, name="inline.yml").validate()
    d = raised.value.diagnostics[0]
    assert d.file == "inline.yml" and d.line in (4, 5)


def test_warnings_are_returned_and_strict_makes_unknown_keys_errors() -> None:
    text = (TESTDATA / "valid" / "minimal.yml").read_text().replace("projectName: minimal", "projectName: minimal\nowner: me")
    pitfile = pit.Pitfile.from_str(text)
    warnings = pitfile.validate()
    assert [w.code for w in warnings] == ["pit::unknown-key"]
    assert warnings[0].path == "owner"
    with pytest.raises(pit.PitfileError):
        pitfile.validate(strict=True)


def test_env_placeholders_come_from_the_given_mapping() -> None:
    text = (TESTDATA / "valid" / "minimal.yml").read_text().replace("projectName: minimal", "projectName: ${{ env.PROJECT }}")
    assert pit.Pitfile.from_str(text, env={"PROJECT": "from-env"}).plan()["project"] == "from-env"
    # Unset: a warning, as for `pit validate`.
    assert [w.code for w in pit.Pitfile.from_str(text, env={}).validate()] == ["pit::unset-env"]


def test_a_missing_file_raises_pitfile_error_without_diagnostics(tmp_path: Path) -> None:
    with pytest.raises(pit.PitfileError) as raised:
        pit.Pitfile.load(tmp_path / "nope.yml")
    assert raised.value.diagnostics == []
    assert "cannot read pitfile" in str(raised.value)
    assert isinstance(raised.value, pit.PitError)


def test_to_dict_is_the_model_with_the_pitfile_key_names(repo: Path) -> None:
    model = pit.Pitfile.load(repo / "examples" / "node-1" / "pitfile.yml").to_dict()
    assert model["projectName"] == "node-1"
    assert model["testSuites"][0]["deployment"]["graph"]["testApp"]["id"] == "node-1-test-app"


def test_a_bad_run_id_is_a_value_error(repo: Path) -> None:
    with pytest.raises(ValueError, match="run_id"):
        pit.Pitfile.load(repo / "examples" / "node-1" / "pitfile.yml").plan(run_id="not a ulid")
