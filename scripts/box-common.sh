# What both boxes share (sourced by build-docker-box.sh and build-libvirt-box.sh): how a
# recipe is hashed, where Vagrant's insecure key is, the apt sources, and the login: a
# `vagrant` user with a locked password, Vagrant's key and password-less sudo, an sshd
# that takes keys only, and one ed25519 host key made per machine at its first boot.

# The box's tag: a hash of its own script and of this file.
recipe_hash() {
  cat "$1" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12
}

vagrant_insecure_key() {
  local candidate
  for candidate in /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub \
                   /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub \
                   /opt/vagrant/embedded/gems/*/gems/vagrant-*/keys/vagrant.pub; do
    [ -f "$candidate" ] && { echo "$candidate"; return 0; }
  done
  say "Vagrant's insecure public key was not found: is vagrant installed?"
  return 1
}

write_apt_sources() {  # ROOT SUITE MIRROR
  cat >"$1/etc/apt/sources.list" <<SOURCES
deb $3 $2 main
deb $3 $2-updates main
deb http://deb.debian.org/debian-security $2-security main
SOURCES
}

configure_login() {  # ROOT VAGRANT_PUB
  local root=$1
  chroot "$root" useradd --create-home --shell /bin/bash vagrant
  # Keys only: the vagrant user has no password (locked), and sudo asks it for none.
  chroot "$root" passwd --lock vagrant >/dev/null
  echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/vagrant"
  chmod 0440 "$root/etc/sudoers.d/vagrant"
  install -d -m 0700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
  install -m 0600 -o 1000 -g 1000 "$2" "$root/home/vagrant/.ssh/authorized_keys"
  cat >"$root/etc/ssh/sshd_config.d/lab.conf" <<SSHD
UseDNS no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
HostKey /etc/ssh/ssh_host_ed25519_key
SSHD
  # Each machine makes its own host key at first boot, ed25519 only: `ssh-keygen -A` also
  # makes an RSA key, which takes minutes on a guest under software emulation.
  rm -f "$root"/etc/ssh/ssh_host_*
  cat >"$root/etc/systemd/system/ssh-hostkeys.service" <<UNIT
[Unit]
Description=Generate this host's SSH host key
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target
UNIT
  chroot "$root" systemctl enable ssh.service ssh-hostkeys.service >/dev/null 2>&1
}
