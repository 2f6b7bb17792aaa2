"""Train the query classifier and write its artifact (model_router/classifier/artifacts/classifier.npz).

Data: our written corpus (model_router/classifier/training/corpus/*.tsv), plus the training part of
the dev set when ../shared is present (its held-out part is never trained on). Deterministic.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from model_router.classifier.classifier import ARTIFACT
from model_router.classifier.features import DIM, featurize
from model_router.classifier.langid import PAIRS, script_of
from model_router.classifier.training.data import Query, load_corpus, load_jsonl, split_dev
from model_router.classifier.training.fit import fit_naive_bayes, train_linear
from model_router.vocabulary import COMPLEXITIES, USE_CASES

DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "queries_dev.jsonl"


CHAR_NGRAMS = {"use_case": (3, 4, 5), "complexity": (2, 3, 4)}
CASCADE_BELOW = 0.7  # on the dev train/held-out split: ~30% of queries get the second opinion


def _balanced(y: np.ndarray, n: int) -> np.ndarray:
    """Weights that balance the classes, so that the rarer ones are not drowned out."""
    counts = np.bincount(y, minlength=n).astype(np.float32)
    return (1.0 / np.maximum(counts, 1))[y]


def train_head(rows: list[Query], labels: tuple[str, ...], attr: str, shape: bool, epochs: int) -> tuple[np.ndarray, np.ndarray]:
    feats = [featurize(r.text, r.attachments, char_ngrams=CHAR_NGRAMS[attr], shape=shape) for r in rows]
    y = np.array([labels.index(getattr(r, attr)) for r in rows])
    return train_linear(feats, y, len(labels), DIM, epochs=epochs, weights=_balanced(y, len(labels)))


def train_e5_head(rows: list[Query]) -> tuple[np.ndarray, np.ndarray]:
    from model_router.classifier.embedding import Embedder

    embedder = Embedder()
    X = np.stack([embedder.features(r.text, r.attachments) for r in rows])
    y = np.array([USE_CASES.index(r.use_case) for r in rows])
    cols = np.arange(X.shape[1])
    return train_linear([(cols, x) for x in X], y, len(USE_CASES), X.shape[1], epochs=300, lr=0.05,
                 weights=_balanced(y, len(USE_CASES)))


def train_langid(rows: list[Query]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for script, classes in PAIRS.items():
        pick = [r for r in rows if r.language in classes and script_of(r.text)[0] == script]
        nb = fit_naive_bayes([r.text for r in pick], [r.language for r in pick], classes)
        arrays.update(nb.to_arrays(f"nb_{script}"))
    return arrays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dev", type=Path, default=DEV, help="dev set; its held-out split is excluded")
    ap.add_argument("--out", type=Path, default=ARTIFACT)
    ap.add_argument("--epochs", type=int, default=150)
    args = ap.parse_args()
    rows = load_corpus()
    sources = {"corpus": len(rows)}
    if args.dev.exists():
        dev_train, _ = split_dev(load_jsonl(args.dev))
        rows += dev_train
        sources["dev_train"] = len(dev_train)
    started = time.perf_counter()
    uc_W, uc_b = train_head(rows, USE_CASES, "use_case", shape=False, epochs=args.epochs)
    cx_W, cx_b = train_head(rows, COMPLEXITIES, "complexity", shape=True, epochs=args.epochs)
    e5_W, e5_b = train_e5_head(rows)
    arrays = train_langid(rows)
    meta = {"sources": sources, "epochs": args.epochs, "use_cases": USE_CASES, "complexities": COMPLEXITIES,
            "char_ngrams": CHAR_NGRAMS, "cascade_below": CASCADE_BELOW}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, use_case_W=uc_W.astype(np.float16), use_case_b=uc_b, complexity_W=cx_W.astype(np.float16),
                        complexity_b=cx_b, e5_W=e5_W, e5_b=e5_b, meta=np.array(json.dumps(meta)), **arrays)
    print(f"trained on {sources} in {time.perf_counter() - started:.1f}s -> {args.out} "
          f"({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
