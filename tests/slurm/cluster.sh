# A one-node SLURM cluster on this machine, for the cluster test
# (tests/slurm/run.sh): Debian's slurmctld, slurmd and munge, as root,
# with every file (configuration, state, logs, the munge socket) in one
# folder of its own, and every daemon stopped by its pid.
#   source tests/slurm/cluster.sh; cluster_up DIR; ...; cluster_down

cluster_install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

# cluster_up DIR: writes the configuration into DIR, starts munged,
# slurmctld and slurmd, and waits until the node takes jobs.
cluster_up() {
  CLUSTER_DIR=$1
  mkdir -p "$CLUSTER_DIR"/{spool,state,log}
  local host cpus memory
  host=$(hostname)
  cpus=$(nproc)
  memory=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chmod 400 /etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  cat >"$CLUSTER_DIR/slurm.conf" <<CONF
ClusterName=comod-test
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$CLUSTER_DIR/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPidFile=$CLUSTER_DIR/slurmctld.pid
SlurmdPidFile=$CLUSTER_DIR/slurmd.pid
SlurmdSpoolDir=$CLUSTER_DIR/spool
StateSaveLocation=$CLUSTER_DIR/state
SlurmctldLogFile=$CLUSTER_DIR/log/slurmctld.log
SlurmdLogFile=$CLUSTER_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerParameters=defer_batch
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$CLUSTER_DIR/slurm.conf
  munged --force --socket="$CLUSTER_DIR/munge.socket" \
    --pid-file="$CLUSTER_DIR/munged.pid" --log-file="$CLUSTER_DIR/log/munged.log" \
    --seed-file="$CLUSTER_DIR/munge.seed"
  slurmctld -f "$SLURM_CONF" -i
  slurmd -f "$SLURM_CONF"
  local waited=0
  until sinfo -h -o '%t' 2>/dev/null | grep -qx 'idle'; do
    sleep 1
    waited=$((waited + 1))
    if [ "$waited" -ge 60 ]; then
      echo "the test cluster did not come up in 60 s:" >&2
      sinfo >&2 || true
      tail -n 20 "$CLUSTER_DIR"/log/*.log >&2 || true
      return 1
    fi
  done
}

# cluster_down: stops every daemon cluster_up started, by its pid.
cluster_down() {
  [ -n "${CLUSTER_DIR:-}" ] || return 0
  local name pid
  for name in slurmd slurmctld munged; do
    if [ -s "$CLUSTER_DIR/$name.pid" ]; then
      pid=$(cat "$CLUSTER_DIR/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
}

# wait_for_jobs: until no job of the cluster is pending or running.
wait_for_jobs() {
  local waited=0
  while [ -n "$(squeue -h 2>/dev/null)" ]; do
    sleep 1
    waited=$((waited + 1))
    if [ "$waited" -ge "${1:-900}" ]; then
      echo "jobs still queued after $waited s:" >&2
      squeue >&2
      return 1
    fi
  done
}
