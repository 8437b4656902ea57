#!/usr/bin/env bash
# Sets up this machine for the lab, idempotently, and says what it did:
#  - on Debian/Ubuntu: vagrant, docker.io and debootstrap from the distribution, and the
#    docker daemon started when it is not running;
#  - beside docker, where QEMU can run a guest (x86_64, VirtualBox absent): libvirt, QEMU
#    and vagrant-libvirt, libvirtd and virtlogd started (by hand where PID 1 is not
#    systemd), the storage pool `default`, and QEMU's TCG wrapper (scripts/qemu-tcg).
#    Whether KVM or only software emulation (TCG) boots a guest is found by booting the
#    lab's box: scripts/probe-accelerator.sh, run by `invoke up --provider libvirt`;
#  - chromium, headless, for the tests that open the lab's pages as a person would, and
#    libnss3-tools (certutil) to make it trust a lab's CA;
#  - a virtual environment in .venv with the pinned requirements.txt.
# Root is needed for the packages; without it, the command to run is printed instead.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else say "needs root: sudo $*"; return 1; fi; }

has_virtualbox() { command -v VBoxManage >/dev/null 2>&1; }
wants_libvirt() { ! has_virtualbox && [ "$(uname -m)" = x86_64 ] && [ "${HALAB_NO_LIBVIRT:-}" != 1 ]; }
is_debian_like() { [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; }

host_packages() {
  local wanted=(vagrant debootstrap openssh-client curl iproute2 chromium libnss3-tools)
  has_virtualbox || wanted+=(docker.io)
  if wants_libvirt; then
    wanted+=(libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils vagrant-libvirt
             dnsmasq-base fdisk e2fsprogs)
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

# Every systemd container takes several inotify instances of root's; the kernel's default
# of 128 stops the 26th or so (the end-to-end tests run up to four labs): containers then
# exit with code 255 and say nothing. 1024 is what systemd hosts commonly set.
inotify_instances() {
  local now; now=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 0)
  if [ "$now" -ge 1024 ]; then
    say "inotify instances: $now (enough for several labs)"
    return
  fi
  as_root sysctl -q -w fs.inotify.max_user_instances=1024
  as_root sh -c 'echo "fs.inotify.max_user_instances = 1024" > /etc/sysctl.d/60-halab.conf'
  say "inotify instances: raised from $now to 1024 (/etc/sysctl.d/60-halab.conf)"
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

libvirt_daemons() {
  wants_libvirt && command -v virsh >/dev/null 2>&1 || return 0
  if virsh -c qemu:///system version >/dev/null 2>&1; then
    say "libvirt: libvirtd answers"
  elif [ "$(ps -o comm= -p 1)" = systemd ] && as_root systemctl start libvirtd virtlogd 2>/dev/null; then
    say "libvirt: started libvirtd (systemd)"
  elif [ "$(id -u)" = 0 ]; then
    # Without systemd the packages' scripts may not have made these users, and libvirtd
    # refuses to start without them.
    getent passwd libvirt-qemu >/dev/null || useradd --system --no-create-home --home-dir /var/lib/libvirt \
      --shell /usr/sbin/nologin --gid kvm libvirt-qemu
    getent passwd libvirt-dnsmasq >/dev/null || useradd --system --no-create-home --user-group \
      --home-dir /var/lib/libvirt/dnsmasq --shell /usr/sbin/nologin libvirt-dnsmasq
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
    for _ in $(seq 1 30); do
      virsh -c qemu:///system version >/dev/null 2>&1 && break
      sleep 1
    done
    virsh -c qemu:///system version >/dev/null 2>&1 || { say "libvirt: libvirtd did not start"; return 1; }
    say "libvirt: started virtlogd and libvirtd"
  else
    say "libvirt: libvirtd is not running; start it: sudo libvirtd -d (and virtlogd -d)"
    return 1
  fi
  [ "$(id -u)" = 0 ] || return 0
  # Debian's `default` network is not the lab's; it is not started for it.
  virsh -q -c qemu:///system net-autostart default --disable >/dev/null 2>&1 || true
  if ! virsh -q -c qemu:///system pool-info default >/dev/null 2>&1; then
    mkdir -p /var/lib/libvirt/images
    virsh -q -c qemu:///system pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
    virsh -q -c qemu:///system pool-autostart default >/dev/null
    say "libvirt: defined the storage pool default"
  fi
  virsh -q -c qemu:///system pool-start default >/dev/null 2>&1 || true
  install -D -m 0755 scripts/qemu-tcg /usr/local/libexec/halab/qemu-tcg
  say "libvirt: ready (scripts/probe-accelerator.sh tells KVM from TCG once the box is built)"
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
  inotify_instances
  docker_daemon
  libvirt_daemons
else
  say "not Debian/Ubuntu: install Vagrant and VirtualBox (or docker and debootstrap) yourself"
fi
python_env
say "done: activate with '. .venv/bin/activate', then 'invoke doctor'"
