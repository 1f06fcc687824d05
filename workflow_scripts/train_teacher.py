from cmdnet.stages import train_teacher, run_job

run_job(train_teacher, snakemake)
