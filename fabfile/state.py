"""The lab's git-ignored state folder: SSH config cache, secrets, reports."""
import os
import secrets
from pathlib import Path

from .lab import PROJECT_DIR

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


def secret(lab, name, nbytes=24):
    """A per-lab secret, generated once and kept with mode 0600; never printed."""
    folder = state_dir(lab) / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / name
    if not path.exists():
        value = secrets.token_urlsafe(nbytes)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
    return Path(path).read_text().strip()


def lab_ssh_key(lab):
    """The lab's own SSH key pair (private in OpenSSH format, public line), made once and
    kept with mode 0600: the hosts use it to reach each other by name."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    folder = state_dir(lab) / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    private_path = folder / "lab_ssh_key"
    if not private_path.exists():
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private)
        (folder / "lab_ssh_key.pub").write_text(public.decode() + f" {lab.name}-lab\n")
    return private_path.read_text(), (folder / "lab_ssh_key.pub").read_text().strip()
