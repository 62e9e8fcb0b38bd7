"""The compressor's text projection ``(N, H) -> (N, D)``: a linear map or an MLP (AlphaRec's is two layers).

A training step projects every item's (and user's) text vector, so the two-layer MLP's hidden activations
(``N x hidden``, e.g. 2M x 768 floats = 6 GB at 10^7 interactions) dominate the step's memory. The two-layer
MLP here keeps only the pre-activation ``N x hidden`` for its backward pass (not the activation as well, as
``nn.Sequential`` does) and runs its forward and backward over row chunks, so the other temporaries are
``chunk x hidden``. The parameters are the same ``nn.Sequential`` (``0.weight``, ``2.bias``, ...), so
checkpoints load either way.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

ACTIVATIONS = {"gelu": nn.GELU, "leaky_relu": nn.LeakyReLU, "relu": nn.ReLU, "tanh": nn.Tanh}
CHUNK_ROWS = 4096


def projection(h: int, dim: int, layers: int, hidden: int | None, activation: str) -> nn.Module:
    """Text projection ``(., H) -> (., dim)``: linear (``layers=1``) or an MLP of ``layers`` linear maps with
    ``hidden`` units and ``activation`` between them (two layers: :class:`TwoLayerMLP`)."""
    if layers == 1:
        return nn.Linear(h, dim)
    if activation not in ACTIVATIONS:
        raise ValueError(f"model.proj_activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    width = int(hidden) if hidden else 2 * dim
    if width < 1:
        raise ValueError(f"model.proj_hidden must be >= 1, got {hidden!r}")
    if layers == 2:
        return TwoLayerMLP(nn.Linear(h, width), ACTIVATIONS[activation](), nn.Linear(width, dim))
    mods: list[nn.Module] = [nn.Linear(h, width)]
    for _ in range(layers - 2):
        mods += [ACTIVATIONS[activation](), nn.Linear(width, width)]
    mods += [ACTIVATIONS[activation](), nn.Linear(width, dim)]
    return nn.Sequential(*mods)


class TwoLayerMLP(nn.Sequential):
    """``Linear(H, W) -> activation -> Linear(W, D)`` whose training pass on a constant input (one that needs
    no gradient, like frozen text vectors) keeps only the ``(N, W)`` pre-activation for the backward pass and
    works in row chunks of ``chunk_rows`` (:class:`_TwoLayer`); otherwise plain ``nn.Sequential``. Same numbers
    to float tolerance."""

    def __init__(
        self, first: nn.Linear, act: nn.Module, second: nn.Linear, chunk_rows: int = CHUNK_ROWS
    ) -> None:
        super().__init__(first, act, second)
        self.chunk_rows = int(chunk_rows)

    def forward(self, x: Tensor) -> Tensor:
        first, act, second = self[0], self[1], self[2]
        lean = (
            torch.is_grad_enabled()
            and not x.requires_grad
            and x.dim() == 2
            and x.shape[0] > 0
            and any(p.requires_grad for p in self.parameters())
        )
        if not lean:
            return super().forward(x)
        return _TwoLayer.apply(x, first.weight, first.bias, second.weight, second.bias, act, self.chunk_rows)


class _TwoLayer(torch.autograd.Function):
    """``act(x W1^T + b1) W2^T + b2`` for a constant ``x`` ``(N, H)``; saves ``x``, the ``(N, W)``
    pre-activation and ``W2``; the backward recomputes the activation chunk by chunk."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, act: nn.Module, chunk: int
    ) -> Tensor:
        n = x.shape[0]
        pre = x.new_empty(n, w1.shape[0])  # (N, W)
        out = x.new_empty(n, w2.shape[0])  # (N, D)
        for s in range(0, n, chunk):
            rows = slice(s, s + chunk)
            h = torch.addmm(b1, x[rows], w1.t(), out=pre[rows])
            torch.addmm(b2, act(h), w2.t(), out=out[rows])
        ctx.save_for_backward(x, pre, w2)
        ctx.act, ctx.chunk = act, chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, pre, w2 = ctx.saved_tensors
        grad = grad.contiguous()  # (N, D)
        g_w1 = x.new_zeros(pre.shape[1], x.shape[1])  # (W, H)
        g_b1 = x.new_zeros(pre.shape[1])
        g_w2 = torch.zeros_like(w2)  # (D, W)
        for s in range(0, x.shape[0], ctx.chunk):
            rows = slice(s, s + ctx.chunk)
            with torch.enable_grad():
                h = pre[rows].detach().requires_grad_(True)
                a = ctx.act(h)  # (c, W)
            g = grad[rows]  # (c, D)
            g_w2.addmm_(g.t(), a.detach())
            (g_h,) = torch.autograd.grad(a, h, g @ w2)  # (c, W)
            g_w1.addmm_(g_h.t(), x[rows])
            g_b1 += g_h.sum(0)
        need = ctx.needs_input_grad
        return (
            None,
            g_w1 if need[1] else None,
            g_b1 if need[2] else None,
            g_w2 if need[3] else None,
            grad.sum(0) if need[4] else None,
            None,
            None,
        )
