from cmdnet.logs import tee_output
from cmdnet.stages import extract_patient_roi

tee_output(snakemake.log[0])
p = snakemake.params
rows = extract_patient_roi(p.sheet, p.cohort, p.roi, snakemake.wildcards.patient, p.phases, snakemake.input.images,
                           snakemake.output, patch_phase=p.patch_phase, seed=p.seed)
for row in rows:
    print({k: v for k, v in row.items() if k != "path"})
