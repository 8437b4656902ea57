#!/usr/bin/env bash
# Sets up this machine for the lab, idempotently, and says what it did:
#  - on Debian/Ubuntu without VirtualBox or libvirt: vagrant, docker.io and debootstrap
#    from the distribution, and the docker daemon started when it is not running;
#  - chromium, headless, for the tests that open the lab's pages as a person would, and
#    libnss3-tools (certutil) to make it trust a lab's CA;
#  - a virtual environment in .venv with the pinned requirements.txt.
# Root is needed for the packages; without it, the command to run is printed instead.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else say "needs root: sudo $*"; return 1; fi; }

has_virtualbox() { command -v VBoxManage >/dev/null 2>&1; }
has_libvirt() { command -v virsh >/dev/null 2>&1 && [ -e /dev/kvm ]; }
is_debian_like() { [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; }

host_packages() {
  local wanted=(vagrant debootstrap openssh-client curl iproute2 chromium libnss3-tools)
  if ! has_virtualbox && ! has_libvirt; then
    wanted+=(docker.io)
  fi
  local missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} = 0 ]; then
    say "host packages: ok (${wanted[*]})"
    return
  fi
  say "host packages: installing ${missing[*]}"
  as_root apt-get update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  say "host packages: installed ${missing[*]}"
}

docker_daemon() {
  command -v docker >/dev/null 2>&1 || return 0
  if docker info >/dev/null 2>&1; then
    say "docker daemon: running"
    return
  fi
  if [ "$(ps -o comm= -p 1)" = systemd ] && as_root systemctl start docker 2>/dev/null; then
    :
  elif [ "$(id -u)" = 0 ]; then
    nohup dockerd >/var/log/dockerd.log 2>&1 &
  else
    say "docker daemon: not running; start it: sudo systemctl start docker (or sudo dockerd &)"
    return 1
  fi
  for _ in $(seq 1 30); do
    docker info >/dev/null 2>&1 && { say "docker daemon: started"; return; }
    sleep 1
  done
  say "docker daemon: did not start; see /var/log/dockerd.log"
  return 1
}

python_env() {
  if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv 2>/dev/null; then
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
      python3 -m venv .venv
    fi
    say "python: created .venv"
  fi
  local stamp=.venv/.requirements.sha256
  local want; want=$(sha256sum requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    say "python: .venv is up to date"
    return
  fi
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" >"$stamp"
  say "python: installed requirements.txt into .venv"
}

if is_debian_like; then
  host_packages
  docker_daemon
else
  say "not Debian/Ubuntu: install Vagrant and VirtualBox (or docker and debootstrap) yourself"
fi
python_env
say "done: activate with '. .venv/bin/activate', then 'invoke doctor'"
