"""A known set of runs, logged into MLflow with plain MlflowClient calls (no ablate code).

Two arms x 8 seeds with a small difference in accuracy, a third arm trained with another
learning rate (a confound the report must name), a FAILED, a KILLED and a RUNNING run, all
children of one parent run. The same table as a CSV is what ``report --runs`` reads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEEDS = 8
ARMS = {"base": 0.0, "mixup": 0.004, "wide": 0.02}  # accuracy offset per arm
LR = {"base": "0.05", "mixup": "0.05", "wide": "0.1"}


def known_table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for seed in range(SEEDS):
        level = rng.normal(0.9, 0.01)  # what the seed gives every arm: the runs are paired by seed
        for arm, offset in ARMS.items():
            rows.append({"arm": arm, "seed": seed, "dataset": "digits", "lr": LR[arm], "status": "completed",
                         "accuracy": level + offset + rng.normal(0, 0.002),
                         "nll": 0.3 - offset + rng.normal(0, 0.01), "ece": 0.03 + rng.normal(0, 0.003)})
    for arm, seed, status in (("base", 8, "failed"), ("mixup", 8, "killed"), ("wide", 8, "running")):
        rows.append({"arm": arm, "seed": seed, "dataset": "digits", "lr": LR[arm], "status": status,
                     "accuracy": np.nan, "nll": np.nan, "ece": np.nan})
    return pd.DataFrame(rows)


MLFLOW_STATUS = {"completed": "FINISHED", "failed": "FAILED", "killed": "KILLED", "running": None}


def log_table(client, experiment: str, table: pd.DataFrame, *, artifact_location: str | None = None) -> str:
    """Log every row as one run (params arm, seed, dataset, lr; metrics) under a parent run; returns its id."""
    experiment_id = client.create_experiment(experiment, artifact_location=artifact_location)
    parent = client.create_run(experiment_id, run_name="sweep").info.run_id
    client.log_metric(parent, "accuracy", 0.5)  # a parent's summary: not a seed
    for row in table.to_dict("records"):
        run = client.create_run(experiment_id, run_name=f"{row['arm']}-{row['seed']}",
                                tags={"mlflow.parentRunId": parent}).info.run_id
        for key in ("arm", "seed", "dataset", "lr"):
            client.log_param(run, key, str(row[key]))
        for key in ("accuracy", "nll", "ece"):
            if not np.isnan(row[key]):
                client.log_metric(run, key, 0.0, step=0)  # an early value: the final one is what counts
                client.log_metric(run, key, float(row[key]), step=1)
        status = MLFLOW_STATUS[row["status"]]
        if status:
            client.set_terminated(run, status=status)
    client.set_terminated(parent, status="FINISHED")
    return parent
