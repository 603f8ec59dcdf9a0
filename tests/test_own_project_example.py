"""examples/own_project.py (quoted in the README) runs: entropy active learning with an own module and
datamodule, VAAL with an own task network, ADIOS with an own encoder (reduced: ``main(quick=True)``)."""

import json
import re
from pathlib import Path

import pytest

from examples.own_project import main

REPO = Path(__file__).resolve().parents[1]


def test_readme_quotes_the_example_as_it_is():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert (REPO / "examples/own_project.py").read_text() in blocks


@pytest.mark.slow  # three short fits and two queries in one process: ~25 s on 2 idle cores
def test_example_runs_all_three_parts(capsys):
    main(quick=True)
    out = capsys.readouterr().out
    for name in ("entropy", "vaal"):
        assert re.search(rf"^{name}: round 0: 50 labels, test accuracy 0\.\d+$", out, flags=re.M), out
        assert re.search(rf"^{name}: round 1: 70 labels, test accuracy 0\.\d+$", out, flags=re.M), out
    assert re.search(r"^adios: knn/val_acc = 0\.\d+$", out, flags=re.M), out
    assert re.search(r"^adios: probe/val_acc = 0\.\d+$", out, flags=re.M), out
    # one folder per run (lightning_logs/version_<n>): the two active-learning runs' pools
    for version, strategy in ((0, "EntropyStrategy"), (1, "VAALQuery")):
        labeled = json.loads(Path(f"lightning_logs/version_{version}/labeled.json").read_text())
        assert labeled["settings"]["strategy"]["class"].endswith(strategy)
        rounds = dict(zip(labeled["indices"], labeled["rounds"]))
        assert len(rounds) == 70 and sorted(rounds.values()).count(1) == 20  # 20 new, distinct samples in round 1
