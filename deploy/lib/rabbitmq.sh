# Shared by .ci/run and deploy/quickstart.sh: make sure a RabbitMQ answers on
# 127.0.0.1:5672, installing it from the OS packages (Debian/Ubuntu) only if needed.

rabbitmq_answers() {
  (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_rabbitmq() {
  if [ -n "${AMQP_URL:-}" ]; then
    echo "using the broker at AMQP_URL"
    return 0
  fi
  if rabbitmq_answers; then
    echo "RabbitMQ answers on 127.0.0.1:5672"
    return 0
  fi
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "No RabbitMQ on 127.0.0.1:5672 and no apt-get to install one." >&2
      echo "Install RabbitMQ 3.10+ (or run: docker run -d -p 5672:5672 rabbitmq:3), or set AMQP_URL." >&2
      return 1
    fi
    echo "installing rabbitmq-server from the OS packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  echo "starting RabbitMQ"
  as_root rabbitmq-server -detached || true
  for _ in $(seq 1 90); do
    if rabbitmq_answers; then
      # The port opens before the node is fully booted; wait for it.
      as_root rabbitmqctl await_startup >/dev/null 2>&1 || true
      echo "RabbitMQ is up"
      return 0
    fi
    sleep 1
  done
  echo "RabbitMQ did not start within 90 s; see /var/log/rabbitmq/" >&2
  return 1
}
