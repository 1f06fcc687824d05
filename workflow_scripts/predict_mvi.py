from cmdnet.logs import tee_output

tee_output(snakemake.log[0])

import pandas as pd  # noqa: E402

from cmdnet.data.sheets import write_parquet  # noqa: E402
from cmdnet.mvi.training.fold import load_mvi_data, predict_fold  # noqa: E402

clinical = snakemake.input.get("clinical")  # teachers only: image-only models never read it
data = load_mvi_data(snakemake.input.dataset, snakemake.input.labels, snakemake.params.phases,
                     clinical_path=clinical, dictionary_path=snakemake.params.dictionary if clinical else None)
folds = pd.read_parquet(snakemake.input.folds)
predictions = pd.concat([predict_fold(path, data, folds, fold)
                         for fold, path in zip(snakemake.params.folds, snakemake.input.models)], ignore_index=True)
write_parquet(predictions, snakemake.output[0])
print(f"{len(predictions)} out-of-fold predictions -> {snakemake.output[0]}")
