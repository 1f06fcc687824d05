"""Run a Snakemake workflow through `profiles/slurm` on a SLURM cluster and collect what SLURM saw.

Two pieces:

* `LocalSlurmCluster`: a throw-away single-node cluster (munged + slurmctld + slurmd, two fake GRES GPUs)
  started by `setup_cluster.sh` and removed by `teardown_cluster.sh`. Root only; `ClusterUnavailable`
  says why it cannot run on this machine.
* `run_on_slurm(snakefile, workdir, ...)`: `snakemake --profile profiles/slurm` on any workflow, returning
  the exit status, the log and, for every job Snakemake submitted, the SLURM job as `scontrol` reports it.

Pointing it at the real pipeline is a matter of arguments:
`run_on_slurm(REPO / "Snakefile", workdir, configfile=..., targets=(...), cluster=cluster)`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SLURM_PROFILE = REPO / "profiles" / "slurm"
DEFAULT_PROFILE = REPO / "profiles" / "default"
DEMO_SNAKEFILE = HERE / "demo" / "Snakefile"

# Options for the local test cluster only. It has no slurmdbd, so `sacct` fails: poll with `squeue`
# (slurm.conf keeps finished jobs visible for MinJobAge = 3600 s, longer than a whole test run).
# The plugin checks first after this delay and then every +10 s until some job has finished; a demo
# job takes 5-7 s from submission (mostly Snakemake starting inside it), so 10 s catches each DAG level
# at the first check. Successful jobs' SLURM logs are kept for inspection.
LOCAL_CLUSTER_ARGS: tuple[str, ...] = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "10",
    "--slurm-keep-successful-logs",
)

# The line the SLURM executor plugin (2.x) logs for every submission.
_SUBMITTED = re.compile(r"Job (?P<job>\d+) has been submitted with SLURM jobid (?P<slurm>\d+) \(log: (?P<log>[^)]+)\)")
_SETUP_CANNOT_RUN = 2


class ClusterUnavailable(RuntimeError):
    """The local test cluster cannot run on this machine (not root, no apt-get, packages unavailable)."""


class ClusterError(RuntimeError):
    """The local test cluster should have started but did not; the message holds the daemon logs."""


@dataclass(frozen=True)
class SlurmJob:
    """One job Snakemake submitted, as slurmctld reports it after the run.

    `rule` comes from the job's SLURM comment (`rule_<name>` or `rule_<name>_wildcards_<values>`);
    `tres_per_job` is e.g. `"gres:gpu:1"` for a job submitted with `--gpus=1`, `""` for none;
    `tres` the allocation, e.g. `"cpu=4,mem=16000M,node=1,billing=4"`.
    """

    snakemake_jobid: int
    slurm_job_id: str
    rule: str
    state: str
    tres_per_job: str
    tres: str
    account: str
    partition: str
    log: Path


@dataclass(frozen=True)
class SlurmRun:
    """The outcome of one `run_on_slurm` call: exit status, Snakemake's output, and the SLURM jobs."""

    returncode: int
    command: tuple[str, ...]
    log: str
    jobs: tuple[SlurmJob, ...]

    def jobs_of(self, rule: str) -> list[SlurmJob]:
        """The SLURM jobs of one rule, in submission order."""
        return [job for job in self.jobs if job.rule == rule]


class LocalSlurmCluster:
    """A single-node SLURM cluster in a temporary directory, for tests (as root).

    Use as a context manager, or call `start()` / `stop()`; `stop()` is safe after a failed `start()`.
    `env` is `os.environ` plus `SLURM_CONF`, for every SLURM client call.
    """

    def __init__(self, state_dir: Path | None = None, *, timeout_s: float = 600) -> None:
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="cmdnet-slurm."))
        self.timeout_s = timeout_s

    @property
    def slurm_conf(self) -> Path:
        return self.state_dir / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.slurm_conf)}

    def start(self) -> None:
        """Install SLURM if needed (apt-get) and start the daemons; return once the node is idle.

        Raises `ClusterUnavailable` when this machine cannot host the cluster, `ClusterError` when it
        should have but failed (the setup script's output, with the daemon logs, is in the message).
        """
        if os.geteuid() != 0:
            raise ClusterUnavailable(f"needs root to install and run SLURM daemons (running as uid {os.geteuid()})")
        proc = subprocess.run(
            ["bash", str(HERE / "setup_cluster.sh"), str(self.state_dir)],
            capture_output=True,
            text=True,
            timeout=self.timeout_s,
        )
        if proc.returncode == _SETUP_CANNOT_RUN:
            raise ClusterUnavailable(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "setup exit 2")
        if proc.returncode != 0:
            raise ClusterError(f"setup_cluster.sh exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")

    def stop(self) -> None:
        """Cancel leftover jobs, stop the daemons, remove the state directory."""
        subprocess.run(["bash", str(HERE / "teardown_cluster.sh"), str(self.state_dir)], timeout=120, check=False)

    def daemon_logs(self, lines: int = 40) -> str:
        """The last `lines` lines of each daemon log, for failure messages."""
        parts = []
        for log in sorted((self.state_dir / "log").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"===== {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def __enter__(self) -> LocalSlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run_on_slurm(
    snakefile: Path,
    workdir: Path,
    configfile: Path | None = None,
    targets: tuple[str, ...] | list[str] = (),
    extra_args: tuple[str, ...] | list[str] = (),
    *,
    cluster: LocalSlurmCluster | None = None,
    timeout_s: float = 600,
) -> SlurmRun:
    """Run `snakemake --profile profiles/slurm` on `snakefile` in `workdir` and collect the SLURM jobs.

    `profiles/default` is passed as the workflow profile, as Snakemake does on its own when run from the
    repository root, so the two profiles are tested together. With `cluster` (the local test cluster)
    its `SLURM_CONF` and `LOCAL_CLUSTER_ARGS` are added; without it the caller's environment must point
    at a real cluster (account/partition via `extra_args`, see docs/cluster.md). `extra_args` come last
    and so override the profiles key by key. Never raises on a failed workflow: check `returncode`.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    command: list[str] = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(Path(snakefile).resolve()),
        "--directory",
        str(workdir),
        "--profile",
        str(SLURM_PROFILE),
        "--workflow-profile",
        str(DEFAULT_PROFILE),
        "--verbose",
    ]
    if configfile is not None:
        command += ["--configfile", str(Path(configfile).resolve())]
    if cluster is not None:
        command += LOCAL_CLUSTER_ARGS
    command += list(extra_args)
    command += list(targets)

    env = cluster.env if cluster is not None else dict(os.environ)
    # the jobs run `python -m snakemake` from this same environment (sbatch --export=ALL)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
    )
    jobs = tuple(
        _describe_job(int(m["job"]), m["slurm"], Path(m["log"]), env) for m in _SUBMITTED.finditer(proc.stdout)
    )
    return SlurmRun(returncode=proc.returncode, command=tuple(command), log=proc.stdout, jobs=jobs)


def _describe_job(snakemake_jobid: int, slurm_job_id: str, log: Path, env: dict[str, str]) -> SlurmJob:
    """Ask slurmctld about one job (it keeps finished jobs for MinJobAge seconds)."""
    scontrol = shutil.which("scontrol", path=env.get("PATH")) or "scontrol"
    out = subprocess.run(
        [scontrol, "--oneliner", "show", "job", slurm_job_id], env=env, capture_output=True, text=True, timeout=30
    )
    if out.returncode != 0:
        return SlurmJob(snakemake_jobid, slurm_job_id, _rule_from_log_path(log), "UNKNOWN", "", "", "", "", log)
    fields = _scontrol_fields(out.stdout)
    comment = fields.get("Comment", "")
    rule = comment.removeprefix("rule_").split("_wildcards_")[0] if comment.startswith("rule_") else ""
    return SlurmJob(
        snakemake_jobid=snakemake_jobid,
        slurm_job_id=slurm_job_id,
        rule=rule or _rule_from_log_path(log),
        state=fields.get("JobState", "UNKNOWN"),
        tres_per_job=fields.get("TresPerJob", ""),
        tres=fields.get("TRES", ""),
        account=fields.get("Account", ""),
        partition=fields.get("Partition", ""),
        log=log,
    )


def _scontrol_fields(oneliner: str) -> dict[str, str]:
    """`Key=Value Key=Value ...` of `scontrol --oneliner show job` as a dict (values hold no spaces
    except Comment, which the plugin writes without spaces)."""
    return dict(item.split("=", 1) for item in oneliner.split() if "=" in item)


def _rule_from_log_path(log: Path) -> str:
    """The plugin logs to `.snakemake/slurm_logs/rule_<name>/[<wildcards>/]<jobid>.log`."""
    for part in reversed(log.parts):
        if part.startswith("rule_"):
            return part.removeprefix("rule_")
    return ""
