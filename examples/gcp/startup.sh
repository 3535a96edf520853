#!/usr/bin/env bash
# Startup script for the instance template of a managed instance group of Spot VMs running
# troupe (see docs/spot-fleets.md). Compute Engine runs it as root at every boot: it installs
# troupe, the MNIST files, the job file and the secrets, copies itself to
# /usr/local/bin/troupe-fleet, and starts a systemd unit that runs `troupe-fleet run`.
#
# `run` lists the fleet's VMs (those labelled troupe_fleet=$FLEET) and joins the job through
# their addresses. When no member hands a job over, the fleet's oldest VM starts it; with the
# S3 store it resumes from the newest checkpoint there, so a fleet that lost every VM goes on
# where it stopped.
set -euo pipefail

# --- Edit these. ---
FLEET=mnist                                        # the troupe_fleet label of the template
DIST=gs://my-bucket/troupe/dist                    # troupe, job.yaml and mnist/*.gz, uploaded by you
CHECKPOINT='s3://my-bucket/troupe/runs/mnist-mlp?region=us-east-1'
# Secret Manager secrets:
#   troupe-cluster-key           the cluster key: head -c 32 /dev/urandom | base64
#   troupe-s3-access-key-id      static keys for the checkpoint store (troupe reads static keys
#   troupe-s3-secret-access-key  only: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)

# metadata prints an item of this VM's metadata.
metadata() {
  curl -fsS -H 'Metadata-Flavor: Google' "http://metadata.google.internal/computeMetadata/v1/instance/$1"
}

setup() {
  install -d -m 0755 /etc/troupe /opt/troupe/mnist
  gcloud storage cp "$DIST/troupe" /usr/local/bin/troupe
  chmod 0755 /usr/local/bin/troupe
  gcloud storage cp "$DIST/job.yaml" /etc/troupe/job.yaml
  gcloud storage cp "$DIST/mnist/*" /opt/troupe/mnist/
  secret() { gcloud secrets versions access latest --secret="$1"; }
  (
    umask 077
    secret troupe-cluster-key >/etc/troupe/cluster.key
    # Read by the troupe process only.
    printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
      "$(secret troupe-s3-access-key-id)" "$(secret troupe-s3-secret-access-key)" >/etc/troupe/s3.env
  )
  install -m 0755 "$0" /usr/local/bin/troupe-fleet
  # Preemption starts the guest's shutdown (ACPI soft off); stopping the unit sends SIGTERM,
  # which drains the node. Spot VMs get 30 s before the hard off: --drain-timeout,
  # --leave-timeout, the final test evaluation and the last member's checkpoint upload must
  # fit in TimeoutStopSec, and TimeoutStopSec in those 30 s. After=network-online.target
  # keeps the network up until the node has left.
  cat >/etc/systemd/system/troupe.service <<'UNIT'
[Unit]
Description=troupe node
Wants=network-online.target
After=network-online.target

[Service]
Environment=TROUPE_MNIST_DIR=/opt/troupe/mnist
ExecStart=/usr/local/bin/troupe-fleet run
Restart=on-failure
RestartSec=10
TimeoutStopSec=25

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now troupe.service
}

# members prints "CREATED NAME IP" for the fleet's running and starting VMs, oldest first.
# Every VM sees the same order, so they agree on the oldest.
members() {
  gcloud compute instances list \
    --filter="labels.troupe_fleet=$FLEET AND (status=RUNNING OR status=STAGING OR status=PROVISIONING)" \
    --format='value(creationTimestamp,name,networkInterfaces[0].networkIP)' | sort
}

run() {
  local me ip list oldest seeds rc
  me=$(metadata name)
  ip=$(metadata network-interfaces/0/ip)
  while true; do
    list=$(members)
    oldest=$(awk 'NR == 1 { print $2 }' <<<"$list")
    seeds=$(awk -v me="$me" '$2 != me && $3 != "" { printf "%s%s:7946", sep, $3; sep = "," }' <<<"$list")
    if [ -n "$seeds" ]; then
      # Any member hands the job over. Exit 0: the job completed, or this node drained
      # (SIGTERM, preemption). Exit 1: nobody handed a job over within --join-timeout.
      rc=0
      (
        set -a
        . /etc/troupe/s3.env
        exec troupe node --bind "$ip:7946" --join "$seeds" --join-timeout 60s \
          --key-file /etc/troupe/cluster.key --preemption gcp --notice-interval 1s \
          --drain-timeout 15s --json
      ) || rc=$?
      if [ "$rc" -eq 0 ]; then
        exit 0
      fi
    fi
    if [ "$oldest" = "$me" ]; then
      set -a
      . /etc/troupe/s3.env
      set +a
      # Resumes from the newest valid checkpoint in the store, if there is one.
      exec troupe node --bind "$ip:7946" --job /etc/troupe/job.yaml --min-nodes 3 \
        --checkpoint "$CHECKPOINT" --checkpoint-every 200 \
        --key-file /etc/troupe/cluster.key --preemption gcp --notice-interval 1s \
        --drain-timeout 15s --json
    fi
    sleep 10
  done
}

case "${1:-setup}" in
run) run ;;
setup) setup ;;
*)
  echo "usage: $0 [setup|run]" >&2
  exit 2
  ;;
esac
