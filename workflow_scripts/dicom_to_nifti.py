from cmdnet.logs import tee_output
from cmdnet.pipeline import convert_phase

tee_output(snakemake.log[0])
w = snakemake.wildcards
sidecar = convert_phase(snakemake.params.sheet, snakemake.params.cohort, w.patient, w.phase, snakemake.output.image)
print(f"patient {w.patient} phase {w.phase}: size {sidecar.get('size')} spacing {sidecar.get('spacing')}")
