#!/usr/bin/env bash
# Start a throw-away single-node SLURM cluster (munged + slurmctld + slurmd) with two fake GRES GPUs.
#
# Usage (as root):  setup_cluster.sh STATE_DIR
#
# Everything lives under STATE_DIR (configs, munge key and socket, spool, state, logs, pid files);
# nothing is written to /etc and no systemd is needed. On success STATE_DIR/env.sh holds
# `export SLURM_CONF=...`, which every SLURM client (sbatch, squeue, srun) must see.
# `teardown_cluster.sh STATE_DIR` stops the daemons and removes STATE_DIR.
#
# Exit status: 0 = node idle and ready; 2 = cannot run here (not root / no apt-get / packages missing),
# the reason on stderr; anything else = a real failure, with the daemon logs printed.
#
# Environment: CMDNET_SLURM_INSTALL=0 skips the apt-get install (then slurm-wlm and munge must be present);
# CMDNET_SLURMCTLD_PORT / CMDNET_SLURMD_PORT (default 6817 / 6818); CMDNET_SLURM_WAIT_S (default 60);
# CMDNET_SLURM_NODE_CPUS / CMDNET_SLURM_NODE_MEM_MB: the size the node claims (default 8 / 65536).
set -euo pipefail

STATE_DIR=${1:?usage: setup_cluster.sh STATE_DIR}
CTLD_PORT=${CMDNET_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${CMDNET_SLURMD_PORT:-6818}
WAIT_S=${CMDNET_SLURM_WAIT_S:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

cannot_run() { echo "setup_cluster.sh: cannot run here: $*" >&2; exit 2; }

[[ $(id -u) -eq 0 ]] || cannot_run "needs root (to install packages and run slurmd), running as $(id -un)"

have_slurm() { command -v slurmctld && command -v slurmd && command -v munged && command -v sbatch; } >/dev/null 2>&1
if ! have_slurm; then
    [[ ${CMDNET_SLURM_INSTALL:-1} == 1 ]] || cannot_run "slurm-wlm/munge are not installed and CMDNET_SLURM_INSTALL=0"
    command -v apt-get >/dev/null 2>&1 || cannot_run "slurm-wlm/munge are not installed and there is no apt-get"
    echo "setup_cluster.sh: installing slurm-wlm and munge with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >&2; then
        cannot_run "apt-get install slurm-wlm munge failed (no package registry reachable?)"
    fi
    have_slurm || cannot_run "slurm-wlm/munge installed but slurmctld/slurmd/munged/sbatch are not on PATH"
fi

# A machine with its own SLURM config is left alone (see the link made below).
DEFAULT_CONF=/etc/slurm/slurm.conf
if [[ -L $DEFAULT_CONF && ! -e $DEFAULT_CONF && $(readlink "$DEFAULT_CONF") == */etc/slurm.conf ]]; then
    rm -f -- "$DEFAULT_CONF"   # dangling link left by a killed earlier run of this script
fi
if [[ -e $DEFAULT_CONF || -L $DEFAULT_CONF ]]; then
    cannot_run "$DEFAULT_CONF already exists (a real SLURM setup, or another test cluster running); not replacing it"
fi
mkdir -p "$(dirname "$DEFAULT_CONF")"

mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
chmod 700 "$STATE_DIR"
mkdir -p "$STATE_DIR"/{etc,munge,state,spool,log,run,dev}
chmod 700 "$STATE_DIR/munge"

# --- munge: a private key and socket, so a host munged (if any) is left alone -------------------------
dd if=/dev/urandom of="$STATE_DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$STATE_DIR/munge/munge.key"
MUNGE_SOCKET=$STATE_DIR/munge/munge.socket.2
munged --force \
    --socket="$MUNGE_SOCKET" \
    --key-file="$STATE_DIR/munge/munge.key" \
    --pid-file="$STATE_DIR/run/munged.pid" \
    --log-file="$STATE_DIR/log/munged.log" \
    --seed-file="$STATE_DIR/munge/munged.seed"

# --- the node: a virtual size, so the profiles' real per-rule requests (4 CPUs, 16 GB per training job)
# fit side by side; SlurmdParameters=config_overrides makes slurmd accept more than the hardware has.
# Nothing enforces the limits (no cgroups), so a small machine simply shares its cores.
HOST=$(hostname -s)
NODE_CPUS=${CMDNET_SLURM_NODE_CPUS:-8}
NODE_MEM=${CMDNET_SLURM_NODE_MEM_MB:-65536}

# GRES device files must be character devices, or slurmd gives jobs no GPU ids: links to /dev/null.
ln -sf /dev/null "$STATE_DIR/dev/nvidia0"
ln -sf /dev/null "$STATE_DIR/dev/nvidia1"

# templates/*.in hold @NAME@ placeholders (plain sed: no gettext needed on a bare machine)
render() {
    sed -e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@HOST@|$HOST|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        -e "s|@MUNGE_SOCKET@|$MUNGE_SOCKET|g" -e "s|@NODE_CPUS@|$NODE_CPUS|g" \
        -e "s|@NODE_MEM@|$NODE_MEM|g" "$1"
}
for name in slurm.conf gres.conf cgroup.conf; do
    render "$HERE/templates/$name.in" >"$STATE_DIR/etc/$name"
done
if grep -n '@[A-Z_]*@' "$STATE_DIR"/etc/*.conf >&2; then
    echo "setup_cluster.sh: unfilled placeholders in the configs above" >&2
    exit 1
fi
export SLURM_CONF=$STATE_DIR/etc/slurm.conf
echo "export SLURM_CONF=$SLURM_CONF" >"$STATE_DIR/env.sh"

# Inside a job, snakemake's jobstep executor strips every SLURM_* variable (SLURM_CONF included) before it
# calls `srun`, so srun only finds the config at its compiled-in default: link it there, for this run only
# (teardown_cluster.sh removes the link).
ln -s "$SLURM_CONF" "$DEFAULT_CONF"
echo "$DEFAULT_CONF" >"$STATE_DIR/run/linked_default_conf"

show_logs() {
    for f in "$STATE_DIR"/log/*.log; do
        echo "===== $f" >&2
        tail -n 40 "$f" >&2 || true
    done
}

slurmctld -f "$SLURM_CONF" -i || { show_logs; exit 1; }
slurmd -f "$SLURM_CONF" -N "$HOST" || { show_logs; exit 1; }

# --- wait until the node is idle -------------------------------------------------------------------------
deadline=$(( SECONDS + WAIT_S ))
state=""
while (( SECONDS < deadline )); do
    state=$(sinfo --noheader --nodes="$HOST" --format=%T 2>/dev/null || true)
    [[ $state == idle ]] && break
    # a node that came up "down"/"drained" (e.g. after a previous run) is set back to service once
    if [[ $state == down* || $state == drain* ]]; then
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 1
done
if [[ $state != idle ]]; then
    echo "setup_cluster.sh: node $HOST is '${state:-unreachable}' after ${WAIT_S}s, not idle" >&2
    scontrol show node "$HOST" >&2 || true
    show_logs
    exit 1
fi
echo "setup_cluster.sh: node $HOST idle ($(sinfo --noheader --format='%c CPUs, %m MB, %G')), SLURM_CONF=$SLURM_CONF" >&2
