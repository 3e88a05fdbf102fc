"""`import mmgene` and the CLI must not load the heavy stack."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "faiss", "datasets", "scanpy", "sentence_transformers", "openai")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys; {code}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_import_mmgene_is_light():
    assert loaded_after("import mmgene") == []


def test_cli_app_is_light():
    assert loaded_after("import mmgene.cli.app") == []


def test_subpackage_namespaces_are_light():
    assert loaded_after("import mmgene.io, mmgene.genes, mmgene.embed, mmgene.errors") == []


def test_lazy_attribute_access():
    import mmgene

    assert mmgene.io.read is not None
    assert "io" in dir(mmgene)


# -- optional packages: a missing one is a one-line DependencyError naming the extra ----------------

import json  # noqa: E402
import tomllib  # noqa: E402
from importlib.metadata import distribution as installed_distribution  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from packaging.requirements import Requirement  # noqa: E402

from mmgene.errors import DependencyError  # noqa: E402
from mmgene.lazy import CORE, EXTRAS, distribution, missing_dependency, require  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: makes the packages named in HIDDEN (a JSON list in the environment) unimportable, as if not installed.
HIDE = """
import importlib.abc, json, os, sys
HIDDEN = json.loads(os.environ["HIDDEN"])
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
"""


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def _provides(dist: str, top: str) -> bool:
    """Whether the installed distribution ``dist`` provides the import name ``top``."""
    found = installed_distribution(dist)
    tops = (found.read_text("top_level.txt") or "").split()
    return top in tops or any(f.parts[0] in (top, f"{top}.py") for f in found.files or ())


def test_extras_table_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for top, extra in EXTRAS.items():
        assert distribution(top) in _names(extras[extra]), f"{top} ({distribution(top)}) is not in the extra {extra!r}"
        assert _provides(distribution(top), top)
    listed = {distribution(top) for top in EXTRAS}
    for extra, reqs in extras.items():
        if extra not in ("all", "dev"):
            assert _names(reqs) <= listed, f"extra {extra!r} installs packages mmgene.lazy.EXTRAS does not name"
    assert _names(extras["all"][0].split("[")[1].rstrip("]").split(",")) == set(extras) - {"all", "dev"}
    core = _names(project["dependencies"])
    scanpy = _names([r for r in installed_distribution("scanpy").requires or () if "extra ==" not in r])
    for top in CORE:
        assert distribution(top) in core or distribution(top) in scanpy, f"{top} is not installed with mmgene"
        assert _provides(distribution(top), top)
    assert not set(EXTRAS) & CORE


@pytest.fixture
def hidden(monkeypatch):
    """Hide packages in this process: ``hidden('faiss')`` (restored after the test)."""

    def hide(*names: str) -> None:
        namespace: dict = {}
        monkeypatch.setenv("HIDDEN", json.dumps(names))
        before = list(sys.meta_path)
        exec(HIDE, namespace)
        monkeypatch.setattr(sys, "meta_path", sys.meta_path)
        finder = sys.meta_path[0]
        sys.meta_path[:] = before
        monkeypatch.setattr(sys, "meta_path", [finder, *before])
        for mod in [m for m in sys.modules if m.split(".")[0] in names]:
            monkeypatch.delitem(sys.modules, mod)

    return hide


def test_require_names_the_extra_of_a_missing_package(hidden):
    hidden("faiss", "datasets")
    with pytest.raises(DependencyError) as info:
        require("faiss", "The cell index")
    assert str(info.value) == (
        "The cell index needs the package 'faiss', which is not installed. What to do: pip install \"mmgene[index]\"."
    )
    with pytest.raises(DependencyError) as info:
        require("datasets.table", "a token dataset")
    assert str(info.value) == (
        "a token dataset needs the package 'datasets', which is not installed. "
        "What to do: pip install datasets (a dependency of mmgene)."
    )


def test_require_says_when_an_installed_package_is_too_old():
    from importlib.metadata import version

    with pytest.raises(DependencyError) as info:
        require("jinja2.no_such_module", "rendering a card")
    assert str(info.value) == (
        f"rendering a card needs a newer jinja2 than the installed "
        f"{version('jinja2')} (ModuleNotFoundError: No module named 'jinja2.no_such_module'). "
        'What to do: pip install --upgrade "mmgene[hub]".'
    )


def test_other_import_errors_are_not_dressed_up():
    with pytest.raises(ModuleNotFoundError):
        require("mmgene.no_such_module", "x")
    assert missing_dependency(ModuleNotFoundError("No module named 'lxml'", name="lxml"), "x") is None


def _run(code: str, hidden: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "HIDDEN": json.dumps(hidden), "MMGENE_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", HIDE + code], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def test_lazy_namespace_turns_a_missing_package_into_dependency_error(tmp_path):
    code = "import mmgene\ntry:\n    mmgene.align.train\nexcept Exception as exc:\n    print(type(exc).__name__, exc)"
    out = _run(code, ("torch",), tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "DependencyError mmgene.align.train needs the package 'torch', which is not installed. "
        'What to do: pip install "mmgene[ml]".'
    )


@pytest.fixture
def tiny_h5ad(tmp_path) -> Path:
    import anndata as ad
    import numpy as np
    import pandas as pd

    X = np.array([[5, 0, 1], [0, 3, 2], [1, 1, 0], [4, 0, 0]], dtype=np.float32)
    obs = pd.DataFrame({"cell_type": ["T cell", "B cell", "T cell", "B cell"]}, index=[f"c{i}" for i in range(4)])
    path = tmp_path / "tiny.h5ad"
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=["CD3E", "MS4A1", "LYZ"])).write_h5ad(path)
    return path


CLI = "import sys\nfrom mmgene.cli import main\nsys.argv = ['mmgene', *sys.argv[1:]]\nmain()\n"


@pytest.mark.parametrize(
    "hide, args, message",
    [
        (("datasets",), ["sentences", "{h5ad}", "{tmp}/sentences"],
         "this command needs the package 'datasets', which is not installed. "
         "What to do: pip install datasets (a dependency of mmgene)."),
        (("torch",), ["train", "{h5ad}", "--label-col", "cell_type", "--out", "{tmp}/model"],
         "mmgene.align.train needs the package 'torch', which is not installed. What to do: pip install \"mmgene[ml]\"."),
    ],
    ids=["sentences-without-datasets", "train-without-torch"],
)
def test_cli_missing_package_is_one_line_exit_2(tiny_h5ad, tmp_path, hide, args, message):
    argv = [a.format(h5ad=tiny_h5ad, tmp=tmp_path) for a in args]
    env = {**__import__("os").environ, "HIDDEN": json.dumps(hide), "MMGENE_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", HIDE + CLI, *argv], capture_output=True, text=True, timeout=120,
                         env=env, cwd=tmp_path)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, out.stderr
    assert lines == [f"mmgene: error: {message}"], out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.h5ad"]  # nothing written


def test_importing_a_submodule_does_not_shadow_the_function_of_the_same_name():
    """``mmgene.embed.geneformer`` is the function even after ``mmgene/embed/geneformer.py`` was imported
    (Python binds an imported submodule on its package)."""
    import importlib

    import mmgene.embed

    module = importlib.import_module("mmgene.embed.geneformer")
    from mmgene.embed import geneformer

    assert callable(geneformer) and geneformer is module.geneformer
    assert mmgene.embed.geneformer is module.geneformer
