#!/usr/bin/env bash
# Which accelerator runs a guest on this machine: boots the lab's libvirt box for a short
# while under KVM, then (when KVM does not reach a login prompt) under TCG, and prints
# `kvm`, `tcg` or `none`. Trying is the only reliable test: /dev/kvm may open while a
# 64-bit kernel still hangs right after the boot loader. The answer is kept per QEMU
# version and box in /var/cache/halab/, so only the first run waits.
#
#   scripts/probe-accelerator.sh           the cached answer, probing when there is none
#   scripts/probe-accelerator.sh --cached  the cached answer only (empty when none)
#   scripts/probe-accelerator.sh --force   probe again
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KVM_WAIT_S=${HALAB_PROBE_KVM_S:-60}    # KVM reaches a login prompt in seconds
TCG_WAIT_S=${HALAB_PROBE_TCG_S:-150}   # TCG in 25-40 s alone, slower beside other guests
say() { printf '[probe] %s\n' "$*" >&2; }

box=$("$here/build-libvirt-box.sh" --name)
image="${VAGRANT_HOME:-$HOME/.vagrant.d}/boxes/$box/0/libvirt/box.img"
qemu=$(command -v qemu-system-x86_64 || true)
cache_dir=/var/cache/halab
qemu_version=$([ -n "$qemu" ] && "$qemu" --version | head -1 | tr -cd '0-9.' || echo none)
cache="$cache_dir/accelerator-$box-qemu$qemu_version"

case "${1:-}" in
  --cached) cat "$cache" 2>/dev/null || true; exit 0 ;;
  --force) rm -f "$cache" ;;
  "") ;;
  *) echo "usage: $0 [--cached|--force]" >&2; exit 2 ;;
esac
if [ -s "$cache" ]; then
  [ -s "$cache_dir/accelerator-$box" ] || cp "$cache" "$cache_dir/accelerator-$box"
  cat "$cache"; exit 0
fi
[ -n "$qemu" ] || { say "qemu-system-x86_64 is not installed"; echo none; exit 0; }
[ -f "$image" ] || { say "the libvirt box is not built: run scripts/build-libvirt-box.sh"; echo none; exit 0; }

work=$(mktemp -d /var/tmp/halab-probe.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

boots() {  # boots ACCEL WAIT_S: the box reaches a login prompt on its serial console
  local accel=$1 wait_s=$2 serial="$work/serial-$1.log" started=$SECONDS
  : >"$serial"
  "$qemu" -accel "$accel" -m 512 -smp 1 -snapshot -display none -no-reboot \
    -drive "file=$image,if=virtio,format=qcow2" -nic none -serial "file:$serial" \
    >"$work/qemu-$accel.log" 2>&1 &
  pid=$!
  while [ $((SECONDS - started)) -lt "$wait_s" ] && kill -0 "$pid" 2>/dev/null; do
    if grep -q 'login:' "$serial"; then
      kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=
      say "$accel: a login prompt after $((SECONDS - started))s"
      return 0
    fi
    sleep 1
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=
  say "$accel: no login prompt within ${wait_s}s ($(tr -d '\r' <"$serial" | grep -v '^\s*$' | tail -1 | cut -c1-80))"
  return 1
}

answer=none
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && boots kvm "$KVM_WAIT_S"; then
  answer=kvm
elif boots tcg "$TCG_WAIT_S"; then
  answer=tcg
fi
mkdir -p "$cache_dir"
echo "$answer" >"$cache.tmp" && mv "$cache.tmp" "$cache"
# The answer for this box whatever QEMU's version, for the Vagrantfile (which reads a file).
cp "$cache" "$cache_dir/accelerator-$box.tmp" && mv "$cache_dir/accelerator-$box.tmp" "$cache_dir/accelerator-$box"
echo "$answer"
