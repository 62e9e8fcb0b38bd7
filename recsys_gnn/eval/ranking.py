"""Full-ranking evaluation: every user is ranked against the whole item catalogue, known items masked.

:class:`FullRankingMetric` keeps only sums (and per-item "was recommended" flags), so its states reduce exactly
across DDP processes. :func:`evaluate_full_ranking` drives it over batches of users from sparse matrices.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torchmetrics import Metric

from recsys_gnn.eval.metrics import METRICS

log = logging.getLogger(__name__)

ScoreFn = Callable[[Tensor], Tensor]


class SparseRows(NamedTuple):
    """A batch's rows of a ``(U, I)`` 0/1 matrix in CSR form (what is relevant, or masked, per user).

    Attributes:
        indptr: ``(B + 1,)`` int64 row pointers.
        indices: ``(nnz,)`` int64 item indices of the non-zero entries, each (row, item) at most once.
    """

    indptr: Tensor
    indices: Tensor

    @property
    def n_rows(self) -> int:
        return self.indptr.shape[0] - 1

    def row_ids(self) -> Tensor:
        """``(nnz,)`` row of each entry."""
        counts = self.indptr[1:] - self.indptr[:-1]
        return torch.repeat_interleave(torch.arange(self.n_rows, device=self.indptr.device), counts)

    def keys(self, n_items: int) -> Tensor:
        """``(nnz,)`` sorted ``row * n_items + item`` keys."""
        return torch.sort(self.row_ids() * n_items + self.indices).values

    def select(self, rows: Tensor) -> SparseRows:
        """The rows where the ``(B,)`` bool ``rows`` is true, in order."""
        counts = self.indptr[1:] - self.indptr[:-1]
        keep_entry = torch.repeat_interleave(rows, counts)
        indptr = torch.zeros(int(rows.sum()) + 1, dtype=torch.long, device=self.indptr.device)
        indptr[1:] = torch.cumsum(counts[rows], 0)
        return SparseRows(indptr, self.indices[keep_entry])

    def keep_items(self, items: Tensor) -> SparseRows:
        """Only the entries whose item is set in the ``(I,)`` bool ``items``."""
        keep_entry = items[self.indices]
        counts = torch.zeros(self.n_rows, dtype=torch.long, device=self.indptr.device)
        counts.index_add_(0, self.row_ids(), keep_entry.long())
        indptr = torch.zeros_like(self.indptr)
        indptr[1:] = torch.cumsum(counts, 0)
        return SparseRows(indptr, self.indices[keep_entry])

    def to_dense(self, n_items: int) -> Tensor:
        """``(B, n_items)`` bool."""
        out = torch.zeros(self.n_rows, n_items, dtype=torch.bool, device=self.indptr.device)
        out[self.row_ids(), self.indices] = True
        return out

    @staticmethod
    def from_dense(dense: Tensor) -> SparseRows:
        """CSR rows of a ``(B, I)`` bool (or 0/1) tensor."""
        rows, cols = dense.bool().nonzero(as_tuple=True)
        indptr = torch.zeros(dense.shape[0] + 1, dtype=torch.long, device=dense.device)
        indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=dense.shape[0]), 0)
        return SparseRows(indptr, cols)

    @staticmethod
    def from_csr(csr: sp.csr_matrix, rows: np.ndarray) -> SparseRows:
        """The non-zero entries of ``csr[rows]`` (explicit zeros dropped, duplicates merged)."""
        sub = sp.csr_matrix(csr[np.asarray(rows)])
        sub.sum_duplicates()
        sub.eliminate_zeros()
        return SparseRows(
            torch.from_numpy(sub.indptr.astype(np.int64)), torch.from_numpy(sub.indices.astype(np.int64))
        )


Rows = Tensor | SparseRows


def in_sorted(keys: Tensor, sorted_keys: Tensor) -> Tensor:
    """``keys`` (any shape) present in the 1-D sorted ``sorted_keys``, as bool of ``keys``' shape."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, keys).clamp_(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == keys


def top_k_indices(scores: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` highest scores per row, best first; equal scores rank by lower item index.

    ``torch.topk`` does not specify which of several tied items it returns; this makes the choice deterministic
    (and identical on CPU and GPU) at the cost of a second pass over rows that have ties at the cut-off.

    Args:
        scores: ``(B, I)`` float scores without NaN.
        k: list length; capped at ``I``.

    Returns:
        ``(B, min(k, I))`` int64 item indices.
    """
    b, n = scores.shape
    k = min(k, n)
    if k == 0 or b == 0:
        return torch.zeros(b, k, dtype=torch.long, device=scores.device)
    if k < n:
        # Fast path: one topk(k + 1). Rows whose k-th and (k+1)-th scores differ have exactly one top-k set;
        # only the order of ties inside it is left to fix (ascending index, then a stable sort by score).
        vals, idx = scores.topk(k + 1, dim=1)
        clean = vals[:, k - 1] > vals[:, k]
        out = torch.sort(idx[:, :k], dim=1).values
        order = torch.sort(scores.gather(1, out), dim=1, descending=True, stable=True).indices
        out = out.gather(1, order)
        if not clean.all():
            rows = (~clean).nonzero().squeeze(1)
            out[rows] = _top_k_with_ties(scores[rows], k)
        return out
    return _top_k_with_ties(scores, k)


def _top_k_with_ties(scores: Tensor, k: int) -> Tensor:
    """:func:`top_k_indices` for rows that may have ties at the cut-off (``1 <= k <= I``): a pass over all items."""
    b = scores.shape[0]
    thr = scores.topk(k, dim=1).values[:, -1:]
    above = scores > thr
    tie = scores == thr
    take = above | tie
    crowded = take.sum(1) > k  # rows whose ties at the cut-off exceed the free slots
    if crowded.any():
        rows = crowded.nonzero().squeeze(1)
        free = k - above[rows].sum(1, keepdim=True)
        tie_rank = tie[rows].to(torch.int32).cumsum(1)  # 1-based rank among tied items, by item index
        take[rows] = above[rows] | (tie[rows] & (tie_rank <= free))
    idx = take.nonzero()[:, 1].view(b, k)  # row-major, so ascending item index within each row
    order = torch.sort(scores.gather(1, idx), dim=1, descending=True, stable=True).indices
    return idx.gather(1, order)


class FullRankingMetric(Metric):
    """Recall, precision, hit, NDCG, MRR and coverage at several k over full-catalogue rankings.

    States are sums over users (``dist_reduce_fx="sum"``) and per-k ``(I,)`` bool flags of items that appear in
    any top-k list (``dist_reduce_fx="max"``), so a DDP reduction (or :meth:`merge_state`) over disjoint user
    shards equals the metric over all users. Users without targets are skipped and not counted.

    Args:
        ks: cut-offs.
        num_items: catalogue size ``I``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, ks: Sequence[int] = (5, 10, 20), *, num_items: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks = tuple(sorted({int(k) for k in ks}))
        if not self.ks or self.ks[0] < 1:
            raise ValueError(f"ks must be non-empty positive integers; got {list(ks)}")
        if int(num_items) < 1:
            raise ValueError(f"num_items must be >= 1; got {num_items}")
        self.num_items = int(num_items)
        for k in self.ks:
            for name in METRICS:
                self.add_state(f"{name}_at_{k}", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"rec_at_{k}", torch.zeros(self.num_items, dtype=torch.bool), dist_reduce_fx="max")
        self.add_state("n_users", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @staticmethod
    def names(ks: Sequence[int]) -> list[str]:
        """Keys returned by :meth:`compute` for cut-offs ``ks``."""
        keys = [f"{m}@{k}" for k in sorted({int(k) for k in ks}) for m in (*METRICS, "coverage")]
        return [*keys, "n_users"]

    def update(self, scores: Tensor, targets: Rows, mask: Rows, item_mask: Tensor | None = None) -> None:
        """Add a batch of users.

        Masked entries are set to ``-inf`` through their CSR positions (no dense mask), and relevance of the
        top-k lists is looked up in the sorted target keys, so the dense work per batch is the NaN check and
        one ``topk``.

        Args:
            scores: ``(B, I)`` scores, higher is better (kept in their floating dtype; integers become float32).
            targets: relevant items, ``(B, I)`` bool or :class:`SparseRows` with B rows.
            mask: items never recommended (known interactions), same forms; must not overlap ``targets``.
            item_mask: optional ``(I,)`` bool, items never recommended to anyone (e.g. ranking within a subset).
        """
        if scores.dim() != 2 or scores.shape[1] != self.num_items:
            raise ValueError(f"scores must be (B, {self.num_items}); got {tuple(scores.shape)}")
        n_items = self.num_items
        for name, rows in (("targets", targets), ("mask", mask)):
            shape = rows.shape if isinstance(rows, Tensor) else (rows.n_rows, n_items)
            if tuple(shape) != tuple(scores.shape):
                raise ValueError(
                    f"scores, targets and mask must have the same shape; got {tuple(scores.shape)}, "
                    f"{name} {tuple(shape)}"
                )
        if item_mask is not None and item_mask.shape != (n_items,):
            raise ValueError(f"item_mask must be ({n_items},) bool; got {tuple(item_mask.shape)}")
        t = targets if isinstance(targets, SparseRows) else SparseRows.from_dense(targets)
        m = mask if isinstance(mask, SparseRows) else SparseRows.from_dense(mask)
        t_keys, m_keys = t.keys(n_items), m.keys(n_items)
        overlap = in_sorted(t_keys, m_keys)
        if item_mask is not None:
            overlap |= item_mask[t_keys % n_items]
        if overlap.any():
            # A masked target can never be ranked; overlap means train and eval pairs were not disjoint.
            raise ValueError(f"{int(overlap.sum())} target entries are also masked")
        n_rel = t.indptr[1:] - t.indptr[:-1]
        keep = n_rel > 0
        if not keep.any():
            return
        if not scores.is_floating_point():
            scores = scores.to(torch.float32)
        if torch.isnan(scores[keep] if not keep.all() else scores).any():
            raise ValueError("scores contain NaN")
        masked = scores.index_put((m.row_ids(), m.indices), scores.new_tensor(float("-inf")))
        if item_mask is not None:
            masked = masked.masked_fill_(item_mask[None, :], float("-inf"))
        rows = keep.nonzero().squeeze(1)  # original row of each kept user
        if len(rows) < scores.shape[0]:
            masked, n_rel = masked[rows], n_rel[rows]
        idx = top_k_indices(masked, self.ks[-1])
        keys = rows[:, None] * n_items + idx  # (B', k) keys in the batch's row numbering
        hits = in_sorted(keys, t_keys)
        unmasked = ~in_sorted(keys, m_keys)  # fewer than k unmasked items: the rest of the list is not shown
        if item_mask is not None:
            unmasked &= ~item_mask[idx]
        for k in self.ks:
            for name, fn in METRICS.items():
                state = f"{name}_at_{k}"
                setattr(self, state, getattr(self, state) + fn(hits, n_rel, k).sum())
            # Out-of-place updates: states may live in memory shared between spawned processes.
            rec = getattr(self, f"rec_at_{k}").clone()
            rec[idx[:, :k][unmasked[:, :k]]] = True
            setattr(self, f"rec_at_{k}", rec)
        self.n_users = self.n_users + len(n_rel)

    def compute(self) -> dict[str, Tensor]:
        """Means over users (NaN when no user had targets), coverage@k and ``n_users``."""
        out: dict[str, Tensor] = {}
        n = self.n_users.to(torch.float64)
        for k in self.ks:
            for name in METRICS:
                total = getattr(self, f"{name}_at_{k}")
                out[f"{name}@{k}"] = total / n if self.n_users > 0 else torch.full_like(total, math.nan)
            out[f"coverage@{k}"] = getattr(self, f"rec_at_{k}").to(torch.float64).sum() / self.num_items
        out["n_users"] = self.n_users.clone()
        return out


def rows_to_dense(csr: sp.csr_matrix, rows: np.ndarray) -> Tensor:
    """``(B, I)`` bool tensor: ``out[b, i]`` = ``csr[rows[b], i]`` is a non-zero entry."""
    sub = sp.csr_matrix(csr)[np.asarray(rows)]
    out = np.zeros(sub.shape, dtype=bool)
    row_of = np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))
    nz = sub.data != 0
    out[row_of[nz], sub.indices[nz]] = True
    return torch.from_numpy(out)


def evaluate_full_ranking(
    score_fn: ScoreFn,
    targets: sp.csr_matrix,
    mask: sp.csr_matrix,
    ks: Sequence[int] = (5, 10, 20),
    batch_size: int = 1024,
    users: np.ndarray | None = None,
    item_subset: np.ndarray | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Rank every evaluated user against the whole catalogue and average the metrics.

    Only users with at least one target are scored, ``batch_size`` at a time, so memory is bounded by
    ``batch_size x I``.

    Args:
        score_fn: maps ``(B,)`` int64 user indices to ``(B, I)`` scores (any device).
        targets: ``(U, I)`` relevant pairs (non-zeros).
        mask: ``(U, I)`` pairs excluded from the ranking (train, earlier splits, cold-user history).
        ks: cut-offs.
        batch_size: users per ``score_fn`` call.
        users: ``(U',)`` user indices to evaluate (e.g. cold users); default all users with targets.
        item_subset: ``(I,)`` bool; only these items count as targets (ranking is still over the whole
            catalogue). Used to report cold and warm items separately.
        progress: log progress at INFO (otherwise DEBUG).

    Returns:
        ``{"recall@10": ..., "ndcg@10": ..., "coverage@10": ..., "n_users": ...}`` as Python numbers.
    """
    targets, mask = sp.csr_matrix(targets, copy=True), sp.csr_matrix(mask)
    if targets.shape != mask.shape:
        raise ValueError(f"targets {targets.shape} and mask {mask.shape} differ in shape")
    n_users, n_items = targets.shape
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if item_subset is not None:
        subset = np.asarray(item_subset)
        if subset.dtype != np.bool_ or subset.shape != (n_items,):
            raise ValueError(
                f"item_subset must be a bool array of shape ({n_items},); got {subset.dtype} {subset.shape}"
            )
        targets = sp.csr_matrix(targets @ sp.diags(subset.astype(np.float32)))
    targets.eliminate_zeros()
    has_targets = np.diff(targets.indptr) > 0
    if users is None:
        cand = np.flatnonzero(has_targets)
    else:
        u = np.unique(np.asarray(users, dtype=np.int64))
        if len(u) and (u[0] < 0 or u[-1] >= n_users):
            raise ValueError(f"users must be in [0, {n_users}); got range [{u[0]}, {u[-1]}]")
        cand = u[has_targets[u]]
    if len(cand) == 0:
        log.warning(
            "full ranking: no user has targets%s; metrics are NaN",
            " in item_subset" * (item_subset is not None),
        )
        return {
            k: (0 if k == "n_users" else (0.0 if k.startswith("coverage") else math.nan))
            for k in FullRankingMetric.names(ks)
        }

    metric: FullRankingMetric | None = None
    n_batches = math.ceil(len(cand) / batch_size)
    every = max(1, n_batches // 10)
    level = logging.INFO if progress else logging.DEBUG
    t0 = time.perf_counter()
    with torch.no_grad():
        for b, start in enumerate(range(0, len(cand), batch_size), 1):
            batch = cand[start : start + batch_size]
            scores = score_fn(torch.from_numpy(batch))
            if scores.shape != (len(batch), n_items):
                raise ValueError(
                    f"score_fn returned {tuple(scores.shape)} for {len(batch)} users; expected ({len(batch)}, {n_items})"
                )
            if metric is None:
                metric = FullRankingMetric(ks, num_items=n_items).to(scores.device)
            dev = scores.device
            metric.update(
                scores,
                SparseRows(*(x.to(dev) for x in SparseRows.from_csr(targets, batch))),
                SparseRows(*(x.to(dev) for x in SparseRows.from_csr(mask, batch))),
            )
            if b % every == 0 or b == n_batches:
                log.log(
                    level,
                    "full ranking: %d/%d batches (%d users) in %.1fs",
                    b,
                    n_batches,
                    len(cand),
                    time.perf_counter() - t0,
                )
    assert metric is not None
    return {k: (int(v) if k == "n_users" else float(v)) for k, v in metric.compute().items()}
