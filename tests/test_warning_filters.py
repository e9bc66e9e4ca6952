"""Quiet runs: `kedro run --pipeline inference` prints no warning
(``network_security.warning_filters``)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import pytest

from network_security.warning_filters import QUIET_WARNINGS, silence_third_party_warnings


def test_the_listed_warnings_are_dropped_from_the_warnings_log(caplog):
    silence_third_party_warnings()
    silence_third_party_warnings()  # idempotent: one logging filter
    logger = logging.getLogger("py.warnings")
    assert sum(type(f).__name__ == "_QuietWarningsFilter" for f in logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="py.warnings"):
        logger.warning("x.py:1: UserWarning: \x1b[33mAdd type hints to the `predict` method")
        logger.warning("x.py:2: UserWarning: something the project should hear about")
    assert [r.getMessage() for r in caplog.records] == [
        "x.py:2: UserWarning: something the project should hear about"
    ]
    with warnings.catch_warnings(record=True) as caught:
        silence_third_party_warnings()
        warnings.warn("register_new_resolver() is deprecated", UserWarning, stacklevel=1)
        warnings.warn("a warning of our own", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a warning of our own"]
    assert len(QUIET_WARNINGS) == 5


@pytest.mark.slow
def test_an_inference_run_prints_no_warning(kedro_project, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MLFLOW_TRACKING_URI")}
    env["COLUMNS"] = "200"
    champion = kedro_project / "data" / "06_models" / "champion.pkl"
    model_script = (
        "import sys, pickle, numpy as np, pandas as pd\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from network_security.model import PhishingModel\n"
        "from network_security.champion import write_cache\n"
        "batch = pd.read_csv(sys.argv[1]).drop(columns=['url'])\n"
        "labels = np.where(batch['SSLfinal_State'] > 0, 1, -1)\n"
        "rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(batch, labels)\n"
        "write_cache(PhishingModel(rf, list(batch.columns), version='7'), sys.argv[2])\n"
    )
    batch = kedro_project / "data" / "01_raw" / "new_batch.csv"
    subprocess.run([sys.executable, "-c", model_script, str(batch), str(champion)], check=True)
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--pipeline", "inference"],
        cwd=kedro_project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Wrote 500 row(s)" in output
    assert "WARNING" not in output and "Warning" not in output, output
