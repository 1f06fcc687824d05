"""Can 64 Adam steps fit the clinical logistic regression? A linear softmax model on the teacher's clinical
vector, trained as the teacher is (Adam(W) lr 1e-3, batch 8, 8 epochs, zero init, focal loss), against
scikit-learn's LR (C=1) on the same folds and features: pooled out-of-fold macro AUC.

    PYTHONPATH=$PWD python benchmarks/teacher_study/optim_probe.py /tmp/teacher_dev/s11 [more workdirs]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study import load, pooled_auc  # noqa: E402

from cmdnet.clinical import ClinicalPreprocessor  # noqa: E402
from cmdnet.folds import fold_split  # noqa: E402
from cmdnet.losses import FocalLoss, class_balanced_alpha  # noqa: E402
from cmdnet.training.clinical_lr import fit_clinical_lr  # noqa: E402


def torch_lr(x, y, xt, *, optimiser: str, lr: float, epochs: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(x.shape[1], 3)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = (torch.optim.AdamW(lin.parameters(), lr=lr, weight_decay=1e-4) if optimiser == "adam"
           else torch.optim.SGD(lin.parameters(), lr=lr))
    focal = FocalLoss(gamma=2.0, alpha=class_balanced_alpha(y.numpy(), 3))
    for _ in range(epochs):
        for rows in torch.randperm(len(y), generator=g).split(8):
            opt.zero_grad()
            focal(lin(x[rows]), y[rows]).backward()
            opt.step()
    with torch.no_grad():
        return torch.softmax(lin(xt), 1).numpy()


def main(workdirs: list[str]) -> None:
    for wd in workdirs:
        data, folds = load(Path(wd))
        rows: dict[str, list[pd.DataFrame]] = {}
        for fold in range(5):
            train_ids, test_ids = fold_split(folds, fold)
            pre = ClinicalPreprocessor(data.dictionary).fit(data.clinical.loc[train_ids])
            x = torch.tensor(pre.transform(data.clinical.loc[train_ids]))
            xt = torch.tensor(pre.transform(data.clinical.loc[test_ids]))
            y = torch.tensor(np.asarray(data.labels.loc[train_ids]), dtype=torch.long)
            base = pd.DataFrame({"patient_id": test_ids, "fold": fold, "label": data.labels.loc[test_ids].to_numpy()})
            p, r, _ = fit_clinical_lr(data.clinical.loc[train_ids], data.labels.loc[train_ids], data.dictionary)
            runs = {"sklearn C=1": r.predict_proba(xt.numpy().astype(np.float64))}
            for name, opt, lr, ep in [("adam 1e-3 x 8 ep", "adam", 1e-3, 8), ("adam 1e-3 x 64 ep", "adam", 1e-3, 64),
                                      ("adam 3e-3 x 8 ep", "adam", 3e-3, 8), ("adam 1e-2 x 8 ep", "adam", 1e-2, 8),
                                      ("adam 3e-2 x 8 ep", "adam", 3e-2, 8), ("sgd 0.1 x 8 ep", "sgd", 0.1, 8)]:
                runs[name] = torch_lr(x, y, xt, optimiser=opt, lr=lr, epochs=ep, seed=fold)
            for name, probs in runs.items():
                rows.setdefault(name, []).append(base.assign(prob_0=probs[:, 0], prob_1=probs[:, 1], prob_2=probs[:, 2]))
        print(Path(wd).name, {k: round(pooled_auc(pd.concat(v)), 3) for k, v in rows.items()}, flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1:])
