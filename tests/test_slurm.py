"""`profiles/slurm` on a real single-node SLURM cluster: every DAG job goes through sbatch, GPU rules get GPUs.

The session fixture starts a throw-away cluster (tests/slurm/setup_cluster.sh: munged, slurmctld, slurmd,
two GRES GPUs backed by /dev/null links) and runs the four-rule demo workflow (tests/slurm/demo) through
`snakemake --profile profiles/slurm`. It needs root (to apt-get install slurm-wlm/munge and run the
daemons); elsewhere the SLURM tests skip with the reason. The cluster is always torn down.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.slurm.harness import (
    DEMO_SNAKEFILE,
    ClusterUnavailable,
    LocalSlurmCluster,
    SlurmRun,
    _rule_from_log_path,
    _scontrol_fields,
    run_on_slurm,
)

GPU_RULES = ("train_teacher", "train_method")
DEMO_JOBS = Counter({"prepare": 1, "train_teacher": 1, "train_method": 1, "summarise": 1})
DEMO_OUTPUTS = (
    "results/prepared.txt",
    "results/train_teacher.json",
    "results/train_method.json",
    "results/summary.tsv",
)
ACCOUNT, PARTITION = "cmdnet-ci", "debug"

# The documented way to set account and partition on the command line (docs/cluster.md); it replaces the
# profile's whole default-resources block, so the generic values are repeated.
ACCOUNT_PARTITION_ARGS = (
    "--default-resources",
    f"slurm_account='{ACCOUNT}'",
    f"slurm_partition='{PARTITION}'",
    "mem_mb=1000",
    "runtime=10",
    "cpus_per_task=1",
)


@pytest.fixture(scope="session")
def slurm_cluster():
    cluster = LocalSlurmCluster()
    try:
        cluster.start()
    except ClusterUnavailable as err:
        cluster.stop()
        print(f"SLURM tests skipped: {err}")
        pytest.skip(f"no local SLURM test cluster: {err}")
    except BaseException:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def demo_run(slurm_cluster: LocalSlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SlurmRun]:
    workdir = tmp_path_factory.mktemp("slurm-demo")
    run = run_on_slurm(
        DEMO_SNAKEFILE,
        workdir,
        # each GPU job waits for the other to start: they provably hold their GPUs at the same time
        extra_args=("--config", "gpu_barrier_s=60", *ACCOUNT_PARTITION_ARGS),
        cluster=slurm_cluster,
        timeout_s=240,
    )
    if run.returncode != 0:
        pytest.fail(
            f"snakemake --profile profiles/slurm exited {run.returncode}\n"
            f"--- last log lines:\n{_tail(run.log, 60)}\n--- daemons:\n{slurm_cluster.daemon_logs()}"
        )
    return workdir, run


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.slurm
def test_every_rule_job_is_one_completed_sbatch_job(demo_run: tuple[Path, SlurmRun]) -> None:
    _, run = demo_run
    assert Counter(job.rule for job in run.jobs) == DEMO_JOBS, f"SLURM jobs per rule: {run.jobs}"
    assert len({job.slurm_job_id for job in run.jobs}) == len(run.jobs), "a SLURM job id was reused"
    not_done = [(job.rule, job.slurm_job_id, job.state) for job in run.jobs if job.state != "COMPLETED"]
    assert not not_done, f"slurmctld does not report these jobs COMPLETED: {not_done}"
    for job in run.jobs:
        assert job.log.is_file(), f"no SLURM log for {job.rule} (job {job.slurm_job_id}) at {job.log}"


@pytest.mark.slurm
def test_all_outputs_exist(demo_run: tuple[Path, SlurmRun]) -> None:
    workdir, _ = demo_run
    missing = [name for name in DEMO_OUTPUTS if not (workdir / name).is_file()]
    assert not missing, f"outputs missing after a successful run: {missing}"
    summary = (workdir / "results/summary.tsv").read_text().splitlines()
    assert [json.loads(line)["rule"] for line in summary] == list(GPU_RULES)


@pytest.mark.slurm
def test_gpu_jobs_get_distinct_gpus_from_slurm(demo_run: tuple[Path, SlurmRun]) -> None:
    workdir, run = demo_run
    records = {rule: json.loads((workdir / f"results/{rule}.json").read_text()) for rule in GPU_RULES}
    devices = {rule: record["cuda_visible_devices"] for rule, record in records.items()}
    assert all(devices.values()), f"a GPU job got no CUDA_VISIBLE_DEVICES from SLURM: {devices}"
    assert devices["train_teacher"] != devices["train_method"], (
        f"two GPU jobs running at the same time got the same GPU: {devices}"
    )
    assert set(devices.values()) <= {"0", "1"}, f"unexpected GPU ids (the node has gpu:2): {devices}"
    for rule, record in records.items():
        (job,) = run.jobs_of(rule)
        assert record["slurm_job_id"] == job.slurm_job_id, (
            f"{rule} ran in SLURM job {record['slurm_job_id']!r}, but Snakemake submitted {job.slurm_job_id}"
        )


@pytest.mark.slurm
def test_sbatch_requests_follow_the_profile(demo_run: tuple[Path, SlurmRun]) -> None:
    """GPU only for the training rules; the profile's per-rule CPUs/memory; account/partition overrides."""
    _, run = demo_run
    for job in run.jobs:
        expected_gres = "gres:gpu:1" if job.rule in GPU_RULES else ""
        assert job.tres_per_job == expected_gres, f"{job.rule}: TresPerJob {job.tres_per_job!r}"
        tres = dict(item.split("=", 1) for item in job.tres.split(","))
        # profiles/slurm set-resources: 4 CPUs, 16000 MB per training job; the overridden default otherwise
        expected = ("4", "16000M") if job.rule in GPU_RULES else ("1", "1000M")
        assert (tres.get("cpu"), tres.get("mem")) == expected, f"{job.rule}: TRES {job.tres}"
        assert (job.account, job.partition) == (ACCOUNT, PARTITION), f"{job.rule}: {job.account}/{job.partition}"


def test_scontrol_oneliner_parsing() -> None:
    line = (
        "JobId=3 JobName=abc Account=lab JobState=COMPLETED Reason=None"
        " TRES=cpu=4,mem=16000M,node=1 Comment=rule_train_teacher"
    )
    fields = _scontrol_fields(line)
    assert fields["TRES"] == "cpu=4,mem=16000M,node=1"
    assert fields["Comment"] == "rule_train_teacher"
    assert fields["JobState"] == "COMPLETED"


def test_rule_from_slurm_log_path() -> None:
    log = Path("/w/.snakemake/slurm_logs/rule_train_grade_fold/fold_1/12.log")
    assert _rule_from_log_path(log) == "train_grade_fold"
    assert _rule_from_log_path(Path("/w/other/12.log")) == ""


@pytest.fixture(scope="session")
def failed_then_resumed(
    slurm_cluster: LocalSlurmCluster, demo_run: tuple[Path, SlurmRun]
) -> tuple[Path, dict[str, float], SlurmRun, SlurmRun]:
    """On the finished demo: make `summarise` fail once under SLURM, then run the same command again."""
    workdir, _ = demo_run
    upstream_mtimes = {name: (workdir / name).stat().st_mtime for name in DEMO_OUTPUTS[:3]}
    same_config = ("--config", "gpu_barrier_s=60")
    failed = run_on_slurm(
        DEMO_SNAKEFILE,
        workdir,
        extra_args=(
            *same_config, "fail_summarise=1", "--forcerun", "summarise", "--retries", "0", *ACCOUNT_PARTITION_ARGS
        ),
        cluster=slurm_cluster,
        timeout_s=120,
    )
    resumed = run_on_slurm(
        DEMO_SNAKEFILE,
        workdir,
        extra_args=(*same_config, *ACCOUNT_PARTITION_ARGS),
        cluster=slurm_cluster,
        timeout_s=120,
    )
    return workdir, upstream_mtimes, failed, resumed


@pytest.mark.slurm
def test_rerun_after_a_failed_job_submits_only_what_is_missing(failed_then_resumed) -> None:
    workdir, upstream_mtimes, failed, resumed = failed_then_resumed
    assert failed.returncode != 0, f"the run with a failing job exited 0:\n{_tail(failed.log, 30)}"
    assert [(job.rule, job.state) for job in failed.jobs] == [("summarise", "FAILED")], failed.jobs
    assert "failing on purpose" in failed.jobs[0].log.read_text(), "the job's SLURM log lacks the job's stderr"

    assert resumed.returncode == 0, f"the resumed run failed:\n{_tail(resumed.log, 40)}"
    assert [(job.rule, job.state) for job in resumed.jobs] == [("summarise", "COMPLETED")], resumed.jobs
    assert (workdir / "results/summary.tsv").is_file()
    rerun = [name for name, mtime in upstream_mtimes.items() if (workdir / name).stat().st_mtime != mtime]
    assert not rerun, f"resuming re-created finished outputs: {rerun}"


# ---------------------------------------------------------------- the real workflow on SLURM

REPO = Path(__file__).resolve().parents[1]
PIPELINE_CONFIG = REPO / "tests" / "configs" / "slurm.yaml"
TRAINING_RULES = ("train_teacher", "train_method", "train_grade_fold")


@pytest.fixture(scope="session")
def pipeline_run(slurm_cluster: LocalSlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SlurmRun]:
    """cmdnet's own Snakefile on the smallest configuration, submitted with `--profile profiles/slurm`."""
    workdir = tmp_path_factory.mktemp("slurm-pipeline")
    run = run_on_slurm(REPO / "Snakefile", workdir, configfile=PIPELINE_CONFIG,
                       extra_args=ACCOUNT_PARTITION_ARGS, cluster=slurm_cluster, timeout_s=900)
    if run.returncode != 0:
        pytest.fail(f"the cmdnet workflow failed on SLURM ({run.returncode})\n{_tail(run.log, 80)}\n"
                    f"--- daemons:\n{slurm_cluster.daemon_logs()}")
    return workdir, run


@pytest.mark.slurm
def test_cmdnet_workflow_runs_every_job_through_sbatch(pipeline_run: tuple[Path, SlurmRun]) -> None:
    workdir, run = pipeline_run
    planned = Counter(dict((rule, int(n)) for rule, n in _job_stats(run.log)))
    planned.pop("all", None)  # the target rule runs no job
    submitted = Counter(job.rule for job in run.jobs)
    assert submitted == planned, f"jobs planned by Snakemake {dict(planned)} != jobs seen by SLURM {dict(submitted)}"
    assert all(job.state == "COMPLETED" for job in run.jobs), [(j.rule, j.state) for j in run.jobs]
    for stem in ["table1_mvi", "table2_mvi_ablation", "table1_grade", "table2_grade_fusion"]:
        assert (workdir / "results" / "tables" / f"{stem}.md").is_file(), f"{stem} missing after the SLURM run"


@pytest.mark.slurm
def test_cmdnet_training_jobs_get_gpus_from_slurm(pipeline_run: tuple[Path, SlurmRun]) -> None:
    workdir, run = pipeline_run
    for job in run.jobs:
        expected = "gres:gpu:1" if job.rule in TRAINING_RULES else ""
        assert job.tres_per_job == expected, f"{job.rule}: TresPerJob {job.tres_per_job!r}"
    claims = {}
    for log in (workdir / "results" / "logs").glob("train_*/*.log"):
        text = log.read_text()
        assert "(slurm; CUDA_VISIBLE_DEVICES=" in text, f"{log.name}: the job did not keep SLURM's GPU:\n{text[:300]}"
        claims[log.stem] = text.split("CUDA_VISIBLE_DEVICES=", 1)[1].split(")", 1)[0]
    assert len(claims) == sum(job.rule in TRAINING_RULES for job in run.jobs)
    assert set(claims.values()) <= {"0", "1"}, claims


def _job_stats(log: str) -> list[tuple[str, str]]:
    """The (rule, count) rows of the first 'Job stats' table Snakemake printed."""
    lines = log.split("Job stats:", 1)[1].splitlines()
    rows = []
    for line in lines[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        rows.append((parts[0], parts[1]))
    return rows
