"""Make the project root (fabfile) and app/ (notes_app) importable in unit tests."""
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]

for path in (PROJECT_DIR, PROJECT_DIR / "app"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
