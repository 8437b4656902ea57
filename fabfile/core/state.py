"""The lab's git-ignored state folder (.lab/<lab>/): SSH config cache, secrets, reports.
Secrets are generated once per lab, written atomically with mode 0600, never printed."""
import os
import secrets
import tempfile

from .config import PROJECT_DIR

STATE_ROOT = PROJECT_DIR / ".lab"


def state_dir(lab):
    path = STATE_ROOT / lab.name
    path.mkdir(parents=True, exist_ok=True)
    return path


def vagrant_dotfile_dir(lab):
    """Vagrant's data folder for this lab (VAGRANT_DOTFILE_PATH): one per lab, so that
    labs side by side never share machine ids."""
    return state_dir(lab) / "vagrant"


def machines_dir(lab):
    return vagrant_dotfile_dir(lab) / "machines"


def secrets_dir(lab):
    folder = state_dir(lab) / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def write_private(path, data):
    """Write `data` (bytes) to `path` with mode 0600: a temporary file in the same folder,
    renamed over the target, so an interrupted run never leaves a half-written secret."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp creates it with mode 0600
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def secret(lab, name, nbytes=24):
    """A per-lab secret, generated once and kept with mode 0600; never printed."""
    path = secrets_dir(lab) / name
    value = path.read_text().strip() if path.exists() else ""
    if not value:
        value = secrets.token_urlsafe(nbytes)
        write_private(path, value.encode())
    return value


def lab_ssh_key(lab):
    """The lab's own SSH key pair (private in OpenSSH format, public line), made once and
    kept with mode 0600: the hosts use it to reach each other by name."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    folder = secrets_dir(lab)
    private_path, public_path = folder / "lab_ssh_key", folder / "lab_ssh_key.pub"
    if not (private_path.exists() and public_path.exists() and public_path.read_text().strip()):
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH)
        write_private(private_path, private)
        write_private(public_path, public + f" {lab.name}-lab\n".encode())
    return private_path.read_text(), public_path.read_text().strip()


def known_hosts_path(lab):
    """The lab's own known-hosts file: each host's SSH host key, recorded when the host was
    created, in OpenSSH's format under the host's lab name (`ssh -o HostKeyAlias=lb1`)."""
    return state_dir(lab) / "known_hosts"


def parse_known_hosts(text):
    """{host: "keytype base64"} of known-hosts text; comments and odd lines are skipped."""
    keys = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("#"):
            keys[fields[0]] = f"{fields[1]} {fields[2]}"
    return keys


def read_known_hosts(lab):
    try:
        return parse_known_hosts(known_hosts_path(lab).read_text())
    except FileNotFoundError:
        return {}


def update_known_hosts(lab, record=None, forget=()):
    """Record `record` ({host: "keytype base64"}) and forget the hosts in `forget`; the
    other hosts' keys stay. Written atomically: an interrupted run leaves the old file."""
    keys = read_known_hosts(lab)
    for host in forget:
        keys.pop(host, None)
    keys.update(record or {})
    path = known_hosts_path(lab)
    if not keys:
        path.unlink(missing_ok=True)
        return
    write_private(path, "".join(f"{host} {key}\n" for host, key in sorted(keys.items())).encode())
