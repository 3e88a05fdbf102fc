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
