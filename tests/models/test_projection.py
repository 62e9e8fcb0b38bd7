"""The two-layer text projection's lean training pass equals nn.Sequential's, values and gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from recsys_gnn.models.projection import ACTIVATIONS, TwoLayerMLP, projection


def reference(mlp: TwoLayerMLP) -> nn.Sequential:
    """The same layers (copies) as a plain nn.Sequential."""
    return nn.Sequential(*(copy.deepcopy(m) for m in mlp))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("n, chunk", [(37, 8), (16, 16), (5, 64)])
def test_lean_pass_matches_sequential(activation: str, n: int, chunk: int) -> None:
    torch.manual_seed(0)
    mlp = projection(12, 3, 2, 20, activation).double()
    assert isinstance(mlp, TwoLayerMLP)
    mlp.chunk_rows = chunk
    plain = reference(mlp)
    x = torch.randn(n, 12, dtype=torch.float64)
    probe = torch.randn(n, 3, dtype=torch.float64)
    out = mlp(x)
    assert out.grad_fn is not None and "_TwoLayer" in type(out.grad_fn).__name__
    (out * probe).sum().backward()
    ref = plain(x)
    (ref * probe).sum().backward()
    torch.testing.assert_close(out, ref)
    for mine, theirs in zip(mlp.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad)


def test_plain_path_when_the_input_needs_a_gradient_or_no_grad() -> None:
    torch.manual_seed(1)
    mlp = projection(6, 2, 2, 8, "leaky_relu")
    x = torch.randn(9, 6, requires_grad=True)
    out = mlp(x)
    assert "_TwoLayer" not in type(out.grad_fn).__name__
    out.sum().backward()
    assert x.grad is not None
    with torch.no_grad():
        assert mlp(x.detach()).grad_fn is None


def test_frozen_first_layer_gets_no_gradient() -> None:
    torch.manual_seed(2)
    mlp = projection(6, 2, 2, 8, "relu")
    mlp[0].requires_grad_(False)
    mlp(torch.randn(9, 6)).sum().backward()
    assert mlp[0].weight.grad is None and mlp[2].weight.grad is not None


def test_state_dict_keys_are_sequential_ones() -> None:
    assert sorted(projection(6, 2, 2, 8, "gelu").state_dict()) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert isinstance(projection(6, 2, 3, 8, "gelu"), nn.Sequential)
    assert isinstance(projection(6, 2, 1, None, "gelu"), nn.Linear)
