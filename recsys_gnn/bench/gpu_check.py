"""GPU check: one epoch of each GNN on the GPU and the same run on the CPU, evaluation metrics compared.

``bash experiments/bench/gpu_check.sh [options] [hydra overrides]`` (or ``make gpu-check``). For every case
(:data:`CASES`) the same seeded model is trained for ``--epochs`` epochs with ``trainer=gpu`` and with
``trainer=cpu`` on the same data, then validated and tested; every ``val/*`` and ``test/*`` metric must agree
within ``--atol``. Cases that need DGL on the GPU (``recsys_gnn.distributed.dgl_device_settings``: e.g. ``gat``,
the classic stacks, ``lightgcn-dgl``) run only with a CUDA build of DGL (``make install-cuda``); with the CPU-only
wheel they are reported as skipped, as :func:`recsys_gnn.distributed.check_accelerator` refuses them. Dropout is set to 0 (CPU and CUDA draw
different random numbers), so the two runs differ only by floating-point summation order.

Exit status: 0 when every case that ran agrees (and, without a CUDA device, after a clean skip), 1 on a
mismatch or a failed run, 2 without a CUDA device under ``--require-gpu``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

log = logging.getLogger("recsys_gnn.bench.gpu_check")

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def default_cases() -> dict[str, list[str]]:
    """Case name -> Hydra overrides: the compressor with every GNN of ``conf/gnn``, LightGCN's DGL backend
    (``update_all`` on the GPU), and LightGCN on ids."""
    cases = {p.stem: ["model=compressor", f"gnn={p.stem}"] for p in sorted((CONF_DIR / "gnn").glob("*.yaml"))}
    if "lightgcn" in cases:
        cases["lightgcn-dgl"] = [*cases["lightgcn"], "gnn.backend=dgl"]
    cases["lightgcn_id"] = ["model=lightgcn_id"]
    return cases


CASES = default_cases()
DROPOUT_KEYS = ("dropout", "attn_dropout", "feat_drop", "attn_drop", "cold_dropout")


@dataclass
class CaseResult:
    """The outcome of one case: ``status`` is ``ok``, ``mismatch``, ``skipped`` or ``error``."""

    name: str
    status: str
    detail: str = ""
    max_diff: float = 0.0
    worst: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def compare(
    reference: dict[str, float], other: dict[str, float], atol: float
) -> tuple[float, str, list[str]]:
    """Largest ``|other - reference|`` over the shared metrics, its key, and the keys beyond ``atol``.

    A metric present on one side only counts as a mismatch (``inf``).
    """
    worst, worst_key, bad = 0.0, "", []
    for key in sorted(set(reference) | set(other)):
        diff = abs(other[key] - reference[key]) if key in reference and key in other else float("inf")
        if diff > worst or not worst_key:
            worst, worst_key = diff, key
        if not diff <= atol:
            bad.append(key)
    return worst, worst_key, bad


def compose_case(overrides: Sequence[str], output_dir: Path):
    """The training config of a case, with every dropout set to 0 and a quiet, single-device CPU trainer."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["trainer=cpu", "logger=none", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        for group in ("gnn", "model"):
            node = cfg.get(group)
            for key in DROPOUT_KEYS:
                if node is not None and key in node:
                    node[key] = 0.0
    return cfg


def train_and_evaluate(cfg, data, accelerator: str, epochs: int) -> tuple[dict[str, float], float]:
    """Seeded fit for ``epochs`` epochs on ``accelerator``, then validate and test: ``(metrics, seconds)``."""
    import hydra
    import pytorch_lightning as pl

    from recsys_gnn.data.datamodule import RecDataModule
    from recsys_gnn.models.module import RecModule
    from recsys_gnn.pipeline import build_context, build_model

    pl.seed_everything(cfg.seed, workers=True)
    model = build_model(cfg, data, build_context(cfg, data))
    optimizer = hydra.utils.instantiate(cfg.optimizer) if cfg.get("optimizer") else None
    module = RecModule(model, data, optimizer=optimizer, **cfg.module)
    datamodule = RecDataModule(data, seed=cfg.seed, **cfg.data)
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=epochs + 1,  # evaluation once, after training
        default_root_dir=cfg.paths.output_dir,
    )
    t0 = time.perf_counter()
    if getattr(model, "trainable", True):
        trainer.fit(module, datamodule=datamodule)
    metrics = dict(trainer.validate(module, datamodule=datamodule, verbose=False)[0])
    metrics.update(trainer.test(module, datamodule=datamodule, verbose=False)[0])
    seconds = time.perf_counter() - t0
    return {k: float(v) for k, v in metrics.items() if k.startswith(("val/", "test/"))}, seconds


def run_case(
    name: str, overrides: Sequence[str], device: str, epochs: int, atol: float, work: Path, data_cache
):
    """Train and evaluate one case on the CPU and on ``device`` (``cuda``, or ``cpu`` to test this tool)."""
    from recsys_gnn.distributed import AcceleratorError, check_accelerator
    from recsys_gnn.pipeline import load_data

    cfg = compose_case(overrides, work / name)
    accelerator = "gpu" if device == "cuda" else "cpu"
    try:
        check_accelerator(compose_case([*overrides, f"trainer={'gpu' if device == 'cuda' else 'cpu'}"], work))
    except AcceleratorError as err:
        return CaseResult(name, "skipped", str(err).split(": ", 1)[0] + " (make install-cuda)")
    key = (str(cfg.dataset.name), str(cfg.split.get("_target_")), str(cfg.task))
    if key not in data_cache:
        data_cache[key] = load_data(cfg)
    data = data_cache[key]
    try:
        cpu, cpu_s = train_and_evaluate(cfg, data, "cpu", epochs)
        dev, dev_s = train_and_evaluate(cfg, data, accelerator, epochs)
    except Exception as err:  # a run that breaks is the finding: report it and go on
        log.exception("case %s failed", name)
        return CaseResult(name, "error", f"{type(err).__name__}: {err}"[:300])
    worst, worst_key, bad = compare(cpu, dev, atol)
    status = "mismatch" if bad else "ok"
    detail = f"beyond atol: {', '.join(bad)}" if bad else f"{len(cpu)} metrics"
    return CaseResult(
        name, status, detail, worst, worst_key, {"cpu": cpu_s, device: dev_s}, {"cpu": cpu, device: dev}
    )


def results_table(results: Sequence[CaseResult], device: str, atol: float) -> str:
    """Markdown table of the cases."""
    lines = [
        f"| case | status | max abs diff (atol {atol:g}) | worst metric | cpu s | {device} s | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ran = r.status in ("ok", "mismatch")
        diff = f"{r.max_diff:.2e}" if ran else "-"
        cpu_s = f"{r.seconds['cpu']:.1f}" if "cpu" in r.seconds else "-"
        dev_s = (
            f"{r.seconds[device]:.1f}" if device in r.seconds and device != "cpu" else cpu_s if ran else "-"
        )
        lines.append(
            f"| {r.name} | {r.status} | {diff} | {r.worst or '-'} | {cpu_s} | {dev_s} | {r.detail} |"
        )
    return "\n".join(lines)


def describe_device() -> str:
    """One line on the CUDA device, or why there is none."""
    if not torch.cuda.is_available():
        return f"no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda})"
    props = torch.cuda.get_device_properties(0)
    return f"{props.name}, {props.total_memory / 2**30:.0f} GiB (torch {torch.__version__}, CUDA {torch.version.cuda})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recsys_gnn.bench.gpu_check", description=__doc__.split("\n")[0]
    )
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--epochs", type=int, default=1, help="training epochs per run (default 1)")
    p.add_argument("--atol", type=float, default=5e-3, help="largest allowed |gpu - cpu| per metric")
    p.add_argument("--out", type=Path, default=None, help="folder for results.md / results.json")
    p.add_argument("--require-gpu", action="store_true", help="exit 2 instead of skipping without a GPU")
    p.add_argument(
        "--device", default="cuda", choices=("cuda", "cpu"), help=argparse.SUPPRESS
    )  # cpu: self-test
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. dataset=ml-100k")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        verdict = "FAILED" if args.require_gpu else "SKIPPED"
        print(
            f"gpu-check {verdict}: {describe_device()}; nothing to compare. Run it on a machine with an NVIDIA GPU."
        )
        return 2 if args.require_gpu else 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        print(f"gpu-check: unknown cases {unknown}; choose from {list(CASES)}", file=sys.stderr)
        return 1
    print(f"gpu-check: {describe_device()}; {args.epochs} epoch(s), cpu vs {args.device}, atol {args.atol:g}")
    results: list[CaseResult] = []
    data_cache: dict = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for name in names:
            result = run_case(
                name,
                [*CASES[name], *args.overrides],
                args.device,
                args.epochs,
                args.atol,
                Path(tmp),
                data_cache,
            )
            print(f"  {name}: {result.status} {result.detail}", flush=True)
            results.append(result)
    table = results_table(results, args.device, args.atol)
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        header = (
            f"# GPU check\n\n{describe_device()}; overrides: {' '.join(args.overrides) or '(defaults)'}\n\n"
        )
        (args.out / "results.md").write_text(header + table + "\n")
        (args.out / "results.json").write_text(
            json.dumps(
                {
                    "device": describe_device(),
                    "atol": args.atol,
                    "epochs": args.epochs,
                    "overrides": list(args.overrides),
                    "cases": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    failed = [r.name for r in results if r.status in ("mismatch", "error")]
    if failed:
        print(f"gpu-check FAILED: {', '.join(failed)}")
        return 1
    print(
        "gpu-check passed" + (" (some cases skipped)" if any(r.status == "skipped" for r in results) else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
