"""The on-disk format of a constructed dataset (Ilyas et al.'s D_R, D_NR, D_rand, D_det) and its checks.

A folder holds ``shard_<k>.pt`` files (a dict of tensors each), one ``shard_<k>.pt.json`` record per
shard (its size in bytes, SHA-256, sample count, the digest of the settings that built it and the
sums of its per-sample statistics), written atomically *after* the shard, and ``manifest.json``,
written atomically at the end of a construction run. A shard without an intact record counts as not
built: a rerun of the construction rebuilds it; the reader names it and says how to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Union

from zerosum.atomic import file_sha256

MANIFEST = "manifest.json"
CONFIG = "config.yaml"

#: per-sample values a construction returns -> the name of their mean in the manifest's ``stats``
STATS = {"target_hit": "target_hit_rate", "feature_dist": "inversion_loss", "feature_rel_dist": "inversion_rel_loss"}


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.pt"


def record_name(k: int) -> str:
    return shard_name(k) + ".json"


def settings_digest(settings: dict[str, Any]) -> str:
    """A short digest of the settings that define a dataset (stored with every shard)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def construction_config(root: Union[str, Path]) -> str:
    """The config that built the dataset at ``root`` (saved next to it), or where to find one."""
    config = Path(root) / CONFIG
    return str(config) if config.exists() else "<its construction config, configs/robust/*_construct_*.yaml>"


def rebuild_hint(root: Union[str, Path]) -> str:
    """How to rebuild the dataset at ``root``."""
    return (f"rebuild it with `zerosum predict --config {construction_config(root)}` (the rerun checks every "
            "shard against its record and rebuilds only the damaged or missing ones)")


def read_json(path: Path) -> tuple[Optional[dict], Optional[str]]:
    """``(content, None)``, or ``(None, why)`` if ``path`` is missing or unreadable (e.g. truncated)."""
    if not path.exists():
        return None, "missing"
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"unreadable ({type(err).__name__}: {err})"
    if not isinstance(content, dict):
        return None, f"unreadable (a JSON {type(content).__name__}, not an object)"
    return content, None


MISSING = "is missing"


def check_file(path: Path, record: dict) -> Optional[str]:
    """None if ``path`` has the size and SHA-256 of ``record`` (fields absent from an old record are
    not checked), else what is wrong, as a predicate ("is damaged: ...")."""
    if not path.exists():
        return MISSING
    size = path.stat().st_size
    if "bytes" in record and size != record["bytes"]:
        return f"is damaged: {size} bytes, its record says {record['bytes']}"
    if "sha256" in record and file_sha256(path) != record["sha256"]:
        return "is damaged: its SHA-256 differs from its record"
    return None


def check_shard(root: Path, k: int, digest: Optional[str] = None) -> tuple[Optional[dict], Optional[str]]:
    """``(record, None)`` for an intact shard ``k`` (built with settings ``digest`` if given), else
    ``(None, why)`` (a predicate: "is missing", "is damaged: ...", ...). A shard built with other
    settings raises: resuming must never mix datasets."""
    record, why = read_json(root / record_name(k))
    if record is None:
        if why == "missing":
            return None, MISSING if not (root / shard_name(k)).exists() else "has no record (killed while written)"
        return None, f"has an unreadable record {record_name(k)} ({why})"
    if digest is not None and record.get("settings_digest") not in (None, digest):
        raise ValueError(f"out_dir: {root / shard_name(k)} was built with other settings (digest "
                         f"{record.get('settings_digest')}, this run {digest}); allowed: the same settings to "
                         "resume, or another out_dir")
    why = check_file(root / shard_name(k), record)
    return (record, None) if why is None else (None, why)
