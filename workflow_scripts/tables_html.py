from cmdnet.logs import tee_output
from cmdnet.tables import csv_to_html

tee_output(snakemake.log[0])
for name, title in snakemake.params.titles.items():
    print(csv_to_html(snakemake.input[name], snakemake.output[name], title=title))
