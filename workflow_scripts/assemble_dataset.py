from cmdnet.logs import tee_output
from cmdnet.stages import assemble

tee_output(snakemake.log[0])
manifest = assemble(list(snakemake.input), snakemake.params.patients, snakemake.params.phases,
                    snakemake.output.dataset, snakemake.params.patches_of)
print(f"{manifest['patient_id'].nunique()} patients, phases {snakemake.params.phases} -> {snakemake.output.dataset}")
