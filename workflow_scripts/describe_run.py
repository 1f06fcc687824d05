from pathlib import Path

import pandas as pd

from cmdnet.logs import tee_output
from cmdnet.run_description import describe_run, git_commit, paper_settings, write_run_description

tee_output(snakemake.log[0])
repo = Path(snakemake.scriptdir).parent
facts = describe_run(snakemake.config, pd.read_parquet(snakemake.input.labels), commit=git_commit(repo),
                     paper_config=paper_settings(repo))
write_run_description(facts, snakemake.output[0])
print(f"{facts['cohort']} cohort, {facts['n_patients']} patients {facts['mvi_counts']}; commit {facts['commit']}; "
      f"config digest {facts['config_digest']}")
