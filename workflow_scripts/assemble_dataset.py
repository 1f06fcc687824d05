from cmdnet.stages import assemble_dataset, run_job

run_job(assemble_dataset, snakemake)
