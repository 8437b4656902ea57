"""Make the project root (fabfile) and app/ (notes_app) importable in unit tests."""
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]

for path in (PROJECT_DIR, PROJECT_DIR / "app"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def no_provider_in_use(monkeypatch):
    """Unit tests never read which provider a lab on this machine runs on: settings that
    depend on it (the VRRP timers) are those of an unknown provider unless a test says."""
    monkeypatch.setattr("fabfile.roles.loadbalancer.lab_timer_profile", lambda lab: None)
