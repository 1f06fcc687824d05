from pathlib import Path

from cmdnet.grading.evaluate import grade_evaluation
from cmdnet.logs import tee_output

tee_output(snakemake.log[0])
grade_evaluation(list(snakemake.input.predictions), list(snakemake.input.diagnostics),
                 manifest=snakemake.input.manifest, labels=snakemake.input.labels, out_tables=Path("results/tables"),
                 out_dir=Path(snakemake.output.per_fold).parent, out_figures=Path(snakemake.output.figures[0]).parent)
