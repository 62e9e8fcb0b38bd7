"""A self-contained exported model (``python -m recsys_gnn.export``) and top-K retrieval over it.

Folder layout:
    tables.safetensors  user_emb, item_emb (+ user_scale, item_scale for int8; pq_codebooks (+ pq_rotation) for
                        PQ, whose user_emb stays fp32) as the quantiser stored them
    known.safetensors   indptr (U+1,) int64, indices (nnz,) int64: each user's train+val items (CSR)
    index.json          {"user_ids": [U], "item_ids": [I], "item_titles": [I]} (the dataset's original ids)
    metadata.json       quantisation, dims, config, metrics, protocol, version, file checksums
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor

from recsys_gnn.compress.quantize import Encoded, Quantizer
from recsys_gnn.compress.search import Searcher
from recsys_gnn.data.errors import UnknownIdError

log = logging.getLogger(__name__)

TABLES_FILE = "tables.safetensors"
KNOWN_FILE = "known.safetensors"
INDEX_FILE = "index.json"
METADATA_FILE = "metadata.json"
ARTIFACT_FORMAT = "recsys_gnn.artifact"
ARTIFACT_VERSION = 1
CHECKSUMMED = (TABLES_FILE, KNOWN_FILE, INDEX_FILE)
INDEXES = ("brute", "faiss")

Result = dict[str, Any]


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def short_repr(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (``...`` and the full length after a cut).

    Error messages quote what a caller sent through this, so a huge id never comes back in full.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def _id_map(ids: Sequence[str], what: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, x in enumerate(ids):
        if x in out:
            raise ValueError(f"{what} id {x!r} appears twice in {INDEX_FILE} (rows {out[x]} and {i})")
        out[x] = i
    return out


class Artifact:
    """Exported tables with brute-force (or faiss) top-K retrieval; scores use the artifact's quantisation.

    Build with :meth:`load`. Item ids and user ids are the dataset's original ids (strings).
    """

    def __init__(
        self,
        quantizer: Quantizer,
        users: Encoded,
        items: Encoded,
        known_indptr: np.ndarray,
        known_indices: np.ndarray,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        item_titles: Sequence[str],
        metadata: dict[str, Any] | None = None,
        index: str = "brute",
        path: Path | None = None,
    ) -> None:
        n_users, n_items = len(users), len(items)
        if len(user_ids) != n_users:
            raise ValueError(f"{len(user_ids)} user ids for a user table of {n_users} rows")
        if len(item_ids) != n_items or len(item_titles) != n_items:
            raise ValueError(
                f"{len(item_ids)} item ids and {len(item_titles)} titles for an item table of {n_items} rows"
            )
        if known_indptr.shape != (n_users + 1,) or known_indptr[-1] != len(known_indices):
            raise ValueError(
                f"known items CSR does not fit {n_users} users: indptr {known_indptr.shape}, "
                f"{len(known_indices)} indices"
            )
        if len(known_indices) and (known_indices.min() < 0 or known_indices.max() >= n_items):
            raise ValueError(f"known items CSR refers to items outside 0..{n_items - 1}")
        if index not in INDEXES:
            raise ValueError(f"unknown index {index!r}; expected one of {INDEXES}")
        self.quantizer = quantizer
        self.users, self.items = users, items
        self.known_indptr, self.known_indices = known_indptr, known_indices
        self.user_ids, self.item_ids, self.item_titles = list(user_ids), list(item_ids), list(item_titles)
        self._user_index = _id_map(self.user_ids, "user")
        self._item_index = _id_map(self.item_ids, "item")
        self.metadata = metadata or {}
        self.path = path
        self.index = index
        self._faiss = _FaissIndex(quantizer, items) if index == "faiss" else None

    # -- loading ----------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, index: str = "brute", verify: bool = True) -> Artifact:
        """Read an artifact folder written by ``recsys_gnn.export``.

        Args:
            path: the artifact folder.
            index: "brute" (exact ``torch.topk``) or "faiss" (needs ``faiss-cpu``).
            verify: check the files' SHA-256 against ``metadata.json``.
        """
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"artifact folder {path} does not exist")
        for name in (*CHECKSUMMED, METADATA_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(
                    f"{path / name} is missing; is {path} an artifact from recsys_gnn.export?"
                )
        meta = json.loads((path / METADATA_FILE).read_text())
        if meta.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"{path / METADATA_FILE} is not a {ARTIFACT_FORMAT} metadata file")
        if int(meta.get("format_version", -1)) > ARTIFACT_VERSION:
            raise ValueError(
                f"artifact format version {meta['format_version']} is newer than this code reads "
                f"({ARTIFACT_VERSION}); upgrade recsys_gnn"
            )
        if verify:
            for name, digest in meta.get("sha256", {}).items():
                if sha256(path / name) != digest:
                    raise ValueError(
                        f"{path / name} does not match the checksum in {METADATA_FILE}; file corrupted"
                    )
        quantizer = Quantizer(meta["quantization"])
        users, items = quantizer.split(load_file(str(path / TABLES_FILE)), dim=int(meta["dim"]))
        known = load_file(str(path / KNOWN_FILE))
        idx = json.loads((path / INDEX_FILE).read_text())
        art = cls(
            quantizer,
            users,
            items,
            known["indptr"].numpy(),
            known["indices"].numpy(),
            idx["user_ids"],
            idx["item_ids"],
            idx["item_titles"],
            metadata=meta,
            index=index,
            path=path,
        )
        log.info(
            "loaded %s: %d users, %d items, %s at dim %d",
            path,
            art.n_users,
            art.n_items,
            meta["quantization"],
            art.dim,
        )
        return art

    # -- properties -------------------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def dim(self) -> int:
        return self.items.dim

    @property
    def quantization(self) -> str:
        return self.quantizer.name

    @cached_property
    def item_norms(self) -> Tensor:
        """``(I,)`` norms of the decoded item vectors (computed on first use, for cosine similarity)."""
        norms = torch.empty(self.n_items)
        for start in range(0, self.n_items, 16384):
            rows = torch.arange(start, min(start + 16384, self.n_items))
            norms[rows] = self.quantizer.decode(self.items.rows(rows)).norm(dim=1)
        return norms

    def tensors(self) -> dict[str, Tensor]:
        """The tensors a request reads: user and item tables (+ scales)."""
        out = {"user_emb": self.users.data, "item_emb": self.items.data}
        if self.users.scale is not None:
            out["user_scale"] = self.users.scale
        if self.items.scale is not None:
            out["item_scale"] = self.items.scale
        if self.items.codebooks is not None:
            out["pq_codebooks"] = self.items.codebooks
        if self.items.rotation is not None:
            out["pq_rotation"] = self.items.rotation
        return out

    @cached_property
    def searcher(self) -> Searcher:
        """The served scoring path over the item table (built on first use; see recsys_gnn.compress.search)."""
        return Searcher(self.quantizer, self.items)

    # -- ids --------------------------------------------------------------------------------------------------
    def user_index(self, user_id: str) -> int:
        """Row of ``user_id``; :class:`UnknownIdError` if the artifact has no such user."""
        try:
            return self._user_index[str(user_id)]
        except KeyError:
            raise UnknownIdError(
                f"unknown user id {short_repr(user_id)}: not among the {self.n_users} users of this artifact"
            ) from None

    def item_index(self, item_id: str) -> int:
        """Row of ``item_id``; :class:`UnknownIdError` if the artifact has no such item."""
        try:
            return self._item_index[str(item_id)]
        except KeyError:
            raise UnknownIdError(
                f"unknown item id {short_repr(item_id)}: not among the {self.n_items} items of this artifact"
            ) from None

    def known_items(self, row: int) -> np.ndarray:
        """Item rows the user at ``row`` interacted with in train+val."""
        return self.known_indices[self.known_indptr[row] : self.known_indptr[row + 1]]

    # -- scoring ----------------------------------------------------------------------------------------------
    def score_users(self, rows: Tensor) -> Tensor:
        """Scores ``(B, I)`` of stored users ``rows`` ``(B,)`` against every item."""
        return self.searcher.scores(self.users.rows(rows))

    def _check_k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise ValueError(f"k must be an integer; got {short_repr(k)}")
        if not 1 <= k <= self.n_items:
            raise ValueError(
                f"k must be between 1 and the number of items ({self.n_items}); got {short_repr(k)}"
            )
        return int(k)

    def _top(self, query: Encoded, k: int, exclude: np.ndarray, cosine: bool = False) -> list[Result]:
        """Top-``k`` items for one encoded query row ``(1, ...)``, skipping the item rows ``exclude``.

        ``cosine`` ranks by the cosine of the decoded vectors instead of their dot product.
        """
        if self._faiss is not None:
            pairs = self._faiss.search(query, k + len(np.unique(exclude)), cosine=cosine)
            excluded = set(exclude.tolist())
            pairs = [(i, s) for i, s in pairs if i not in excluded][:k]
        elif not cosine and self.searcher.method == "faiss":  # PQ codes: faiss scans them, no (I,) scores
            vals, idx = self.searcher.search(query, k + len(np.unique(exclude)))
            excluded = set(exclude.tolist())
            pairs = [(int(i), float(v)) for i, v in zip(idx[0], vals[0], strict=True) if i >= 0]
            pairs = [(i, s) for i, s in pairs if i not in excluded][:k]
        else:
            scores = self.searcher.scores(query)[0]  # (I,)
            if cosine:
                query_norm = self.quantizer.decode(query)[0].norm()
                scores = scores / (query_norm * self.item_norms).clamp_min(1e-12)
            if len(exclude):
                scores[torch.as_tensor(exclude, dtype=torch.long)] = float("-inf")
            vals, idx = torch.topk(scores, k)
            pairs = [(int(i), float(v)) for i, v in zip(idx, vals, strict=True) if v != float("-inf")]
        return [{"item": self.item_ids[i], "title": self.item_titles[i], "score": s} for i, s in pairs]

    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = True) -> list[Result]:
        """Top-``k`` items for a known user, by the user's table row.

        Args:
            user_id: original user id.
            k: 1..n_items; fewer results come back when exclusions leave fewer items.
            exclude_seen: skip the user's train+val items.
        Returns:
            ``[{"item", "title", "score"}]`` best first.
        """
        k = self._check_k(k)
        row = self.user_index(user_id)
        exclude = self.known_items(row) if exclude_seen else np.empty(0, dtype=np.int64)
        return self._top(self.users.rows(torch.tensor([row])), k, exclude)

    def recommend_for_items(
        self, item_ids: Sequence[str], k: int = 10, exclude_given: bool = True
    ) -> list[Result]:
        """Top-``k`` items for a new user represented by the mean of the given items' vectors (cold start).

        The items' decoded vectors are averaged and the mean is quantised like a user row, as
        :meth:`recsys_gnn.models.base.Recommender.fold_in` does in float. For a model trained with
        ``model.item_bias`` (metadata ``item_bias``) the mean's last column, the item-bias column, is set to 1,
        as the model's own fold-in and news history users do.
        """
        k = self._check_k(k)
        if isinstance(item_ids, str):
            raise ValueError("item_ids must be a list of item ids, not a single string")
        if len(item_ids) == 0:
            raise ValueError("empty history: give at least one item id to recommend for a new user")
        rows = np.array([self.item_index(i) for i in item_ids], dtype=np.int64)
        vectors = self.quantizer.decode(self.items.rows(torch.from_numpy(rows)))  # (n, D)
        mean = vectors.mean(dim=0, keepdim=True)  # (1, D)
        if self.metadata.get("item_bias"):
            mean[:, -1] = 1.0
        query = self.quantizer.encode(mean)
        exclude = rows if exclude_given else np.empty(0, dtype=np.int64)
        return self._top(query, k, exclude)

    def similar(self, item_id: str, k: int = 10) -> list[Result]:
        """The ``k`` items of highest cosine similarity to ``item_id`` (itself excluded), in the decoded space."""
        k = self._check_k(k)
        row = self.item_index(item_id)
        return self._top(self.items.rows(torch.tensor([row])), k, np.array([row]), cosine=True)


class _FaissIndex:
    """Exact faiss indexes over the item table: inner product (and cosine), or Hamming for binary codes."""

    def __init__(self, quantizer: Quantizer, items: Encoded) -> None:
        try:
            import faiss
        except ImportError as err:
            raise ImportError(
                "index='faiss' needs faiss: pip install faiss-cpu (or use index='brute')"
            ) from err
        self.faiss = faiss
        self.quantizer = quantizer
        self.binary = quantizer.name == "binary"
        self.unit_index = None  # cosine index, built on first use
        if self.binary:
            # padding bits are 0 in every code, so Hamming over 8 * W bits equals Hamming over the D real bits
            self.index = faiss.IndexBinaryFlat(items.data.shape[1] * 8)
            self.index.add(np.ascontiguousarray(items.data.numpy()))
        else:
            self.vectors = np.ascontiguousarray(quantizer.decode(items).numpy(), dtype=np.float32)
            self.index = faiss.IndexFlatIP(self.vectors.shape[1])
            self.index.add(self.vectors)

    def search(self, query: Encoded, k: int, cosine: bool = False) -> list[tuple[int, float]]:
        """``[(item row, score)]`` of the best ``k`` items for one query row, best first."""
        k = min(k, self.index.ntotal)
        if self.binary:
            dist, idx = self.index.search(np.ascontiguousarray(query.data.numpy()), k)
            scores = query.dim - 2 * dist[0].astype(np.float64)  # dot product of +-1 vectors
            if cosine:
                scores = scores / query.dim  # every +-1 vector has norm sqrt(D)
        else:
            q = np.ascontiguousarray(self.quantizer.decode(query).numpy(), dtype=np.float32)
            index = self.index
            if cosine:
                if self.unit_index is None:
                    unit = self.vectors / np.maximum(
                        np.linalg.norm(self.vectors, axis=1, keepdims=True), 1e-12
                    )
                    self.unit_index = self.faiss.IndexFlatIP(unit.shape[1])
                    self.unit_index.add(np.ascontiguousarray(unit, dtype=np.float32))
                index = self.unit_index
                q = q / max(float(np.linalg.norm(q)), 1e-12)
            out, idx = index.search(q, k)
            scores = out[0]
        return [(int(i), float(s)) for i, s in zip(idx[0], scores, strict=True) if i >= 0]
