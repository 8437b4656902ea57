"""The lab's SSH endpoints, from one cached `vagrant ssh-config`, each with the host key
recorded when its host was created."""
import dataclasses
import re

from ..core.state import read_known_hosts, state_dir
from ..remote.connection import connect, parse_ssh_config, split_host_blocks


class Inventory:
    """The lab's SSH endpoints. The ssh-config is asked of Vagrant once and cached in the
    state folder until `up`, `halt` or `destroy` invalidates it."""

    def __init__(self, lab, vagrant_factory, states):
        self.lab = lab
        self._vagrant_factory = vagrant_factory
        self._states = states
        self.cache_path = state_dir(lab) / "ssh_config"

    def invalidate(self, hosts=None):
        """Forget the cached endpoints of `hosts` (all of them when None)."""
        if hosts is None or not self.cache_path.exists():
            self.cache_path.unlink(missing_ok=True)
            return
        blocks = split_host_blocks(self.cache_path.read_text())
        self._write("".join(b for name, b in blocks.items() if name not in hosts))

    def update_address(self, host, address):
        """Point the cached endpoint of `host` at `address` (a container recreated on a new
        bridge address); without a cached block, the next connection asks Vagrant."""
        if not self.cache_path.exists():
            return
        blocks = split_host_blocks(self.cache_path.read_text())
        if host in blocks:
            blocks[host] = re.sub(r"(?m)^(\s*HostName\s+)\S+", lambda m: m.group(1) + address, blocks[host])
            self._write("".join(blocks.values()))

    def refresh(self, running=None, only=None):
        """Ask Vagrant for the ssh-config of the running hosts and cache it. `running`
        spares the status call when the caller knows which hosts run; with `only`, just
        those hosts are asked for (about a second each) and merged into the cache."""
        if only and self.cache_path.exists():
            blocks = split_host_blocks(self.cache_path.read_text())
            fresh = split_host_blocks(self._vagrant_factory().ssh_config(list(only)))
            blocks = {name: fresh.get(name, blocks.get(name)) for name in self.lab.host_names
                      if fresh.get(name, blocks.get(name))}
            return self._write("".join(blocks.values()))
        if running is None:
            running = [name for name, (state, _) in self._states().items() if state == "running"]
        running = [h for h in self.lab.host_names if h in running]
        return self._write(self._vagrant_factory().ssh_config(running) if running else "")

    def _write(self, text):
        tmp = self.cache_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.cache_path)
        return text

    def ssh_config_text(self, running=None):
        if self.cache_path.exists():
            return self.cache_path.read_text()
        return self.refresh(running)

    def cached_endpoints(self):
        """The endpoints in the cache, without asking Vagrant ({} when there is no cache)."""
        try:
            return self._with_host_keys(parse_ssh_config(self.cache_path.read_text(), self.lab.host_names))
        except FileNotFoundError:
            return {}

    def endpoints(self, running=None):
        return self._with_host_keys(parse_ssh_config(self.ssh_config_text(running), self.lab.host_names))

    def _with_host_keys(self, endpoints):
        keys = read_known_hosts(self.lab)
        return {name: dataclasses.replace(e, host_key=keys.get(name, "")) for name, e in endpoints.items()}

    def connections(self, hosts):
        """({name: Connection}, [names not running]) for hosts. The hosts' states are asked
        only when the cache lacks a host, to tell a stale cache from a stopped host."""
        endpoints = self.endpoints()
        missing = [h.name for h in hosts if h.name not in endpoints]
        if missing:
            running = [name for name, (state, _) in self._states().items() if state == "running"]
            if set(missing) & set(running):
                endpoints = self._with_host_keys(parse_ssh_config(self.refresh(running), self.lab.host_names))
        down = [h.name for h in hosts if h.name not in endpoints]
        return {h.name: connect(endpoints[h.name]) for h in hosts if h.name in endpoints}, down
