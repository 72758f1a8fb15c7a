"""The ``curate`` command line: one module per command group, all registered on ``app``."""

from curate.cli.main import app, main

__all__ = ["app", "main"]
