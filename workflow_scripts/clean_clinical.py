from cmdnet.logs import tee_output
from cmdnet.stages import clean_clinical_stage

tee_output(snakemake.log[0])
clean_clinical_stage(snakemake.params.clinical_sheet, snakemake.params.dictionary, snakemake.input.labels,
                     snakemake.params.cohort, snakemake.output.table, snakemake.output.missingness)
