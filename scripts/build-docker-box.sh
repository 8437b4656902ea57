#!/usr/bin/env bash
# Builds the docker provider's box: a Debian bookworm root made by debootstrap, imported
# with `docker import`, with systemd as PID 1, sshd, sudo, python3 and a `vagrant` user
# that accepts Vagrant's insecure key (Vagrant swaps in a per-machine key at first boot).
# Logins are by key only (the password is locked); each container makes its own SSH host
# keys at first boot, so no two containers share them.
#
# The image is tagged with a hash of this recipe, so it is rebuilt only when the recipe
# changes; a run that finds the tag present returns at once.
#
#   scripts/build-docker-box.sh            build if needed, print the image name
#   scripts/build-docker-box.sh --name     print the image name only
#   scripts/build-docker-box.sh --force    rebuild even when the tag exists
set -euo pipefail

REPO=halab-box
SUITE=bookworm
MIRROR=${HALAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,sudo,python3,iproute2,iputils-ping,netbase,ca-certificates,procps,less,curl,apt-utils
PRESET_PACKAGES="nftables prometheus-node-exporter prometheus-nginx-exporter prometheus-mysqld-exporter python3-prometheus-client"
PRESET_UNITS="nftables.service prometheus-node-exporter.service prometheus-nginx-exporter.service prometheus-mysqld-exporter.service"

here=$(cd "$(dirname "$0")" && pwd)
say() { printf '[box] %s\n' "$*" >&2; }
. "$here/box-common.sh"
recipe_hash=$(recipe_hash "$here/build-docker-box.sh")
image="$REPO:$recipe_hash"

case "${1:-}" in
  --name) echo "$image"; exit 0 ;;
  --force) force=1 ;;
  "") force=0 ;;
  *) echo "usage: $0 [--name|--force]" >&2; exit 2 ;;
esac

if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
  say "$image is built (recipe unchanged)"
  echo "$image"
  exit 0
fi

[ "$(id -u)" = 0 ] || { say "debootstrap needs root: run 'sudo $0'"; exit 1; }
command -v debootstrap >/dev/null || { say "debootstrap is missing: apt-get install debootstrap"; exit 1; }

vagrant_pub=$(vagrant_insecure_key)

work=$(mktemp -d /var/tmp/halab-box.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"

say "debootstrap $SUITE from $MIRROR (a minute or two)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; say "debootstrap failed"; exit 1; }

say "configuring systemd, sshd and the vagrant user"
write_apt_sources "$root" "$SUITE" "$MIRROR"
# Containers need no hardware, console or time-sync units; masking them keeps boot quick.
for unit in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
            systemd-modules-load.service systemd-remount-fs.service getty@tty1.service \
            console-getty.service systemd-timesyncd.service sys-kernel-config.mount \
            sys-kernel-debug.mount sys-kernel-tracing.mount systemd-firstboot.service \
            apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
configure_login "$root" "$vagrant_pub"
echo 'halab' >"$root/etc/hostname"
: >"$root/etc/machine-id"
# Fresh package lists in the image: provisioning skips `apt-get update` while they are
# less than a day old, which saves every host a round of downloads on its first run.
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" apt-get update -q >"$work/apt-update.log" 2>&1 \
  || { tail -5 "$work/apt-update.log" >&2; say "apt-get update in the image failed"; exit 1; }
# Every host's monitoring client and firewall, installed and switched off: a cold provision
# then only configures and starts them (installing them cost every host about 2 s of dpkg,
# a quarter of its package time). Debian's packages enable and start their services at
# install: policy-rc.d holds the starts, and the units are disabled, so nothing listens
# on every address before provision has said where to listen.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  $PRESET_PACKAGES >"$work/apt-install.log" 2>&1 \
  || { tail -5 "$work/apt-install.log" >&2; say "installing the exporters in the image failed"; exit 1; }
rm -f "$root/usr/sbin/policy-rc.d"
chroot "$root" systemctl disable $PRESET_UNITS >/dev/null 2>&1 || true
rm -f "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb

say "importing $image"
tar -C "$root" -c . | docker import \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=docker' \
  - "$image" >/dev/null
docker tag "$image" "$REPO:latest"
# Older builds of the box go, unless a container still uses them.
for old in $(docker images "$REPO" --format '{{.Tag}}'); do
  [ "$old" = "$recipe_hash" ] || [ "$old" = latest ] || docker rmi "$REPO:$old" >/dev/null 2>&1 || true
done
say "built $image"
echo "$image"
