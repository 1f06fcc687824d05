from cmdnet.logs import tee_output
from cmdnet.stages import write_labels

tee_output(snakemake.log[0])
labels = write_labels(snakemake.params.sheet, snakemake.params.cohort, snakemake.params.phases, snakemake.output[0])
print(f"{len(labels)} patients; MVI counts {labels['mvi'].value_counts().sort_index().to_dict()}; "
      f"grade counts {labels['grade'].value_counts().sort_index().to_dict()}")
