from cmdnet.logs import tee_output
from cmdnet.pipeline import extract_phase_roi

tee_output(snakemake.log[0])
w = snakemake.wildcards
row = extract_phase_roi(snakemake.params.sheet, snakemake.params.cohort, snakemake.params.roi, w.patient, w.phase,
                        snakemake.input.image, snakemake.output[0], make_patches=snakemake.params.make_patches,
                        seed=snakemake.params.seed)
print({k: v for k, v in row.items() if k != "path"})
