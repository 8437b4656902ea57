"""machines: the lab's machines through Vagrant (python-vagrant, wrapped once), the SSH
inventory, the providers as small strategy objects, and snapshots."""
from .facade import Machines  # noqa: E402  (the layer's entry point)

__all__ = ["Machines"]
