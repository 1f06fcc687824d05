from pathlib import Path

from cmdnet.logs import tee_output
from cmdnet.data.synth import SynthParams, write_cohort

tee_output(snakemake.log[0])
params = SynthParams.from_dict(dict(snakemake.params.synthetic))
write_cohort(Path(snakemake.output[0]), params)
print(f"synthetic cohort of {params.n_patients} patients written to {snakemake.output[0]}")
