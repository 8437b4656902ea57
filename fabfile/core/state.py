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
