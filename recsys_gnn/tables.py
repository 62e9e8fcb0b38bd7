"""The trained model's serving tables, as written into every run folder (``<run>/tables/``).

Layout (the input of ``python -m recsys_gnn.export``):
    embeddings.safetensors  user_emb (U, D) float32, item_emb (I, D) float32
    known.safetensors       indptr (U+1,) int64, indices (nnz,) int64: each user's train+val items (CSR)
    index.json              {"user_ids": [U str], "item_ids": [I str], "item_titles": [I str]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from recsys_gnn.data.interactions import InteractionData


@dataclass
class Tables:
    """Serving tables: embeddings, id maps and each user's known items."""

    user_emb: torch.Tensor  # (U, D)
    item_emb: torch.Tensor  # (I, D)
    known_indptr: np.ndarray  # (U + 1,)
    known_indices: np.ndarray  # (nnz,)
    user_ids: list[str]
    item_ids: list[str]
    item_titles: list[str]


def save_tables(folder: Path, user_emb: torch.Tensor, item_emb: torch.Tensor, data: InteractionData) -> Path:
    """Write the tables of a trained model to ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            "user_emb": user_emb.detach().float().cpu().contiguous(),
            "item_emb": item_emb.detach().float().cpu().contiguous(),
        },
        str(folder / "embeddings.safetensors"),
    )
    known = data.matrix(np.concatenate([data.train, data.val], 0))
    save_file(
        {
            "indptr": torch.from_numpy(known.indptr.astype(np.int64)),
            "indices": torch.from_numpy(known.indices.astype(np.int64)),
        },
        str(folder / "known.safetensors"),
    )
    index = {
        "user_ids": [str(u) for u in data.user_ids],
        "item_ids": [str(i) for i in data.item_ids],
        "item_titles": list(data.item_titles),
    }
    (folder / "index.json").write_text(json.dumps(index))
    return folder


def load_tables(folder: Path) -> Tables:
    """Read tables written by :func:`save_tables`."""
    folder = Path(folder)
    for name in ("embeddings.safetensors", "known.safetensors", "index.json"):
        if not (folder / name).exists():
            raise FileNotFoundError(
                f"{folder / name} is missing; expected the tables written by a training run"
            )
    emb = load_file(str(folder / "embeddings.safetensors"))
    known = load_file(str(folder / "known.safetensors"))
    index = json.loads((folder / "index.json").read_text())
    return Tables(
        user_emb=emb["user_emb"],
        item_emb=emb["item_emb"],
        known_indptr=known["indptr"].numpy(),
        known_indices=known["indices"].numpy(),
        user_ids=index["user_ids"],
        item_ids=index["item_ids"],
        item_titles=index["item_titles"],
    )
