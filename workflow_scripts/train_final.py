from cmdnet.logs import tee_output

tee_output(snakemake.log[0])

import pandas as pd  # noqa: E402

from cmdnet.bundle import write_bundle  # noqa: E402

p = snakemake.params
labels = pd.read_parquet(snakemake.input.labels).set_index("patient_id")["mvi"].dropna().astype(int)
meta = write_bundle(snakemake.output[0], list(snakemake.input.models), method=p.method, roi_cfg=p.roi,
                    labels=labels, config_sections={"roi": p.roi, "mvi": p.training}, strategy=p.strategy,
                    synthetic=p.synthetic)
print(f"bundle of {len(meta['members'])} {p.method} model(s) ({p.strategy}) -> {snakemake.output[0]}; "
      f"training cohort: {meta['training_cohort']['description']}")
