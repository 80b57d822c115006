"""``distmi explain`` on the bundled digits CNN."""

from __future__ import annotations

from typer.testing import CliRunner

from distmi.cli import _load_commands, app


def test_explain_digits_writes_a_job(tmp_path):
    _load_commands()
    out = tmp_path / "ex"
    result = CliRunner().invoke(app, ["explain", "digits", "--layer", "act2", "--epochs", "1",
                                      "--no-evaluate", "--figures", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "act2" in result.output and (out / "manifest.json").exists()
    assert (out / "layers" / "act2" / "figures" / "class_means.png").exists()


def test_explain_errors(tmp_path):
    _load_commands()
    runner = CliRunner()
    bad = runner.invoke(app, ["explain", "resnet"])
    assert bad.exit_code == 2 and "unknown bundled model 'resnet'" in bad.output
    bad = runner.invoke(app, ["explain", "digits", "--layer", "act9", "--epochs", "1",
                              "--no-evaluate", "--output", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "no layer named 'act9'" in bad.output
    bad = runner.invoke(app, ["explain", "digits", "--bound", "nwj", "--output",
                              str(tmp_path / "y")])
    assert bad.exit_code == 2 and "bound must be" in bad.output
