#!/usr/bin/env bash
# Builds the libvirt provider's box offline, without loop devices or a VM: a Debian
# bookworm root made by debootstrap (kernel, GRUB, systemd, sshd, sudo, python3 and a
# `vagrant` user with Vagrant's insecure key), written into an ext4 image by `mke2fs -d`,
# placed in a partitioned raw disk whose first sectors get GRUB's boot.img and core.img by
# `dd`, converted to qcow2 and packaged with metadata.json as a Vagrant box.
#
# The guest: serial console on ttyS0 (GRUB and the kernel; systemd starts a getty there),
# interfaces eth0 (vagrant-libvirt's management network, DHCP) and eth1 (the lab's private
# network, which Vagrant configures through ifupdown). The lab's packages are installed but
# neither enabled nor configured, so that provisioning under software emulation does not
# spend minutes in dpkg; nftables and the Prometheus exporters likewise. The serial console
# logs root in (see box-common.sh for the login over SSH).
#
# The box is named after a hash of this recipe, so it is rebuilt only when the recipe
# changes; a run that finds that box added to Vagrant returns at once.
#
#   scripts/build-libvirt-box.sh            build and add if needed, print the box name
#   scripts/build-libvirt-box.sh --name     print the box name only
#   scripts/build-libvirt-box.sh --force    rebuild even when the box exists
set -euo pipefail

SUITE=bookworm
MIRROR=${HALAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DISK_GIB=8
BASE=systemd,systemd-sysv,dbus,openssh-server,sudo,python3,iproute2,iputils-ping,netbase,ca-certificates,procps,less,curl,apt-utils,ifupdown,isc-dhcp-client,initramfs-tools,kmod,udev
# The lab's roles' packages (fabfile/roles/*.py), and what the firewall and monitoring need.
LAB_PACKAGES="haproxy keepalived nginx gunicorn python3-pymysql default-mysql-client default-mysql-server nftables prometheus-node-exporter prometheus-nginx-exporter prometheus-mysqld-exporter python3-prometheus-client"
LAB_SERVICES="haproxy keepalived nginx mariadb nftables prometheus-node-exporter prometheus-nginx-exporter prometheus-mysqld-exporter"

here=$(cd "$(dirname "$0")" && pwd)
say() { printf '[box] %s\n' "$*" >&2; }
. "$here/box-common.sh"
box="halab-libvirt-$(recipe_hash "$here/build-libvirt-box.sh")"
boxes_dir="${VAGRANT_HOME:-$HOME/.vagrant.d}/boxes"

case "${1:-}" in
  --name) echo "$box"; exit 0 ;;
  --force) force=1 ;;
  "") force=0 ;;
  *) echo "usage: $0 [--name|--force]" >&2; exit 2 ;;
esac

if [ "$force" = 0 ] && [ -d "$boxes_dir/$box" ]; then
  say "$box is built (recipe unchanged)"
  echo "$box"
  exit 0
fi

[ "$(id -u)" = 0 ] || { say "debootstrap needs root: run 'sudo $0'"; exit 1; }
for tool in debootstrap mke2fs sfdisk qemu-img vagrant; do
  command -v "$tool" >/dev/null || { say "$tool is missing: run scripts/setup.sh"; exit 1; }
done

vagrant_pub=$(vagrant_insecure_key)

work=$(mktemp -d /var/tmp/halab-libvirt-box.XXXXXX)
root="$work/root"
cleanup() {
  for fs in proc sys dev/pts dev; do mountpoint -q "$root/$fs" 2>/dev/null && umount -l "$root/$fs"; done
  rm -rf "$work"
}
trap cleanup EXIT

started=$SECONDS
say "debootstrap $SUITE from $MIRROR (a minute or two)"
debootstrap --variant=minbase --include="$BASE" "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; say "debootstrap failed"; exit 1; }

write_apt_sources "$root" "$SUITE" "$MIRROR"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Nothing starts inside the chroot; the kernel's and GRUB's scripts find no disk to probe.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
echo 'do_symlinks = yes' >"$root/etc/kernel-img.conf"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"

say "installing the kernel, GRUB and the lab's packages (a few minutes)"
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
echo 'grub-pc grub-pc/install_devices_empty boolean true' | in_root debconf-set-selections
in_root apt-get update -q >"$work/apt.log" 2>&1 \
  && in_root apt-get install -y -q --no-install-recommends linux-image-amd64 grub-pc $LAB_PACKAGES \
    >>"$work/apt.log" 2>&1 \
  || { tail -20 "$work/apt.log" >&2; say "installing packages in the box failed"; exit 1; }
for service in $LAB_SERVICES; do
  in_root systemctl disable "$service.service" >/dev/null 2>&1 || true
done
# A VM needs no periodic apt runs, and they would compete with the lab for a slow CPU.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer \
            systemd-timesyncd.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
rm -f "$root/usr/sbin/policy-rc.d"

say "configuring the console, network, sshd and the vagrant user"
root_uuid=$(cat /proc/sys/kernel/random/uuid)
kernel_args="console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0"
cat >"$root/etc/default/grub" <<GRUB
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="$kernel_args"
# A graphics terminal hangs the boot once the guest's own update-grub has run.
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB
cat >"$root/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=1
menuentry "Debian $SUITE" {
  search --no-floppy --fs-uuid --set=root $root_uuid
  linux /vmlinuz root=UUID=$root_uuid ro $kernel_args
  initrd /initrd.img
}
CFG
echo "UUID=$root_uuid / ext4 errors=remount-ro 0 1" >"$root/etc/fstab"
cat >"$root/etc/network/interfaces" <<NET
# eth0: vagrant-libvirt's management network. Vagrant appends eth1, the lab's network.
auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp
NET
configure_login "$root" "$vagrant_pub"
# The serial console opens a root shell without a password: the way in when SSH or the
# network is broken. Only who may attach to it (virsh, as root on the host) reaches it.
install -d "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
cat >"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<GETTY
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %I \$TERM
GETTY
echo 'halab' >"$root/etc/hostname"
: >"$root/etc/machine-id"
rm -f "$root"/var/lib/dbus/machine-id

say "making GRUB's core image"
in_root grub-mkimage -O i386-pc -o /tmp/core.img -p "(hd0,msdos1)/boot/grub" \
  biosdisk part_msdos ext2 search search_fs_uuid normal linux configfile serial terminal echo gzio test
cp "$root/tmp/core.img" "$work/core.img"
cp "$root/usr/lib/grub/i386-pc/boot.img" "$work/boot.img"
install -d "$root/boot/grub/i386-pc"
cp "$root"/usr/lib/grub/i386-pc/*.mod "$root"/usr/lib/grub/i386-pc/*.lst "$root/boot/grub/i386-pc/"
rm -f "$root/tmp/core.img" "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin
for fs in dev/pts dev sys proc; do umount -l "$root/$fs"; done

say "writing the disk: ext4 from the root, a partition table, GRUB in the first sectors"
part_start=2048   # sectors: GRUB's core.img lives in the 1 MiB before the partition
disk_sectors=$((DISK_GIB * 1024 * 1024 * 2))
part_sectors=$((disk_sectors - part_start))
mke2fs -q -t ext4 -U "$root_uuid" -L root -d "$root" "$work/root.ext4" "$((part_sectors / 2))k"
truncate -s "${DISK_GIB}G" "$work/disk.raw"
echo "start=$part_start, size=$part_sectors, type=83, bootable" | sfdisk -q "$work/disk.raw"
dd if="$work/root.ext4" of="$work/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/boot.img" of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$work/disk.raw" bs=512 seek=1 conv=notrunc status=none
rm -f "$work/root.ext4"
qemu-img convert -O qcow2 "$work/disk.raw" "$work/box.img"
rm -f "$work/disk.raw"

say "packaging and adding the box $box"
cat >"$work/metadata.json" <<META
{"provider": "libvirt", "format": "qcow2", "virtual_size": $DISK_GIB}
META
cat >"$work/Vagrantfile" <<VF
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
VF
tar -C "$work" -cf "$work/$box.box" metadata.json Vagrantfile box.img
rm -f "$work/box.img"
vagrant box add --force --name "$box" "$work/$box.box" >"$work/box-add.log" 2>&1 \
  || { tail -5 "$work/box-add.log" >&2; say "vagrant box add failed"; exit 1; }
# Older builds of the box go (Vagrant refuses while a machine still uses one).
for old in $(ls "$boxes_dir" 2>/dev/null | grep '^halab-libvirt-' || true); do
  [ "$old" = "$box" ] || vagrant box remove --force --all "$old" >/dev/null 2>&1 || true
done
say "built $box in $((SECONDS - started))s"
echo "$box"
