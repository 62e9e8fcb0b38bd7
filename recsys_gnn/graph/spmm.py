"""Cached CSR sparse-dense products for propagation with edge weights (torch only, no DGL at import).

:func:`propagate` computes ``out[dst] += w[e] * feat[src]`` over a graph's edges - DGL's
``update_all(u_mul_e, sum)`` - as one ``torch.sparse`` CSR matrix product. The CSR structure (rows = edge
destinations) and the structure of its transpose (rows = sources, used by the backward pass) are built once per
graph and device from ``graph.edges()`` and kept beside the graph; each call only permutes the ``(E,)`` edge
weights into both CSR orders, so weights that change every step (the compressor's ``cold_dropout``) stay cheap.

The operator lives on the features' device, not the graph's: a graph held on the CPU (a CPU-only DGL build)
still propagates CUDA features on the GPU.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

BACKENDS = ("csr", "dgl")  # propagation backends of the fixed-weight GNNs (GCN, LightGCN)


@dataclass
class CSRPair:
    """The CSR structure of ``A`` (``A[dst, src] = w``) and of ``A^T``, on one device.

    Duplicate ``(dst, src)`` edges share one CSR slot (their weights add up).

    Attributes:
        n_dst / n_src: matrix shape ``(n_dst, n_src)``.
        crow / col: ``(n_dst + 1,)`` / ``(S,)`` int64 CSR of ``A``, ``S`` distinct pairs.
        slot: ``(E,)`` CSR position of each edge in ``A`` (``None``: edges sorted by ``perm`` fill the slots).
        perm: ``(E,)`` edge ids in ``A``'s CSR order (only without duplicates).
        crow_t / col_t / slot_t / perm_t: the same for ``A^T``.
        n_edges: E, checked at every call against the graph.
        memo: the last matrix built per orientation, with the weight tensor (weakly) and its version it came
            from: LightGCN's K layers, forward and backward, reuse one weight tensor, so its values are
            permuted once per orientation instead of once per product (a weight changed in place, or a new
            weight tensor as with ``cold_dropout``, is permuted again).
    """

    n_dst: int
    n_src: int
    crow: Tensor
    col: Tensor
    perm: Tensor | None
    slot: Tensor | None
    crow_t: Tensor
    col_t: Tensor
    perm_t: Tensor | None
    slot_t: Tensor | None
    n_edges: int
    memo: dict[bool, tuple[Any, int, Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def values(self, weight: Tensor, transpose: bool = False) -> Tensor:
        """``(S,)`` CSR values of ``A`` (or ``A^T``) from ``(E,)`` edge weights in edge-id order."""
        perm, slot = (self.perm_t, self.slot_t) if transpose else (self.perm, self.slot)
        if perm is not None:
            return weight[perm]
        size = (self.col_t if transpose else self.col).shape[0]
        return weight.new_zeros(size).index_add_(0, slot, weight)

    def matrix(self, weight: Tensor, transpose: bool = False) -> Tensor:
        """Sparse CSR ``A`` ``(n_dst, n_src)`` (or ``A^T``) holding ``weight`` ``(E,)`` (see ``memo``)."""
        # inference tensors (weights computed under torch.inference_mode, e.g. GAT's attention at test time)
        # have no version counter: they are not memoised
        memoise = not weight.is_inference()
        hit = self.memo.get(transpose) if memoise else None
        if hit is not None and hit[0]() is weight and hit[1] == weight._version:
            return hit[2]
        crow, col = (self.crow_t, self.col_t) if transpose else (self.crow, self.col)
        shape = (self.n_src, self.n_dst) if transpose else (self.n_dst, self.n_src)
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state", once per process
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            with torch.no_grad():  # values are data: _CSRProduct computes the weight's gradient itself
                mat = torch.sparse_csr_tensor(crow, col, self.values(weight, transpose), shape)
        if memoise:
            self.memo[transpose] = (weakref.ref(weight), weight._version, mat)
        return mat


def _csr(
    rows: Tensor, cols: Tensor, n_rows: int, n_cols: int
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """CSR ``(crow, col, perm, slot)`` of the pairs ``(rows[e], cols[e])``; see :class:`CSRPair`."""
    key = rows * n_cols + cols
    order = torch.argsort(key, stable=True)
    sorted_key = key[order]
    uniq, inverse = torch.unique_consecutive(sorted_key, return_inverse=True)
    crow = torch.zeros(n_rows + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(uniq // n_cols, minlength=n_rows), 0)
    col = uniq % n_cols
    if len(uniq) == len(key):
        return crow, col, order, None
    slot = torch.empty_like(inverse)
    slot[order] = inverse
    return crow, col, None, slot


def build_csr_pair(src: Tensor, dst: Tensor, n_src: int, n_dst: int) -> CSRPair:
    """The :class:`CSRPair` of edges ``src[e] -> dst[e]`` (built on the CPU)."""
    src, dst = src.detach().cpu().long(), dst.detach().cpu().long()
    crow, col, perm, slot = _csr(dst, src, n_dst, n_src)
    crow_t, col_t, perm_t, slot_t = _csr(src, dst, n_src, n_dst)
    return CSRPair(n_dst, n_src, crow, col, perm, slot, crow_t, col_t, perm_t, slot_t, int(src.numel()))


def _to(pair: CSRPair, device: torch.device) -> CSRPair:
    moved = {
        k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in pair.__dict__.items() if k != "memo"
    }
    return CSRPair(**moved)


# graph -> {device: CSRPair}; entries go away with the graph
_CACHE: weakref.WeakKeyDictionary[Any, dict[torch.device, CSRPair]] = weakref.WeakKeyDictionary()


def csr_pair(graph: Any, device: torch.device | str) -> CSRPair:
    """The cached :class:`CSRPair` of a DGL graph's edges on ``device`` (built on first use).

    The cache is keyed by the graph object (weakly) and the device; it is rebuilt when the graph's edge count
    or node count changed since (DGL graphs are otherwise immutable in structure).
    """
    device = torch.device(device)
    cpu_device = torch.device("cpu")
    per_graph = _CACHE.setdefault(graph, {})
    shape = (graph.num_src_nodes(), graph.num_dst_nodes(), graph.num_edges())
    pair = per_graph.get(device)
    if pair is not None and (pair.n_src, pair.n_dst, pair.n_edges) == shape:
        return pair
    cpu = per_graph.get(cpu_device)
    if cpu is None or (cpu.n_src, cpu.n_dst, cpu.n_edges) != shape:
        per_graph.clear()
        src, dst = graph.edges(order="eid")
        cpu = build_csr_pair(src, dst, shape[0], shape[1])
        per_graph[cpu_device] = cpu  # the CPU copy is kept: other devices are copied from it
    pair = cpu if device == cpu_device else _to(cpu, device)
    per_graph[device] = pair
    return pair


class _CSRProduct(torch.autograd.Function):
    """``A(w) @ feat`` with ``A^T(w) @ grad`` as the feature gradient (same cached structure, permuted values)."""

    @staticmethod
    def forward(ctx, feat: Tensor, weight: Tensor, pair: CSRPair) -> Tensor:  # type: ignore[override]
        ctx.pair = pair
        ctx.save_for_backward(feat, weight)
        return torch.sparse.mm(pair.matrix(weight), feat)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        feat, weight = ctx.saved_tensors
        pair: CSRPair = ctx.pair
        grad = grad.contiguous()
        grad_feat = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feat = torch.sparse.mm(pair.matrix(weight, transpose=True), grad)
        if ctx.needs_input_grad[1]:
            # d out[dst] / d w[e] = feat[src]: per-edge dot products, in edge-id order
            src, dst = _edge_endpoints(pair)
            grad_weight = (grad[dst] * feat[src]).sum(-1)
        return grad_feat, grad_weight, None


def _edge_endpoints(pair: CSRPair) -> tuple[Tensor, Tensor]:
    """``(src, dst)`` ``(E,)`` of each edge in edge-id order, recovered from the CSR of ``A``."""
    rows = torch.repeat_interleave(
        torch.arange(pair.n_dst, device=pair.crow.device), pair.crow[1:] - pair.crow[:-1]
    )
    if pair.perm is not None:
        src = torch.empty_like(pair.col)
        dst = torch.empty_like(rows)
        src[pair.perm] = pair.col
        dst[pair.perm] = rows
        return src, dst
    return pair.col[pair.slot], rows[pair.slot]


def propagate(graph: Any, feat: Tensor, edge_weight: Tensor) -> Tensor:
    """``out[v] = sum over edges u -> v of edge_weight[e] * feat[u]`` (DGL's ``u_mul_e`` + ``sum``).

    Args:
        graph: a homogeneous DGL graph (only its edges and node counts are read; it may be on any device).
        feat: ``(N_src, D)`` source-node features; the product runs on their device.
        edge_weight: ``(E,)`` weights in edge-id order (moved to ``feat``'s device and dtype).

    Returns:
        ``(N_dst, D)``; nodes without incoming edges get zeros. Differentiable in ``feat`` and ``edge_weight``.
    """
    _check_inputs(graph, feat, edge_weight)
    pair = csr_pair(graph, feat.device)
    weight = edge_weight.to(device=feat.device, dtype=feat.dtype)
    return _CSRProduct.apply(feat.contiguous(), weight, pair)


def _check_inputs(graph: Any, feat: Tensor, edge_weight: Tensor) -> None:
    """Raise ValueError unless ``feat`` is ``(N_src, D)`` and ``edge_weight`` ``(E,)`` for ``graph``."""
    if feat.dim() != 2 or feat.shape[0] != graph.num_src_nodes():
        raise ValueError(f"feat must be (num_src_nodes={graph.num_src_nodes()}, D); got {tuple(feat.shape)}")
    if edge_weight.shape != (graph.num_edges(),):
        raise ValueError(f"edge_weight must be ({graph.num_edges()},); got {tuple(edge_weight.shape)}")


class _LayerCombination(torch.autograd.Function):
    """``sum_k c_k A^k feat`` (k = 0..K) by Horner's rule, ``c_0 feat + A (c_1 feat + A (... c_K feat))``: K
    fused ``addmm`` products, and the same with ``A^T`` for the gradient. No layer is kept for the backward
    and no separate scaling or sum runs per layer (fixed weights only: no gradient for ``weight``)."""

    @staticmethod
    def forward(ctx, feat: Tensor, weight: Tensor, pair: CSRPair, coef: list[float]) -> Tensor:  # type: ignore[override]
        ctx.pair, ctx.coef = pair, coef
        ctx.save_for_backward(weight)
        return _horner(pair.matrix(weight), feat, coef)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, None, None]:  # type: ignore[override]
        (weight,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        return _horner(ctx.pair.matrix(weight, transpose=True), grad.contiguous(), ctx.coef), None, None, None


def _horner(mat: Tensor, feat: Tensor, coef: list[float]) -> Tensor:
    """``sum_k coef[k] mat^k feat`` for a sparse ``(N, N)`` ``mat`` and ``(N, D)`` ``feat``."""
    if len(coef) == 1:
        return feat * coef[0]
    h = torch.addmm(feat, mat, feat, beta=coef[-2], alpha=coef[-1])  # c_{K-1} feat + c_K A feat
    for c in reversed(coef[:-2]):
        h = torch.addmm(feat, mat, h, beta=c)  # c * feat + mat @ h
    return h


def layer_combination(graph: Any, feat: Tensor, edge_weight: Tensor, coef: list[float] | Tensor) -> Tensor:
    """``sum_k coef[k] * A^k feat`` for ``k = 0..K`` (LightGCN's layer combination over K propagation steps,
    ``A`` as in :func:`propagate`), as one fused product chain (see :class:`_LayerCombination`).

    Args:
        graph: a homogeneous DGL graph with as many source as destination nodes.
        feat: ``(N, D)`` node features.
        edge_weight: ``(E,)`` fixed weights in edge-id order; one that requires a gradient falls back to
            :func:`propagate` per layer (same numbers).
        coef: the ``K + 1`` layer coefficients.

    Returns:
        ``(N, D)``, differentiable in ``feat``; equal to the per-layer loop to float tolerance.
    """
    coef = [float(c) for c in (coef.tolist() if isinstance(coef, Tensor) else coef)]
    if len(coef) < 1:
        raise ValueError("coef needs at least one entry (layer 0)")
    if graph.num_src_nodes() != graph.num_dst_nodes():
        raise ValueError(
            f"layer_combination needs a square graph, got {graph.num_src_nodes()} source and "
            f"{graph.num_dst_nodes()} destination nodes"
        )
    _check_inputs(graph, feat, edge_weight)
    weight = edge_weight.to(device=feat.device, dtype=feat.dtype)
    if weight.requires_grad:
        out, h = coef[0] * feat, feat
        for c in coef[1:]:
            h = propagate(graph, h, weight)
            out = out + c * h
        return out
    pair = csr_pair(graph, feat.device)
    return _LayerCombination.apply(feat.contiguous(), weight, pair, coef)
