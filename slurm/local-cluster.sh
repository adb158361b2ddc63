#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the tests and for demos.
#
#   sudo bash slurm/local-cluster.sh          # start (idempotent: a running cluster is left alone)
#   sudo bash slurm/local-cluster.sh status   # sinfo, and the daemons' pids
#   sudo bash slurm/local-cluster.sh stop     # stop slurmd, slurmctld and munged (the ones this script started)
#
# Why it looks like this:
# * munged, slurmctld and slurmd are started directly (no systemd: CI runners and
#   containers rarely have it). slurmctld and slurmd run as root; munged as its user.
# * One node with what this machine has: CPUs from nproc, memory from `free -m`
#   (SlurmdParameters=config_overrides, so slurmd does not drain the node when its
#   own probe of the hardware disagrees, as it does in containers).
# * No cgroups (proctrack/linuxproc, task/none) and no accounting database, so it
#   runs in an unprivileged container. Consequence: `sacct` does not work here;
#   use squeue and `scontrol show job` (finished jobs stay visible for MinJobAge).
# * The scheduler is made eager (short intervals) and a requeued job may start again
#   after 10 s (cred_expire; SLURM's default is 120 s), so that tests finish quickly.
# * The config is written only if absent or written by this script: an existing
#   real slurm.conf is never overwritten.
set -euo pipefail

ACTION="${1:-start}"
CONF_DIR="${SLURM_LOCAL_CONF_DIR:-/etc/slurm}"
CONF="$CONF_DIR/slurm.conf"
PARTITION="${SLURM_LOCAL_PARTITION:-debug}"
STATE_DIR=/var/lib/slurm
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
MARKER="# written by scaling slurm/local-cluster.sh"

say() { echo "local-cluster: $*"; }
die() { echo "local-cluster: error: $*" >&2; exit 1; }

alive() {  # alive PIDFILE: the pid in the file is a running process
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE: SIGTERM the recorded pid and wait for it
    local name=$1 file=$2 pid
    if alive "$file"; then
        pid=$(cat "$file")
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        say "stopped $name (pid $pid)"
    fi
    rm -f "$file"
}

if [[ "$ACTION" == stop ]]; then
    stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
    stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
    stop_pidfile munged /run/munge/munged.pid
    exit 0
fi

if [[ "$ACTION" == status ]]; then
    for d in munged:/run/munge/munged.pid slurmctld:$RUN_DIR/slurmctld.pid slurmd:$RUN_DIR/slurmd.pid; do
        if alive "${d#*:}"; then say "${d%%:*} running (pid $(cat "${d#*:}"))"; else say "${d%%:*} not running"; fi
    done
    sinfo 2>/dev/null || true
    exit 0
fi

[[ "$ACTION" == start ]] || die "unknown action '$ACTION' (start, status or stop)"
[[ $EUID -eq 0 ]] || die "run as root: slurmctld and slurmd run as root here (sudo bash $0)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "slurmctld, slurmd and munged are missing and there is no apt-get to install them"
    say "installing slurm-wlm and munge"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# -- munge: the authentication every SLURM RPC carries --------------------------------------
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
chown munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! alive /run/munge/munged.pid; then
    runuser -u munge -- munged
    say "started munged (pid $(cat /run/munge/munged.pid))"
fi
for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"

# -- slurm.conf: one node with this machine's CPUs and memory --------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(free -m | awk '/^Mem:/ {print $2}')
mkdir -p "$CONF_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$LOG_DIR" "$RUN_DIR"
if [[ -e "$CONF" ]] && ! grep -qF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; refusing to overwrite a real cluster's config"
fi
NEW_CONF=$(cat <<EOF
$MARKER; re-run the script to regenerate.
ClusterName=local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1,defer_batch
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$((MEM_MB / CPUS))
MailProg=/bin/true
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
JobRequeue=1
KillWait=30
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
Waittime=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
)
CHANGED=0
if [[ ! -e "$CONF" ]] || [[ "$(cat "$CONF")" != "$NEW_CONF" ]]; then
    printf '%s\n' "$NEW_CONF" > "$CONF"
    CHANGED=1
    say "wrote $CONF ($HOST: $CPUS CPUs, $MEM_MB MB, partition $PARTITION)"
fi

# -- daemons ----------------------------------------------------------------------------------
if [[ $CHANGED == 1 ]]; then  # a changed config needs restarted daemons
    stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
    stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
fi
if ! alive "$RUN_DIR/slurmctld.pid"; then
    slurmctld -f "$CONF"
    say "started slurmctld"
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping | grep -q UP || die "slurmctld does not answer (see $LOG_DIR/slurmctld.log)"
if ! alive "$RUN_DIR/slurmd.pid"; then
    slurmd -f "$CONF"
    say "started slurmd"
fi

# -- wait until the node takes jobs -----------------------------------------------------------
state=""
for _ in $(seq 150); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1)
    case "$state" in
        idle*|mixed*|allocated*|completing*) break ;;
        down*|drain*|fail*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.2
done
case "$state" in
    idle*|mixed*|allocated*|completing*) ;;
    *) die "node $HOST is '$state', not ready (see $LOG_DIR/slurmd.log and $LOG_DIR/slurmctld.log)" ;;
esac
say "ready: partition $PARTITION, node $HOST ($CPUS CPUs, $MEM_MB MB) is $state"
sinfo
