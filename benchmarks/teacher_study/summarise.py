"""Mean pooled AUC of each teacher variant over development runs (cohort x training seed), beside clinical_lr.

    python benchmarks/teacher_study/summarise.py benchmarks/teacher_study/results/dev_seeds.csv [more.csv]

Prints, per variant: the runs, the mean and SD of the pooled out-of-fold macro AUC, the mean per-fold AUC, the
mean AUC with the clinical vector / the images permuted among test patients, the mean of (variant - clinical_lr
on the same cohort) and the number of runs within 0.02 of clinical_lr, and the mean seconds per fold.
"""

from __future__ import annotations

import sys

import pandas as pd


def main(paths: list[str]) -> None:
    d = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    d["workdir"] = d["workdir"].astype(object).fillna("teacher")  # runs on the worktree's own (default) cohort
    d["seed"] = d["seed"].fillna(0).astype(int) if "seed" in d else 0
    d = d.drop_duplicates(["workdir", "seed", "variant", "model"], keep="last")
    lr = d[d["variant"] == "clinical_lr(c=1.0)"].groupby("workdir")["pooled_auc"].mean()
    teachers = d[d["model"] == "teacher"].copy()
    teachers["minus_lr"] = teachers["pooled_auc"] - teachers["workdir"].map(lr)
    g = teachers.groupby("variant")
    out = pd.DataFrame({
        "runs": g.size(), "pooled_auc": g["pooled_auc"].mean(), "sd": g["pooled_auc"].std(),
        "min": g["pooled_auc"].min(), "fold_auc": g["fold_auc"].mean(),
        "clinical_permuted": g["auc_clinical_permuted"].mean(), "images_permuted": g["auc_images_permuted"].mean(),
        "minus_lr": g["minus_lr"].mean(), "within_002": g["minus_lr"].apply(lambda x: int((x >= -0.02).sum())),
        "s_per_fold": g["seconds_per_fold"].mean()})
    print("clinical_lr (C=1) pooled AUC per cohort:", lr.round(3).to_dict(), "mean", round(lr.mean(), 3))
    print(out.sort_values("pooled_auc").round(3).to_string())
    students = d[d["model"] != "teacher"]
    if len(students[~students["model"].str.startswith("clinical_lr")]):
        s = students[~students["model"].str.startswith("clinical_lr")]
        table = s.pivot_table(index=["variant", "model"], columns=["workdir", "seed"], values="pooled_auc")
        table.columns = [f"{w}/seed{k}" for w, k in table.columns]
        print(table.assign(mean=table.mean(axis=1)).round(3).to_string())


if __name__ == "__main__":
    main(sys.argv[1:])
