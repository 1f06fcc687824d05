"""A throw-away local SLURM cluster and a demo workflow, for testing `profiles/slurm` for real."""
