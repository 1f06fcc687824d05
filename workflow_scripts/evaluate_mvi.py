from pathlib import Path

from cmdnet.evaluation import mvi_evaluation, mvi_figures
from cmdnet.logs import tee_output

tee_output(snakemake.log[0])
p = snakemake.params
methods = dict(zip(p.methods, snakemake.input.methods))
mvi_evaluation(methods, dict(zip(p.teachers, snakemake.input.teachers)), reference=p.reference,
               out_tables=Path("results/tables"), out_dir=Path(snakemake.output.summary).parent,
               n_boot=p.n_boot, seed=p.seed)
histories = {Path(h).parent.parent.name: h for h in snakemake.input.histories}
mvi_figures(methods, histories, reference=p.reference, out_dir=Path(snakemake.output.figures[0]).parent,
            summary=snakemake.output.summary)
