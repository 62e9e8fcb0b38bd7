"""Baseline recommenders: shapes, hand computations, training signal and one pipeline run each."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys_gnn.data.interactions import InteractionData
from recsys_gnn.graph.user_item import UserItemGraph
from recsys_gnn.models.baselines import LightGCNId, LMContent, LMFinetune, MatrixFactorization, Popularity
from recsys_gnn.models.baselines.lm_finetune import transformer_layers
from recsys_gnn.models.baselines.xsimgcl import XSimGCL
from recsys_gnn.models.context import ModelContext
from recsys_gnn.models.encoder import PACKAGED_MODEL, TextEncoder
from recsys_gnn.models.losses import info_nce

WORDS = ["space", "love", "war", "robot", "ghost", "music", "crime", "ocean", "dragon", "school"]


def make_data(n_users: int = 20, n_items: int = 30, seed: int = 0, cold_item: bool = True) -> InteractionData:
    """A small random dataset: 3-8 training items per user (fewer if the catalogue is tiny), one val and one
    test item each.

    With ``cold_item`` the last item has no training interaction (it may still be a val/test target).
    """
    rng = np.random.default_rng(seed)
    n_train_items = n_items - 1 if cold_item else n_items
    train, val, test = [], [], []
    for u in range(n_users):
        items = rng.choice(n_train_items, size=min(int(rng.integers(3, 9)) + 2, n_train_items), replace=False)
        train += [(u, int(i)) for i in items[:-2]]
        val.append((u, int(items[-2])))
        test.append((u, int(items[-1]) if u % 5 else n_items - 1))
    texts = [
        f"{WORDS[i % 10].title()} story {i}. Genres: {WORDS[(3 * i) % 10]}, {WORDS[(7 * i) % 10]}"
        for i in range(n_items)
    ]
    train_arr = np.asarray(train, dtype=np.int64)
    return InteractionData(
        n_users=n_users,
        n_items=n_items,
        user_ids=np.asarray([str(u) for u in range(n_users)]),
        item_ids=np.asarray([str(i) for i in range(n_items)]),
        item_texts=texts,
        item_titles=texts,
        train=train_arr,
        val=np.asarray(val, dtype=np.int64),
        test=np.asarray(test, dtype=np.int64),
        train_weight=np.ones(len(train_arr), dtype=np.float32),
        protocol={"dataset": "hand-made"},
    )


def make_context(data: InteractionData, cache_dir: Path) -> ModelContext:
    encoder = TextEncoder(model_name=PACKAGED_MODEL, max_length=32, cache_dir=cache_dir)
    return ModelContext(data, encoder=encoder, graph_builder=UserItemGraph())


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> ModelContext:
    return make_context(make_data(), tmp_path_factory.mktemp("enc"))


def full_batch(data: InteractionData, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every training pair with one fixed negative the user has not seen."""
    rng = np.random.default_rng(seed)
    seen = {(int(u), int(i)) for u, i in data.train}
    neg = []
    for u, _ in data.train:
        j = int(rng.integers(data.n_items))
        while (int(u), j) in seen:
            j = int(rng.integers(data.n_items))
        neg.append([j])
    return {
        "user": torch.as_tensor(data.train[:, 0]),
        "pos": torch.as_tensor(data.train[:, 1]),
        "neg": torch.as_tensor(neg),
    }


# -- shapes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs", "dim"),
    [
        (Popularity, {}, 1),
        (MatrixFactorization, {"dim": 8}, 8),
        (LightGCNId, {"dim": 8, "num_layers": 2}, 8),
        (LMContent, {}, 384),
    ],
)
def test_embed_and_score_shapes(context: ModelContext, cls, kwargs: dict, dim: int) -> None:
    model = cls(context, **kwargs)
    users, items = model.embed()
    assert users.shape == (20, dim) and items.shape == (30, dim)
    scores = model.score(torch.tensor([0, 3, 19]), (users, items))
    assert scores.shape == (3, 30) and torch.isfinite(scores).all()
    assert model.needs_text == (cls is LMContent)
    assert model.trainable == (cls in (MatrixFactorization, LightGCNId))


# -- popularity ----------------------------------------------------------------------------------------------


def test_popularity_equals_distinct_user_counts() -> None:
    data = make_data()
    data.train = np.concatenate([data.train, data.train[:5]])  # repeated pairs count once
    data.train_weight = np.ones(len(data.train), dtype=np.float32)
    model = Popularity(ModelContext(data))
    counts = np.zeros(data.n_items)
    for _, i in {(int(u), int(i)) for u, i in data.train}:
        counts[i] += 1
    scores = model.score(torch.arange(data.n_users), model.embed())  # (U, I)
    np.testing.assert_array_equal(scores.numpy(), np.broadcast_to(counts, scores.shape))
    order = torch.argsort(scores[0], descending=True, stable=True).numpy()
    assert list(counts[order]) == sorted(counts, reverse=True)
    assert counts[-1] == 0  # the cold item is last
    assert list(model.parameters()) == []


# -- LM content ----------------------------------------------------------------------------------------------


def test_lm_content_is_cosine_to_mean_of_training_items(context: ModelContext) -> None:
    data = context.data
    model = LMContent(context)
    emb = np.asarray(context.item_text_emb, dtype=np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    users = np.arange(data.n_users)
    expected = np.zeros((data.n_users, data.n_items))
    for u in users:
        mean = emb[data.train[data.train[:, 0] == u, 1]].mean(0)
        expected[u] = emb @ (mean / np.linalg.norm(mean))
    scores = model.score(torch.as_tensor(users), model.embed()).double().numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert scores.max() <= 1 + 1e-5


def test_lm_content_fold_in_stays_cosine(context: ModelContext) -> None:
    model = LMContent(context)
    history = torch.tensor([[2, 0], [2, 5], [7, 1]])
    users, items = model.fold_in(model.embed(), history, context.data.n_users)
    expected = torch.nn.functional.normalize(items[[0, 5]].mean(0), dim=0)
    torch.testing.assert_close(users[2], expected)
    torch.testing.assert_close(users[7], items[1])
    torch.testing.assert_close(users[3], model.embed()[0][3])  # users without history are unchanged


# -- trainable id models -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs"), [(MatrixFactorization, {"dim": 16}), (LightGCNId, {"dim": 16, "num_layers": 2})]
)
def test_id_models_loss_decreases(context: ModelContext, cls, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = cls(context, **kwargs)
    batch = full_batch(context.data)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0]
    assert model.loss(batch, kind="bce")[0].isfinite()
    with pytest.raises(ValueError, match="bpr"):
        model.loss(batch, kind="hinge")


def test_mf_regularization_on_batch_embeddings(context: ModelContext) -> None:
    model = MatrixFactorization(context, dim=4, weight_decay_emb=0.5)
    batch = {"user": torch.tensor([0, 1]), "pos": torch.tensor([2, 3]), "neg": torch.tensor([[4], [5]])}
    u, i = model.embed()
    expected = 0.5 * (u[[0, 1]].pow(2).sum() + i[[2, 3, 4, 5]].pow(2).sum()) / (2 * 2)
    torch.testing.assert_close(model.regularization(batch, u, i), expected)
    assert float(MatrixFactorization(context, dim=4, weight_decay_emb=0).regularization(batch, u, i)) == 0


def test_lightgcn_id_matches_dense_propagation() -> None:
    # 3 users, 4 items; item 3 has no training user; the repeated pair (0, 0) is one edge
    data = make_data(n_users=3, n_items=4)
    data.train = np.array([[0, 0], [0, 0], [0, 1], [1, 1], [1, 2], [2, 0], [2, 2]], dtype=np.int64)
    data.train_weight = np.ones(len(data.train), dtype=np.float32)
    torch.manual_seed(1)
    model = LightGCNId(ModelContext(data), dim=5, num_layers=3, weight_decay_emb=0.1)
    n_u, n_i = 3, 4
    adj = np.zeros((n_u + n_i, n_u + n_i))
    for u, i in data.train:
        adj[u, n_u + i] = adj[n_u + i, u] = 1.0
    deg = adj.sum(1)
    inv_sqrt = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0.0)
    norm = inv_sqrt[:, None] * adj * inv_sqrt[None, :]
    ego = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach().double().numpy()
    layers, h = [ego], ego
    for _ in range(3):
        h = norm @ h
        layers.append(h)
    expected = np.mean(layers, axis=0)
    users, items = model.embed()
    np.testing.assert_allclose(users.detach().numpy(), expected[:n_u], atol=1e-6)
    np.testing.assert_allclose(items.detach().numpy(), expected[n_u:], atol=1e-6)
    np.testing.assert_allclose(items[3].detach().numpy(), ego[n_u + 3] / 4, atol=1e-6)
    # L2 term on layer-0 (not propagated) embeddings of the batch
    batch = {"user": torch.tensor([0, 2]), "pos": torch.tensor([1, 2]), "neg": torch.tensor([[3], [1]])}
    reg = model.regularization(batch, users, items)
    e_u, e_i = model.user_emb.weight, model.item_emb.weight
    expected_reg = 0.1 * (e_u[[0, 2]].pow(2).sum() + e_i[[1, 2, 3, 1]].pow(2).sum()) / (2 * 2)
    torch.testing.assert_close(reg, expected_reg)


@pytest.mark.parametrize("kind", ["bpr", "softmax"])
@pytest.mark.parametrize("shared", [False, True])
def test_lightgcn_id_one_gather_loss_equals_the_generic_loss(
    context: ModelContext, kind: str, shared: bool
) -> None:
    """The single-gather ``LightGCNId.loss`` equals ``Recommender.loss`` (embed + regularization), for both
    backends, per-user and shared negatives; gradients too."""
    from recsys_gnn.models.base import Recommender

    batch = full_batch(context.data)
    if shared:
        batch["neg"] = torch.tensor([0, 3, 5, 7])
        batch["neg_valid"] = (
            torch.rand(len(batch["user"]), 4, generator=torch.Generator().manual_seed(0)) > 0.2
        )
    losses, grads = [], []
    for backend, generic in (("dgl", True), ("csr", True), ("csr", False)):
        torch.manual_seed(0)
        model = LightGCNId(context, dim=6, num_layers=2, weight_decay_emb=0.1, backend=backend)
        loss, _ = Recommender.loss(model, batch, kind) if generic else model.loss(batch, kind)
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([model.user_emb.weight.grad, model.item_emb.weight.grad]))
    _assert_all_equal(losses, grads)


def _assert_all_equal(losses: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    """Every variant's loss and id-table gradients equal the first variant's (float tolerance)."""
    for loss, grad in zip(losses[1:], grads[1:], strict=True):
        torch.testing.assert_close(loss, losses[0])
        torch.testing.assert_close(grad, grads[0], rtol=1e-5, atol=1e-7)


def test_lightgcn_id_ignores_the_context_graph(context: ModelContext) -> None:
    """Even when the run's graph is item-only, LightGCNId builds its own user-item graph."""
    ctx = ModelContext(context.data, graph_builder=object())
    model = LightGCNId(ctx, dim=4, num_layers=1)
    assert model.graph.num_nodes() == 50
    assert model.graph.num_edges() == 2 * len(np.unique(context.data.train, axis=0))


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (MatrixFactorization, {"dim": 0}, "dim"),
        (MatrixFactorization, {"weight_decay_emb": -1.0}, "weight_decay_emb"),
        (MatrixFactorization, {"init_std": 0.0}, "init_std"),
        (LightGCNId, {"num_layers": 0}, "num_layers"),
        (LightGCNId, {"dim": 2.5}, "dim"),
    ],
)
def test_bad_hparams(context: ModelContext, cls, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(context, **kwargs)


@pytest.mark.parametrize("kind", ["bpr", "softmax"])
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_lightgcn_id_fanout_all_equals_the_full_graph_loss(
    context: ModelContext, kind: str, shared: bool, similarity: str
) -> None:
    """``fanout=-1`` per layer samples every neighbour: the training loss and its gradients are the full ones."""
    batch = full_batch(context.data)
    if shared:
        batch["neg"] = torch.tensor([0, 3, 5, 7, 3])
        batch["neg_valid"] = (
            torch.rand(len(batch["user"]), 5, generator=torch.Generator().manual_seed(0)) > 0.2
        )
    losses, grads = [], []
    for fanout in (None, [-1, -1], -1):
        torch.manual_seed(0)
        model = LightGCNId(
            context, dim=6, num_layers=2, weight_decay_emb=0.1, similarity=similarity, fanout=fanout
        )
        loss, _ = model.train().loss(batch, kind, temperature=0.2)
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([model.user_emb.weight.grad, model.item_emb.weight.grad]))
    _assert_all_equal(losses, grads)


def test_lightgcn_id_sampled_training_lowers_the_loss_and_embed_stays_exact(context: ModelContext) -> None:
    import dgl

    from recsys_gnn.models.base import Recommender

    torch.manual_seed(0)
    dgl.seed(0)
    model = LightGCNId(context, dim=8, num_layers=2, weight_decay_emb=0.0, fanout=[2, 2])
    full = LightGCNId(context, dim=8, num_layers=2, weight_decay_emb=0.0)
    batch = full_batch(context.data)

    def full_loss() -> float:
        with torch.no_grad():
            return float(Recommender.loss(model, batch)[0])

    before = full_loss()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        model.train().loss(batch)[0].backward()
        opt.step()
    assert full_loss() < 0.8 * before
    full.load_state_dict(model.state_dict())
    model.eval()
    for a, b in zip(model.embed(), full.embed(), strict=True):  # evaluation propagates the whole graph
        torch.testing.assert_close(a, b)
    assert "fanout=[2, 2]" in repr(model)


@pytest.mark.parametrize("fanout", [[10], [10, 0], [10, -2], "10", 2.5])
def test_lightgcn_id_bad_fanout(context: ModelContext, fanout) -> None:
    from recsys_gnn.data.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model\.fanout must be .*num_layers=2") as err:
        LightGCNId(context, dim=4, num_layers=2, fanout=fanout)
    assert "\n" not in str(err.value)


# -- LM fine-tuning ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm_context(tmp_path_factory: pytest.TempPathFactory) -> ModelContext:
    data = make_data(n_users=4, n_items=5, cold_item=False)
    data.train = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 3], [2, 0], [3, 4]], dtype=np.int64)
    data.train_weight = np.ones(len(data.train), dtype=np.float32)
    return make_context(data, tmp_path_factory.mktemp("enc_tiny"))


@pytest.fixture(scope="module")
def finetune(tiny_lm_context: ModelContext) -> LMFinetune:
    torch.manual_seed(0)
    return LMFinetune(tiny_lm_context, max_length=16, unfreeze_layers=1)


def test_lm_finetune_only_last_layer_gets_gradients(finetune: LMFinetune) -> None:
    layers = transformer_layers(finetune.lm)
    trainable = {n for n, p in finetune.named_parameters() if p.requires_grad}
    last = {f"lm.encoder.layer.{len(layers) - 1}.{n}" for n, _ in layers[-1].named_parameters()}
    assert trainable == last | {"user_emb.weight"}
    batch = {
        "user": torch.tensor([0, 1, 2, 3, 0]),
        "pos": torch.tensor([0, 2, 3, 4, 1]),
        "neg": torch.zeros(5, 1),
    }
    finetune.train()
    finetune.zero_grad()
    loss, extra = finetune.loss(batch)
    assert loss.isfinite() and 0 <= float(extra["in_batch_acc"]) <= 1
    loss.backward()
    for name, p in finetune.named_parameters():
        if name in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    assert not finetune.lm.embeddings.training and not layers[0].training and layers[-1].training
    # from random users (the start is already near-optimal on 5 items), a few steps reduce the loss
    with torch.no_grad():
        finetune.user_emb.weight.normal_()
    opt = torch.optim.Adam([p for p in finetune.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(5):
        finetune.eval()  # no dropout: a deterministic loss to compare
        loss, _ = finetune.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0], losses
    finetune.zero_grad()


def test_lm_finetune_impression_loss_is_softmax_over_candidates_of_history_users(
    finetune: LMFinetune,
) -> None:
    """Impression batches: user = normalised mean of the history articles' tower rows (the user row when the
    history is empty), the click scored against its impression's other candidates at the model's temperature;
    gradients reach the trained block."""
    batch = {
        "user": torch.tensor([0, 1]),
        "pos": torch.tensor([2, 4]),
        "neg": torch.tensor([[3, 4], [0, 3]]),
        "hist_items": torch.tensor([0, 1]),  # row 0: history [0, 1]; row 1: empty
        "hist_offsets": torch.tensor([0, 2]),
    }
    loss, _ = finetune.impression_loss(batch, kind="softmax", temperature=123.0)  # temperature: the model's
    with torch.no_grad():
        rows = finetune.encode(torch.arange(5))
        u0 = torch.nn.functional.normalize(rows[[0, 1]].mean(0), dim=0)
        u1 = torch.nn.functional.normalize(finetune.user_emb.weight[1], dim=0)
        want = 0.0
        for u, cands in ((u0, [2, 3, 4]), (u1, [4, 0, 3])):
            logits = rows[cands] @ u / finetune.temperature
            want += float(torch.logsumexp(logits, 0) - logits[0]) / 2
    assert float(loss) == pytest.approx(want, rel=1e-4)
    loss.backward()
    grads = [p.grad for p in finetune.parameters() if p.requires_grad and p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    finetune.zero_grad()


def test_lm_finetune_masks_other_training_positives(finetune: LMFinetune) -> None:
    users, items = torch.tensor([0, 0, 2]), torch.tensor([0, 1, 3])
    known = finetune._is_known(users, items)
    assert known.tolist() == [[True, True, False], [True, True, False], [True, False, True]]


def test_lm_finetune_embed_tables_and_user_init(finetune: LMFinetune, tiny_lm_context: ModelContext) -> None:
    finetune.train()
    users, items = finetune.embed()
    assert users.shape == (4, 384) and items.shape == (5, 384)
    assert not users.requires_grad and not items.requires_grad
    assert finetune.training and transformer_layers(finetune.lm)[-1].training  # mode restored
    torch.testing.assert_close(items.norm(dim=1), torch.ones(5))
    # the teacher: mean-pooled normalised output of the untouched packaged encoder at the same max_length
    teacher = TextEncoder(max_length=16, cache_dir=None).encode(tiny_lm_context.data.item_texts)
    fresh = LMFinetune(tiny_lm_context, max_length=16, cache_frozen=False)
    fresh_users, fresh_items = fresh.embed()
    np.testing.assert_allclose(fresh_items.numpy(), teacher, atol=1e-4)
    expected_user0 = torch.nn.functional.normalize(fresh_items[[0, 1]].mean(0), dim=0)
    torch.testing.assert_close(fresh_users[0], expected_user0, atol=1e-5, rtol=0)


def test_lm_finetune_cached_frozen_layers_match_full_encoder(tiny_lm_context: ModelContext) -> None:
    cached = LMFinetune(tiny_lm_context, max_length=16, unfreeze_layers=2, cache_frozen=True)
    full = LMFinetune(tiny_lm_context, max_length=16, unfreeze_layers=2, cache_frozen=False)
    assert cached.frozen_hidden is not None and full.frozen_hidden is None
    torch.testing.assert_close(cached.encode_all(), full.encode_all(), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unfreeze_layers": 0}, "unfreeze_layers"),
        ({"unfreeze_layers": 7}, "unfreeze_layers"),
        ({"temperature": 0.0}, "temperature"),
        ({"max_length": 1}, "max_length"),
    ],
)
def test_lm_finetune_bad_hparams(tiny_lm_context: ModelContext, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LMFinetune(tiny_lm_context, **kwargs)


def test_lm_finetune_needs_a_model_name(tiny_lm_context: ModelContext) -> None:
    with pytest.raises(ValueError, match="encoder"):
        LMFinetune(ModelContext(tiny_lm_context.data))


# -- end to end through the pipeline -------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["pop", "mf", "lightgcn_id", "xsimgcl", "lm_content", "lm_finetune"])
def test_pipeline_fast_dev_run(tiny_env: Path, make_cfg, model: str) -> None:
    from recsys_gnn.pipeline import train

    cfg = make_cfg([f"model={model}", "compress.dim=16"])
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    for key in ("val/ndcg@10", "test/ndcg@10"):
        assert 0.0 <= metrics[key] <= 1.0
    assert ("fit/seconds" in metrics) == (model not in ("pop", "lm_content"))


def test_softmax_loss_matches_a_hand_computed_case() -> None:
    from recsys_gnn.models.losses import softmax_loss

    pos = torch.tensor([1.0, 0.0])
    neg = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    # row 0: -log(e^1 / (e^1 + 2)); row 1: -log(1 / (1 + e + e^-1))
    import math

    want = (-math.log(math.e / (math.e + 2)) - math.log(1 / (1 + math.e + math.exp(-1)))) / 2
    assert softmax_loss(pos, neg).item() == pytest.approx(want, rel=1e-6)
    # temperature 0.5 doubles every logit
    want_t = (-math.log(math.e**2 / (math.e**2 + 2)) - math.log(1 / (1 + math.e**2 + math.exp(-2)))) / 2
    assert softmax_loss(pos, neg, temperature=0.5).item() == pytest.approx(want_t, rel=1e-6)
    # an invalid negative is left out of the denominator: row 1 without its first negative
    valid = torch.tensor([[True, True], [False, True]])
    want_v = (-math.log(math.e / (math.e + 2)) - math.log(1 / (1 + math.exp(-1)))) / 2
    assert softmax_loss(pos, neg, neg_valid=valid).item() == pytest.approx(want_v, rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        softmax_loss(pos, neg, temperature=0.0)


def test_shared_negatives_score_like_per_user_negatives() -> None:
    from recsys_gnn.models.base import pair_scores, ranking_loss

    torch.manual_seed(0)
    u, items = torch.randn(3, 4), torch.randn(6, 4)
    shared = {"pos": torch.tensor([0, 1, 2]), "neg": torch.tensor([3, 4, 5])}
    per_user = {"pos": shared["pos"], "neg": shared["neg"][None].expand(3, -1)}
    p1, n1 = pair_scores(u, items, shared)
    p2, n2 = pair_scores(u, items, per_user)
    torch.testing.assert_close(n1, n2)
    torch.testing.assert_close(p1, p2)
    for kind in ("bpr", "bce", "softmax"):
        all_valid = torch.ones(3, 3, dtype=torch.bool)
        torch.testing.assert_close(
            ranking_loss(kind, p1, n1, 0.2, all_valid), ranking_loss(kind, p2, n2, 0.2, None)
        )
    with pytest.raises(ValueError, match="unknown loss"):
        ranking_loss("hinge", p1, n1)


@pytest.mark.parametrize("model", ["mf", "lightgcn_id"])
def test_id_baselines_train_with_softmax_and_cosine(tiny_env, make_cfg, model) -> None:
    from recsys_gnn.pipeline import build_model, load_data

    cfg = make_cfg([f"model={model}", "~gnn", "~graph", "compress.dim=8", "model.similarity=cosine"])
    data = load_data(cfg)
    m = build_model(cfg, data)
    batch = {
        "user": torch.tensor([0, 1]),
        "pos": torch.as_tensor(data.train[:2, 1]),
        "neg": torch.tensor([0, 1, 2]),
        "neg_valid": torch.ones(2, 3, dtype=torch.bool),
    }
    loss, _ = m.loss(batch, kind="softmax", temperature=0.2)
    loss.backward()
    assert torch.isfinite(loss) and m.user_emb.weight.grad is not None
    users, items = m.embed()
    torch.testing.assert_close(items.norm(dim=1), torch.ones(data.n_items))


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("shared", [False, True])
def test_lightgcn_id_fast_loss_equals_the_generic_loss(tiny_env, make_cfg, similarity, shared) -> None:
    from recsys_gnn.models.base import Recommender
    from recsys_gnn.pipeline import build_model, load_data

    cfg = make_cfg(
        ["model=lightgcn_id", "~gnn", "~graph", "compress.dim=8", f"model.similarity={similarity}"]
    )
    data = load_data(cfg)
    m = build_model(cfg, data)
    batch = {"user": torch.tensor([0, 1]), "pos": torch.as_tensor(data.train[:2, 1])}
    if shared:
        batch |= {"neg": torch.tensor([0, 1, 2]), "neg_valid": torch.tensor([[True, False, True]] * 2)}
    else:
        batch |= {"neg": torch.tensor([[0, 1], [2, 0]])}
    for kind in ("bpr", "softmax"):
        fast, _ = m.loss(batch, kind=kind, temperature=0.2)
        generic, _ = Recommender.loss(m, batch, kind=kind, temperature=0.2)
        torch.testing.assert_close(fast, generic)


# -- XSimGCL -------------------------------------------------------------------------------------------------


def dense_norm_adj(model: LightGCNId) -> torch.Tensor:
    """``(U + I, U + I)`` dense ``D^-1/2 A D^-1/2`` of the model's own graph."""
    src, dst = model.graph.edges()
    n = model.graph.num_nodes()
    a = torch.zeros(n, n)
    a[dst, src] = model.graph.edata["w"]
    return a


def test_xsimgcl_embed_is_the_noise_free_mean_of_layers_1_to_k(context: ModelContext) -> None:
    torch.manual_seed(0)
    model = XSimGCL(context, dim=8, num_layers=3).train()  # training mode: embed() still has no noise
    assert model.trainable and not model.needs_text
    users, items = model.embed()
    assert users.shape == (20, 8) and items.shape == (30, 8)
    a = dense_norm_adj(model)
    ego = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach()
    want = (a @ ego + a @ a @ ego + a @ a @ a @ ego) / 3  # E^(0) left out, as in the paper
    torch.testing.assert_close(torch.cat([users, items]), want, atol=1e-6, rtol=1e-5)
    users2, items2 = model.embed()
    assert torch.equal(users, users2) and torch.equal(items, items2)  # deterministic
    final, view = model.layers(ego, perturbed=False)  # the loss path without noise == embed()
    torch.testing.assert_close(final, want, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(view, a @ ego, atol=1e-6, rtol=1e-5)  # l* = 1


def test_xsimgcl_noise_has_norm_eps_and_the_sign_of_the_embedding(context: ModelContext) -> None:
    torch.manual_seed(0)
    model = XSimGCL(context, dim=8, num_layers=1, eps=0.3)
    ego = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach()
    clean = dense_norm_adj(model) @ ego
    noisy, view = model.layers(ego, perturbed=True)
    assert torch.equal(noisy, view)  # K = l* = 1
    delta = noisy - clean
    has = clean.abs().sum(1) > 0  # nodes with edges (the cold item propagates to 0: sign 0, no noise)
    torch.testing.assert_close(delta[has].norm(dim=1), torch.full((int(has.sum()),), 0.3), atol=1e-5, rtol=0)
    assert (torch.sign(delta[has]) * torch.sign(clean[has]) >= 0).all()
    assert not torch.allclose(model.layers(ego, perturbed=True)[0], noisy)  # fresh noise each pass
    # the training loss is noisy, the eval loss is not
    batch = full_batch(context.data)
    model.eval()
    assert torch.equal(model.loss(batch)[0], model.loss(batch)[0])
    model.train()
    assert not torch.equal(model.loss(batch)[0], model.loss(batch)[0])


def test_info_nce_hand_computed() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # cosines: a0.b0 = 1, a0.b1 = 1/sqrt2, a1.b0 = 0, a1.b1 = 1/sqrt2; logits / 0.5
    r2 = math.sqrt(2)
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(r2)))
    row1 = -math.log(math.exp(r2) / (1 + math.exp(r2)))
    assert info_nce(a, b, 0.5).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_xsimgcl_loss_is_rec_plus_weighted_contrastive_term(context: ModelContext) -> None:
    """Eval mode (no noise): the loss is LightGCN's BPR + L2 on the final table plus lambda times the InfoNCE
    of final vs layer-1 rows over the unique users and unique positives, computed here by hand."""
    torch.manual_seed(0)
    model = XSimGCL(context, dim=8, num_layers=2, cl_weight=0.1, cl_temperature=0.25).eval()
    batch = {
        "user": torch.tensor([0, 0, 1]),
        "pos": torch.tensor([2, 2, 5]),
        "neg": torch.tensor([[7], [8], [9]]),
    }
    loss, extra = model.loss(batch, kind="bpr")
    a = dense_norm_adj(model)
    ego = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach()
    e1 = a @ ego
    final = (e1 + a @ e1) / 2
    u, p, n = final[batch["user"]], final[20 + batch["pos"]], final[20 + batch["neg"][:, 0]]
    rec = -torch.nn.functional.logsigmoid((u * p).sum(1) - (u * n).sum(1)).mean()
    rows = torch.cat([batch["user"], 20 + batch["pos"], 20 + batch["neg"][:, 0]])
    l2 = 1e-4 * ego[rows].pow(2).sum() / (2 * 3)
    users, items = torch.tensor([0, 1]), torch.tensor([22, 25])  # unique users / positives
    cl = info_nce(final[users], e1[users], 0.25) + info_nce(final[items], e1[items], 0.25)
    torch.testing.assert_close(extra["cl_loss"], cl, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(loss, rec + l2 + 0.1 * cl, atol=1e-6, rtol=1e-5)
    model.zero_grad()
    loss.backward()
    assert model.user_emb.weight.grad.abs().sum() > 0 and model.item_emb.weight.grad.abs().sum() > 0
    off = XSimGCL(context, dim=8, num_layers=2, cl_weight=0.0).eval()
    assert off.loss(batch)[1] == {}


def test_xsimgcl_training_lowers_the_loss(context: ModelContext) -> None:
    torch.manual_seed(0)
    model = XSimGCL(context, dim=16, num_layers=2).train()
    batch = full_batch(context.data)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    with torch.no_grad():
        start = model.eval().loss(batch)[0].item()
    model.train()
    for _ in range(40):
        opt.zero_grad()
        model.loss(batch)[0].backward()
        opt.step()
    with torch.no_grad():
        end = model.eval().loss(batch)[0].item()
    assert end < 0.8 * start, (start, end)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps": -0.1}, "eps"),
        ({"cl_weight": float("nan")}, "cl_weight"),
        ({"cl_temperature": 0.0}, "cl_temperature"),
        ({"cl_layer": 0}, "cl_layer"),
        ({"cl_layer": 3, "num_layers": 2}, "cl_layer"),
        ({"num_layers": 0}, "num_layers"),
    ],
)
def test_xsimgcl_bad_hparams(context: ModelContext, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        XSimGCL(context, **kwargs)


def test_xsimgcl_repr(context: ModelContext) -> None:
    text = repr(
        XSimGCL(context, dim=4, num_layers=3, eps=0.1, cl_weight=0.05, cl_temperature=0.15, cl_layer=2)
    )
    for frag in ("dim=4", "num_layers=3", "eps=0.1", "cl_weight=0.05", "cl_temperature=0.15", "cl_layer=2"):
        assert frag in text


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_xsimgcl_softmax_loss_through_the_config(tiny_env, make_cfg, similarity: str) -> None:
    from recsys_gnn.pipeline import build_model, load_data

    cfg = make_cfg(["model=xsimgcl", "compress.dim=8", f"model.similarity={similarity}"])
    data = load_data(cfg)
    m = build_model(cfg, data)
    assert isinstance(m, XSimGCL) and m.eps == 0.2 and m.cl_weight == 0.2 and m.cl_layer == 1
    batch = {
        "user": torch.tensor([0, 1]),
        "pos": torch.as_tensor(data.train[:2, 1]),
        "neg": torch.tensor([0, 1, 2]),
        "neg_valid": torch.ones(2, 3, dtype=torch.bool),
    }
    loss, extra = m.loss(batch, kind="softmax", temperature=0.2)
    loss.backward()
    assert torch.isfinite(loss) and extra["cl_loss"] > 0 and m.user_emb.weight.grad is not None


def test_lightgcn_id_fanout_from_the_config(tiny_env, make_cfg) -> None:
    from recsys_gnn.pipeline import build_model, load_data

    cfg = make_cfg(["model=lightgcn_id", "~gnn", "~graph", "compress.dim=8", "model.fanout=[5,5,-1]"])
    model = build_model(cfg, load_data(cfg))
    assert model.fanout == [5, 5, -1]
    batch = {"user": torch.tensor([0, 1]), "pos": torch.tensor([2, 3]), "neg": torch.tensor([[4], [5]])}
    loss, _ = model.train().loss(batch)
    assert torch.isfinite(loss)
