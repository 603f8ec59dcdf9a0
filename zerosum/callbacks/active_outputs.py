"""What an active-learning run leaves in its folder: ``rounds.csv``, ``labeled.json`` and
``learning_curve.png``, each written atomically (temp file + ``os.replace``), so a kill never leaves a
half-written file.

The learning curve is titled with the dataset, the strategy and the protocol, and draws every random
baseline it finds in the same output tree (run folders up to three levels below the output folder's
grandparent, e.g. ``lightning_logs/active/random_digits/version_0`` beside
``lightning_logs/active/entropy_digits/version_0``, whose ``labeled.json`` records a
:class:`~zerosum.query.RandomStrategy` run of the same dataset and protocol).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from typing import Any, Optional

from zerosum.atomic import atomic_write

#: settings two runs must share for one to be the other's baseline (everything but the strategy)
PROTOCOL_KEYS = ("budget", "rounds", "steps_per_round", "epochs_per_round", "select_weights", "reinit",
                 "eval_split", "initial_labeled")


def write_rounds_csv(path: str, rows: list[dict]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def write_labeled_json(path: str, record: dict) -> None:
    atomic_write(path, json.dumps(record))


def read_run(folder: str) -> Optional[dict]:
    """``labeled.json`` and the ``rounds.csv`` rows of a run folder, or None if incomplete."""
    try:
        record = json.load(open(os.path.join(folder, "labeled.json")))
        rows = list(csv.DictReader(open(os.path.join(folder, "rounds.csv"))))
    except (OSError, ValueError):
        return None
    record["rows"] = rows
    return record


def find_random_baselines(out_dir: str, record: dict, depth: int = 3) -> list[tuple[str, dict]]:
    """Run folders near ``out_dir`` (up to ``depth`` levels below its grandparent: sibling runs, e.g.
    ``lightning_logs/active/random_digits/version_0`` next to ``.../entropy_digits/version_0``) holding a
    random-strategy run of the same dataset and protocol as ``record``."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(out_dir)))
    here = os.path.abspath(out_dir)
    found = []
    for level in range(1, depth + 1):
        for path in sorted(glob.glob(os.path.join(parent, *["*"] * level, "labeled.json"))):
            folder = os.path.dirname(os.path.abspath(path))
            if folder == here:
                continue
            other = read_run(folder)
            if other is None or other.get("dataset") != record.get("dataset"):
                continue
            mine, theirs = record.get("settings", {}), other.get("settings", {})
            if not strategy_class(theirs).endswith("RandomStrategy"):
                continue
            if all(mine.get(k) == theirs.get(k) for k in PROTOCOL_KEYS):
                found.append((os.path.relpath(folder, parent), other))
    return found


def strategy_class(settings: dict) -> str:
    """The strategy's class path from recorded settings (nested ``{"class": ...}`` or a string)."""
    s = settings.get("strategy", "")
    return str(s.get("class", "") if isinstance(s, dict) else s)


def protocol_line(settings: dict[str, Any]) -> str:
    length = (f"{settings['steps_per_round']} steps/round" if settings.get("steps_per_round")
              else f"{settings.get('epochs_per_round')} epochs/round")
    weights = ", best-on-val weights" if settings.get("select_weights") == "best_val" else ""
    return f"{settings.get('initial_labeled')} initial, +{settings.get('budget')}/round, {length}{weights}"


def plot_learning_curve(path: str, record: dict, rows: list[dict], key: str, baselines: list[tuple[str, dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = record.get("settings", {})
    strategy = strategy_class(settings).rsplit(".", 1)[-1] or "?"
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot([int(h["labeled"]) for h in rows], [100 * float(h[key]) for h in rows], "o-", lw=2, label=strategy)
    for name, other in baselines:
        pts = [(int(h["labeled"]), 100 * float(h[key])) for h in other["rows"] if key in h and h[key] != ""]
        if pts:
            ax.plot(*zip(*pts), "s--", color="gray", alpha=0.8, label=f"random ({name})")
    ax.set_xlabel("labeled samples")
    ax.set_ylabel(f"{key.replace('_acc', '')} accuracy (%)")
    ax.set_title(f"{record.get('dataset', '?')}: {strategy}\n{protocol_line(settings)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
