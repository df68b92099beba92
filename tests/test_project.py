"""Project-level checks: pins agree, the first notebook runs under papermill and draws its figure."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_and_pyproject_pin_the_same_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pyproject = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    conda_pip = set(re.findall(r"^\s+- ([A-Za-z0-9_.-]+==[^\s]+)\s*$", (ROOT / "environment.yml").read_text(), re.M))
    assert pyproject == conda_pip
    assert all("==" in pin for pin in pyproject)


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    commands = re.findall(r"```(?:bash|sh)\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)[:2]
    assert len(commands) == 2 and "reproduce" in commands[0] and "test" in commands[1]
    assert commands[1].strip() in (ROOT / ".ci" / "run").read_text()


def test_environments_notebook_runs_under_papermill(tmp_path, monkeypatch):
    import nbformat

    from gsa.reproduce import run_notebook

    monkeypatch.setenv("GSA_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("GSA_RESULTS_DIR", str(tmp_path / "results"))
    output = run_notebook("00_environments", "smoke", random_steps=0)
    assert output == tmp_path / "results" / "notebooks" / "smoke" / "00_environments.ipynb"
    assert (tmp_path / "figures" / "environments.png").stat().st_size > 50_000
    assert (tmp_path / "figures" / "environments.pdf").exists()
    cells = nbformat.read(output, as_version=4).cells
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in cells)


def test_built_notebooks_match_their_jupytext_sources():
    import jupytext

    from gsa.reproduce import cells

    for source in sorted((ROOT / "notebooks").glob("[0-9]*.py")):
        built = source.with_suffix(".ipynb")
        assert built.exists(), f"{built.name} missing: run `make notebooks`"
        assert cells(jupytext.read(built)) == cells(jupytext.read(source)), f"{built.name} is stale: `make notebooks`"
