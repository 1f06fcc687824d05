#!/usr/bin/env bash
# Stop the daemons started by setup_cluster.sh STATE_DIR (by their pid files) and remove STATE_DIR.
# Safe to call after a partial setup, and twice.
#
# Usage:  teardown_cluster.sh STATE_DIR
set -uo pipefail

STATE_DIR=${1:?usage: teardown_cluster.sh STATE_DIR}
[[ -d $STATE_DIR ]] || exit 0

stop() {  # stop the process in pid file $1: TERM, then KILL after ~10 s
    local pidfile=$1 pid
    [[ -s $pidfile ]] || return 0
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
}

if [[ -f $STATE_DIR/etc/slurm.conf ]]; then
    # jobs still queued or running would keep slurmstepd processes alive
    SLURM_CONF=$STATE_DIR/etc/slurm.conf scancel --full --quiet --nodelist="$(hostname -s)" 2>/dev/null || true
fi
stop "$STATE_DIR/run/slurmd.pid"
stop "$STATE_DIR/run/slurmctld.pid"
stop "$STATE_DIR/run/munged.pid"
# the /etc/slurm/slurm.conf link made by setup_cluster.sh, only if it still points into STATE_DIR
if [[ -s $STATE_DIR/run/linked_default_conf ]]; then
    link=$(<"$STATE_DIR/run/linked_default_conf")
    if [[ -L $link && $(readlink "$link") == "$STATE_DIR"/* ]]; then
        rm -f -- "$link"
    fi
fi
rm -rf -- "$STATE_DIR"
