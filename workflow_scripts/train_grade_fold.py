from cmdnet.stages import train_grade_fold, run_job

run_job(train_grade_fold, snakemake)
