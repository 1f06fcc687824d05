#!/usr/bin/env bash
# record_gpu.sh RULE OUT_JSON MY_MARKER OTHER_MARKER BARRIER_S
# Writes {"rule", "cuda_visible_devices", "slurm_job_id", "host"} of this job as one JSON line to OUT_JSON.
# With BARRIER_S > 0 it first announces itself (MY_MARKER) and waits up to BARRIER_S seconds for the other
# GPU job's marker, failing if it never appears: the two jobs then provably overlapped in time.
set -euo pipefail
rule=$1 out=$2 me=$3 other=$4 barrier_s=$5

if (( barrier_s > 0 )); then
    touch "$me"
    waited=0
    until [[ -e $other ]]; do
        if (( waited >= barrier_s * 2 )); then
            echo "$rule: the other GPU job did not start within ${barrier_s}s (GPU jobs not run side by side)" >&2
            exit 1
        fi
        sleep 0.5
        waited=$(( waited + 1 ))
    done
fi
printf '{"rule": "%s", "cuda_visible_devices": "%s", "slurm_job_id": "%s", "host": "%s"}\n' \
    "$rule" "${CUDA_VISIBLE_DEVICES:-}" "${SLURM_JOB_ID:-}" "$(hostname -s)" >"$out"
