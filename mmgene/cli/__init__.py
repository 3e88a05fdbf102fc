"""The ``mmgene`` command line: thin wrappers over the Python API."""

from mmgene.cli.app import app, main

__all__ = ["app", "main"]
