"""Tabular data sets of different shapes for the loop-quality benchmark, built here from seeds.

- `loans`: 2,400 rows, imbalanced binary (about 18% positive), seven numeric columns and three yes/no
  columns, 2% of labels flipped at the source;
- `segments`: 1,200 rows, four classes, six numeric columns, a four-level and a three-level categorical
  column, 3% of labels flipped at the source.
"""

from __future__ import annotations

from pathlib import Path


def loans(seed: int = 11, rows: int = 2400):
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=10, n_informative=5, n_redundant=2, n_classes=2, weights=[0.82, 0.18],
        flip_y=0.02, class_sep=0.9, random_state=seed,
    )  # fmt: skip
    frame = pd.DataFrame(x[:, :7], columns=[f"x{i}" for i in range(7)])
    rng = np.random.default_rng(seed)
    for j, name in enumerate(["owns_home", "has_guarantor", "online_only"]):
        frame[name] = np.where(x[:, 7 + j] + rng.normal(0, 0.5, rows) > 0, "yes", "no")
    frame["label"] = np.where(y == 1, "default", "repaid")
    return frame


def segments(seed: int = 5, rows: int = 1200):
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=8, n_informative=5, n_redundant=1, n_classes=4, n_clusters_per_class=1,
        class_sep=1.0, flip_y=0.03, random_state=seed,
    )  # fmt: skip
    frame = pd.DataFrame(x[:, :6], columns=[f"m{i}" for i in range(6)])
    rng = np.random.default_rng(seed)
    region = pd.cut(x[:, 6] + rng.normal(0, 0.3, rows), [-np.inf, -0.7, 0, 0.7, np.inf], labels=list("nesw"))
    frame["region"] = region.astype(str)
    frame["plan"] = np.where(x[:, 7] > 0.3, "pro", np.where(x[:, 7] < -0.5, "free", "basic"))
    frame["label"] = [f"segment_{v}" for v in y]
    return frame


BUILDERS = {"loans": loans, "segments": segments}


def write(name: str, folder: Path) -> Path:
    """The data set as a CSV file in `folder` (what `feedback-loop simulate --data FILE.csv` reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    BUILDERS[name]().to_csv(path, index=False)
    return path
