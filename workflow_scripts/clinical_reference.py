from cmdnet.stages import clinical_reference, run_job

run_job(clinical_reference, snakemake)
