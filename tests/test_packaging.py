"""The wheel: what it carries, and that mmgene installed from it works without the source tree.

The wheel is built offline from a copy of the checkout (``pip wheel --no-build-isolation``), then
installed with ``--no-deps`` into a fresh virtual environment whose only other packages are this
environment's (a ``.pth`` line naming its site-packages; the editable mmgene there is not loaded), and
used from a folder outside the checkout.
"""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.test_hub_card import MODEL_VALUES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = [
    "mmgene/py.typed",
    "mmgene/_cards/dataset_card.md",
    "mmgene/_cards/model_card.md",
    "mmgene/_data/gene_ids_human.tsv.gz",
    "mmgene/_data/ncbi_genes_human.tsv.gz",
    "mmgene/_data/ncbi_genes_mouse.tsv.gz",
]
SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", "mmgene-demo", ".pytest_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", ignore=SKIP, symlinks=True)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tmp / "src"), "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(tmp / "dist")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (built,) = (tmp / "dist").glob("mmgene-*.whl")
    return built


def test_wheel_carries_package_data_and_only_the_package(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for name in PACKAGE_DATA:
            assert zf.read(name) == (ROOT / name).read_bytes(), name
        metadata = email.message_from_bytes(zf.read("mmgene-0.1.0.dist-info/METADATA"))
        entry_points = zf.read("mmgene-0.1.0.dist-info/entry_points.txt").decode()
    assert {n.split("/")[0] for n in names} == {"mmgene", "mmgene-0.1.0.dist-info"}  # no tests, benchmarks, tools
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mmgene").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert sum((ROOT / n).stat().st_size for n in PACKAGE_DATA) < 4_000_000
    assert "mmgene = mmgene.cli:main" in entry_points
    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    core = {r.name for r in requires if r.marker is None}
    assert {"datasets", "scanpy", "anndata"} <= core
    assert not {r.name for r in requires} & {"celltypist", "goatools"} and "pooch" not in core  # pooch: dev only
    (st,) = [r for r in requires if r.name == "sentence-transformers"]
    assert st.extras == {"train"} and str(st.marker) == 'extra == "ml"'


def test_installed_wheel_works_without_the_source_tree(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # a path line: its .pth files stay unread
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "values.json").write_text(json.dumps(MODEL_VALUES))
    code = """
import json
from pathlib import Path
import mmgene
from mmgene.align.mentions import ncbi_aliases
from mmgene.cards import CARDS_DIR, render_model_card
from mmgene.genes.ids import gene_table
from mmgene.genes.offline_text import OfflineGeneText

card = str(render_model_card(json.loads(Path("values.json").read_text())))
print(json.dumps({
    "file": mmgene.__file__, "cards": str(CARDS_DIR), "ids": len(gene_table().ensembl_to_symbol),
    "version": gene_table().version, "human": OfflineGeneText().n_genes,
    "mouse": OfflineGeneText(species="mouse").n_genes, "cd31": ncbi_aliases()["CD31"],
    "card": 'mmgene.align.load("me/mmgene-pbmc-align")' in card and "{{" not in card,
}))
"""
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, cwd=work, env=env)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    installed = site / "mmgene"
    assert Path(found.pop("file")).parent == installed and Path(found.pop("cards")) == installed / "_cards"
    assert found == {"ids": 62754, "version": "GENCODE v44", "human": 59524, "mouse": 30522, "cd31": ["PECAM1"],
                     "card": True}
    cli = subprocess.run([str(venv / "bin" / "mmgene"), "--version"], capture_output=True, text=True, timeout=60,
                         cwd=work, env=env)
    assert (cli.returncode, cli.stdout.strip()) == (0, "mmgene 0.1.0"), cli.stderr
