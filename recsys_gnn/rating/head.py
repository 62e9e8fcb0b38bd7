"""The rating head: an MLP over a (user, item) embedding pair that predicts an explicit rating."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsys_gnn.data.errors import ConfigError
from recsys_gnn.rating.metrics import rating_classes

OBJECTIVES = ("classification", "regression")


class RatingHead(nn.Module):
    """MLP over ``[u, i, u * i]`` predicting a rating on an integer scale ``lo..hi``.

    ``objective="classification"``: ``C = hi - lo + 1`` logits, cross-entropy over the classes (targets
    rounded half-up to the nearest class and clipped into the scale); the predicted rating is the expected
    class ``sum_c p_c * c`` and the predicted class the argmax. ``objective="regression"``: one output trained
    with MSE on the raw rating; predictions are clipped to ``[lo, hi]`` (training uses the unclipped value so
    gradients never vanish).

    Args:
        dim: D, the size of the user and item embeddings.
        hidden: width of the hidden layer.
        objective: "classification" or "regression".
        scale: ``(lo, hi)`` integer rating scale.
        dropout: dropout on the hidden layer.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 64,
        objective: str = "classification",
        scale: Sequence[float] = (1, 5),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ConfigError(f"rating objective must be one of {list(OBJECTIVES)}; got {objective!r}")
        if dim < 1 or hidden < 1:
            raise ConfigError(f"RatingHead needs dim >= 1 and hidden >= 1; got dim={dim}, hidden={hidden}")
        self.objective = objective
        self.scale = (float(scale[0]), float(scale[1]))
        classes = torch.as_tensor(rating_classes(scale), dtype=torch.float32)
        self.register_buffer("classes", classes, persistent=False)  # (C,)
        n_out = len(classes) if objective == "classification" else 1
        self.mlp = nn.Sequential(
            nn.Linear(3 * dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_out)
        )
        if objective == "regression":  # start at the middle of the scale rather than at 0
            nn.init.constant_(self.mlp[-1].bias, float(classes.mean()))

    def forward(self, u: Tensor, i: Tensor) -> Tensor:
        """``u, i (B, D)`` -> logits ``(B, C)`` (classification) or unclipped ratings ``(B,)`` (regression)."""
        out = self.mlp(torch.cat([u, i, u * i], dim=-1))
        return out if self.objective == "classification" else out.squeeze(-1)

    def target_classes(self, ratings: Tensor) -> Tensor:
        """``(B,)`` ratings -> ``(B,)`` class indices ``0..C-1`` (rounded half-up, clipped into the scale)."""
        lo = self.classes[0]
        idx = torch.floor(ratings.float() + 0.5) - lo
        return idx.clamp(0, len(self.classes) - 1).long()

    def loss(self, out: Tensor, ratings: Tensor) -> Tensor:
        """Cross-entropy over classes (classification) or MSE (regression) of ``out`` against ``(B,)`` ratings."""
        if self.objective == "classification":
            return F.cross_entropy(out, self.target_classes(ratings))
        return F.mse_loss(out, ratings.float())

    def predict(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Head output -> ``(ratings (B,), classes (B,))``.

        Classification: expected rating ``softmax(out) @ classes`` and the argmax class. Regression: the output
        clipped into the scale and that value rounded half-up to a class.
        """
        if self.objective == "classification":
            probs = out.softmax(-1)  # (B, C)
            return probs @ self.classes, self.classes[out.argmax(-1)].long()
        rating = out.clamp(*self.scale)
        return rating, torch.floor(rating + 0.5).long()
