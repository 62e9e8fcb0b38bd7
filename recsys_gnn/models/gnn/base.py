"""Common base of the GNN compressors: argument checks and edge-weight resolution."""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence

import dgl
import torch
from torch import nn


def check_positive_int(name: str, value: int) -> int:
    """Return ``value`` as int, or raise ValueError unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_probability(name: str, value: float) -> float:
    """Return ``value`` as float, or raise ValueError unless it lies in ``[0, 1)``."""
    if not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}")
    return float(value)


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    """Return ``value``, or raise ValueError listing ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_non_negative(name: str, value: float) -> float:
    """Return ``value`` as float, or raise ValueError unless it is finite and >= 0."""
    if not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite float >= 0, got {value!r}")
    return float(value)


class GNNStack(nn.Module, ABC):
    """A stack of message-passing layers mapping node features (N, D) to node features (N, D).

    Subclasses validate their arguments in ``__init__``, end it with ``reset_parameters()``, and write to
    ``graph.ndata``/``graph.edata`` only inside ``graph.local_scope()`` so the caller's graph is untouched.

    Args:
        dim: feature size D of input and output.
        num_layers: number of message-passing layers K, >= 1.
    """

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_layers = check_positive_int("num_layers", num_layers)

    @abstractmethod
    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter."""

    @abstractmethod
    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Propagate features over ``graph``.

        Args:
            graph: homogeneous graph with N nodes and E edges.
            feat: ``(N, D)`` node features.
            edge_weight: ``(E,)`` edge weights; None uses ``graph.edata["w"]``.

        Returns:
            ``(N, D)`` node features.
        """

    def resolve_edge_weight(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, edge_weight: torch.Tensor | None
    ) -> torch.Tensor:
        """Check ``feat`` against the graph and return the ``(E,)`` edge weights to use, on feat's device/dtype.

        Raises:
            ValueError: on a feature shape that does not match the graph and ``dim``, an edge weight of the
                wrong shape, or no weight given while ``graph.edata`` has no ``"w"``.
        """
        if feat.ndim != 2 or feat.shape != (graph.num_nodes(), self.dim):
            raise ValueError(
                f"feat must have shape (num_nodes={graph.num_nodes()}, dim={self.dim}), got {tuple(feat.shape)}"
            )
        if edge_weight is None:
            if "w" not in graph.edata:
                raise ValueError('edge_weight is None and the graph has no edata["w"]; pass edge_weight (E,)')
            edge_weight = graph.edata["w"]
        if edge_weight.shape != (graph.num_edges(),):
            raise ValueError(
                f"edge_weight must have shape ({graph.num_edges()},), got {tuple(edge_weight.shape)}"
            )
        return edge_weight.to(device=feat.device, dtype=feat.dtype)
