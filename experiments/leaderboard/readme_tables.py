"""Write the README's leaderboard tables from ``experiments/leaderboard/results.csv``.

    python experiments/leaderboard/readme_tables.py            # rewrite README.md between the markers
    python experiments/leaderboard/readme_tables.py --print    # print the tables only

The tables go between ``<!-- leaderboard:begin -->`` and ``<!-- leaderboard:end -->`` in README.md: per dataset
every model with finished seeds (n > 0), mean ± sample std of test NDCG@10 and Recall@10/20, mean best epoch,
mean training seconds, the chosen grid point, and the best text / best id ratio. Models without a finished seed
are listed under the table as missing (results.md names the missing cells).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- leaderboard:begin -->", "<!-- leaderboard:end -->"
TITLES = {
    "video": "video (ml-latest-small)",
    "music": "music (Last.fm 2k)",
    "ecommerce": "ecommerce (UniSRec Scientific, official leave-one-out split)",
}
LABELS = {
    "pop": "popularity",
    "lm_content": "frozen LM (MiniLM, 384-d)",
    "mf_bpr": "MF, BPR",
    "mf_softmax": "MF, sampled softmax (cosine)",
    "lightgcn_bpr": "LightGCN on ids, BPR",
    "lightgcn_softmax": "LightGCN on ids, sampled softmax",
    "xsimgcl": "**XSimGCL** on ids (BPR + cross-layer contrastive)",
    "compressor_linear_bpr": "compressor, earlier recipe (linear, GCN, BPR)",
    "compressor_mlp_softmax": "**compressor, default recipe** (MLP, LightGCN, softmax)",
    "compressor_hybrid": "compressor, default recipe on the hybrid graph (+ text kNN)",
    "compressor_cl": "compressor, default + XSimGCL's contrastive term",
    "compressor_itemid": "compressor, default + item-id residual",
    "compressor_gcn": "compressor, default recipe with `gnn=gcn`",
    "compressor_gat": "compressor, default recipe with `gnn=gat`",
    "compressor_sage": "compressor, default recipe with `gnn=sage`",
    "recbole_lightgcn": "**RecBole 1.2.1 LightGCN** (outside reference, same split)",
    "lm_finetune": "fine-tuned LM (last MiniLM block, two towers)",
}
KEYS = {
    "optimizer.lr": "lr",
    "model.weight_decay_emb": "L2",
    "module.temperature": "T",
    "model.cl_weight": "lambda",
    "model.cl_eps": "noise",
    "+recbole.learning_rate": "lr",
    "+recbole.reg_weight": "reg",
}


def _cell(row: dict[str, str], metric: str) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if not mean:
        return "-"
    std_txt = f" ± {float(std):.4f}" if std and not math.isnan(float(std)) else ""
    return f"{float(mean):.4f}{std_txt}"


def _num(value: str) -> str:
    return "-" if not value or math.isnan(float(value)) else f"{float(value):.0f}"


def _epoch(row: dict[str, str]) -> str:
    """Mean best epoch, or "-" for models that do not train (no epochs run)."""
    return _num(row["best_epoch_mean"]) if row["epochs_mean"] else "-"


def _chosen(text: str) -> str:
    if text in ("", "default"):
        return "-"
    parts = []
    for item in text.replace(" (recorded)", "").split(","):
        key, _, value = item.partition("=")
        parts.append(f"{KEYS.get(key, key)} {value}")
    return ", ".join(parts)


def tables(results: Path) -> str:
    """Markdown tables of every dataset in ``results`` (see the module docstring)."""
    rows = list(csv.DictReader(results.open()))
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        ds_rows = [r for r in rows if r["dataset"] == ds]
        done = [r for r in ds_rows if int(r["n"] or 0) > 0]
        out += [f"**{TITLES.get(ds, ds)}**", ""]
        out += ["| model | n | NDCG@10 | Recall@10 | Recall@20 | best epoch | train s | chosen |"]
        out += ["|---|---|---|---|---|---|---|---|"]
        for r in done:
            out.append(
                f"| {LABELS.get(r['model'], r['model'])} | {r['n']} | {_cell(r, 'test/ndcg@10')} | "
                f"{_cell(r, 'test/recall@10')} | {_cell(r, 'test/recall@20')} | {_epoch(r)}"
                f" | {_num(r['fit_seconds_mean'])} | {_chosen(r['chosen'])} |"
            )
        best = {}
        for kind in ("text", "id"):
            cands = [r for r in done if r["kind"] == kind]
            if cands:
                best[kind] = max(cands, key=lambda r: float(r["test/ndcg@10_mean"]))
        if len(best) == 2:
            t, i = best["text"], best["id"]
            ratio = float(t["test/ndcg@10_mean"]) / float(i["test/ndcg@10_mean"])
            out.append(
                f"| best text / best id NDCG@10 | | **{ratio:.3f}** ({t['model']} / {i['model']}) | | | | | "
                "target >= 1.10 |"
            )
        missing = [LABELS.get(r["model"], r["model"]) for r in ds_rows if int(r["n"] or 0) == 0]
        if missing:
            out += ["", "Not run on this dataset: " + "; ".join(m.replace("**", "") for m in missing) + "."]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=ROOT / "experiments/leaderboard/results.csv")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--print", action="store_true", dest="print_only")
    args = p.parse_args(argv)
    text = tables(args.results)
    if args.print_only:
        print(text)
        return 0
    readme = args.readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise SystemExit(f"{args.readme}: markers {BEGIN} ... {END} not found")
    args.readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}{END}", readme))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
