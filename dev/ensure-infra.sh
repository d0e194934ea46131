#!/usr/bin/env bash
# Make this machine ready to run the stack and its tests: the system packages they need
# (nginx, ffmpeg, docker-compose and promtool for the offline deployment checks), and
# PostgreSQL and RabbitMQ running on loopback. Safe to run any number of times.
set -euo pipefail

missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v ffprobe >/dev/null || missing+=(ffmpeg)
# Offline checks of the deployment files (tests/deploy): compose v1 and promtool.
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]} with apt..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "Starting PostgreSQL..."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }

amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! amqp_up; then
  echo "Starting RabbitMQ..."
  rabbitmq-server -detached
fi
for _ in $(seq 120); do amqp_up && rabbitmqctl -q await_startup >/dev/null 2>&1 && break; sleep 1; done
amqp_up || { echo "RabbitMQ does not answer on 127.0.0.1:5672" >&2; exit 1; }
