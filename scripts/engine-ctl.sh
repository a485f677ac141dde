# Shared by the control scripts that scripts/with-redis.sh and scripts/with-s3.sh write (it is
# pasted into them; they define `dir`, `port` and `start`). `pid` prints the server's PID,
# `stop` kills it with SIGKILL (as in a crash) and waits until it is gone, `start` starts it on
# the same port and data and waits until the port answers, `restart` does both.
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing answers on port $1" >&2
  return 1
}
gone() {
  # Gone, or a zombie nobody has reaped yet (it holds no socket any more).
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [ "$state" = Z ]
}
stop() {
  local pid
  pid=$(cat "$dir/pid" 2>/dev/null) || return 0
  kill -CONT "$pid" 2>/dev/null || true
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 200); do
    gone "$pid" && { rm -f "$dir/pid"; return 0; }
    sleep 0.05
  done
  echo "process $pid outlived SIGKILL" >&2
  return 1
}
main() {
  case "${1:-}" in
    pid) cat "$dir/pid" ;;
    stop) stop ;;
    start) start ;;
    restart) stop; start ;;
    *) echo "usage: $0 pid|stop|start|restart" >&2; exit 2 ;;
  esac
}
