#!/usr/bin/env bash
# User data for the launch template of a spot Auto Scaling group of troupe nodes (see
# docs/spot-fleets.md). cloud-init runs it once, as root, on the instance's first boot: it
# installs troupe, the MNIST files, the job file and the secrets, copies itself to
# /usr/local/bin/troupe-fleet, and starts a systemd unit that runs `troupe-fleet run`.
#
# `run` lists the group's instances and joins the job through their addresses. When no member
# hands a job over, the group's oldest instance starts it; with the S3 store it resumes from the
# newest checkpoint there, so a group that lost every instance goes on where it stopped.
set -euo pipefail

# --- Edit these. ---
GROUP=troupe-spot                                  # the Auto Scaling group's name
DIST=s3://my-bucket/troupe/dist                    # troupe, job.yaml and mnist/*.gz, uploaded by you
CHECKPOINT='s3://my-bucket/troupe/runs/mnist-mlp?region=us-east-1'
PARAMS=/troupe                                     # SSM SecureString parameters, see below
# $PARAMS/cluster-key           the cluster key: head -c 32 /dev/urandom | base64
# $PARAMS/s3-access-key-id      long-lived keys of an IAM user that may read and write the
# $PARAMS/s3-secret-access-key  checkpoint prefix (troupe reads static keys only)

# imds prints an instance metadata item, through IMDSv2 (a session token first).
imds() {
  local token
  token=$(curl -fsS -X PUT http://169.254.169.254/latest/api/token \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
  curl -fsS -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

setup() {
  local region
  region=$(imds placement/region)
  install -d -m 0755 /etc/troupe /opt/troupe/mnist
  aws s3 cp --quiet "$DIST/troupe" /usr/local/bin/troupe
  chmod 0755 /usr/local/bin/troupe
  aws s3 cp --quiet "$DIST/job.yaml" /etc/troupe/job.yaml
  aws s3 cp --quiet --recursive "$DIST/mnist/" /opt/troupe/mnist/
  param() {
    aws ssm get-parameter --region "$region" --with-decryption --name "$PARAMS/$1" \
      --query Parameter.Value --output text
  }
  (
    umask 077
    param cluster-key >/etc/troupe/cluster.key
    # Read by the troupe process only: the aws commands of `run` keep the instance profile.
    printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
      "$(param s3-access-key-id)" "$(param s3-secret-access-key)" >/etc/troupe/s3.env
  )
  install -m 0755 "$0" /usr/local/bin/troupe-fleet
  # Stopping the unit (scale-in, Capacity Rebalancing, shutdown) sends SIGTERM, which drains
  # the node. TimeoutStopSec covers --drain-timeout and --leave-timeout below, plus the final
  # test evaluation and, on the last member, the final checkpoint upload.
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
TimeoutStopSec=90

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now troupe.service
}

# members prints "LAUNCH_TIME INSTANCE_ID PRIVATE_IP" for the group's pending and running
# instances, oldest first. Every instance sees the same order, so they agree on the oldest.
members() {
  aws ec2 describe-instances --region "$1" \
    --filters "Name=tag:aws:autoscaling:groupName,Values=$GROUP" \
    "Name=instance-state-name,Values=pending,running" \
    --query 'Reservations[].Instances[].[LaunchTime,InstanceId,PrivateIpAddress]' \
    --output text | sort
}

run() {
  local me ip region list oldest seeds rc
  me=$(imds instance-id)
  ip=$(imds local-ipv4)
  region=$(imds placement/region)
  while true; do
    list=$(members "$region")
    oldest=$(awk 'NR == 1 { print $2 }' <<<"$list")
    seeds=$(awk -v me="$me" '$2 != me && $3 != "None" { printf "%s%s:7946", sep, $3; sep = "," }' <<<"$list")
    if [ -n "$seeds" ]; then
      # Any member hands the job over. Exit 0: the job completed, or this node drained
      # (SIGTERM, a spot notice). Exit 1: nobody handed a job over within --join-timeout.
      rc=0
      (
        set -a
        . /etc/troupe/s3.env
        exec troupe node --bind "$ip:7946" --join "$seeds" --join-timeout 60s \
          --key-file /etc/troupe/cluster.key --preemption aws --drain-timeout 60s --json
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
        --key-file /etc/troupe/cluster.key --preemption aws --drain-timeout 60s --json
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
