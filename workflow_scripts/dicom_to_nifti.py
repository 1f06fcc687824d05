from cmdnet.logs import tee_output
from cmdnet.stages import convert_patient

tee_output(snakemake.log[0])
p = snakemake.params
for phase, sidecar in convert_patient(p.sheet, p.cohort, snakemake.wildcards.patient, p.phases,
                                      snakemake.output.images).items():
    print(f"patient {snakemake.wildcards.patient} phase {phase}: size {sidecar['size']} spacing {sidecar['spacing']}")
