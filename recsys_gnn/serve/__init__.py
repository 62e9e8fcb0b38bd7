"""Serving an exported artifact: top-K retrieval (:class:`Artifact`), the HTTP app and the ``recommend`` CLI."""

from __future__ import annotations

from collections.abc import Sequence

from recsys_gnn.serve.artifact import Artifact


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``recsys-gnn-serve`` (same as ``python -m recsys_gnn.serve``)."""
    from recsys_gnn.serve.__main__ import main as serve_main

    return serve_main(argv)


__all__ = ["Artifact", "main"]
