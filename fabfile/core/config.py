"""The lab's configuration, read in a stated order: the environment first, then the lab
file (lab.yml, or the one the environment names), then the defaults in the code (each
role's settings in its module under roles/). Only this module reads the lab's variables
from the environment; doctor lists them, Vagrant's subprocess inherits them."""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

PROJECT_DIR = Path(__file__).resolve().parents[2]

# The environment variables the lab reads, and what each one does.
ENVIRONMENT = {
    "LAB_FILE": "the lab file to use instead of lab.yml",
    "LAB": "a lab's name: labs/NAME.yml, or lab.yml's topology on a /24 of its own",
    "HALAB_TEMPLATES": "a folder whose templates override the shipped ones",
    "HALAB_DEBUG": "print each Vagrant call and its duration",
    "VAGRANT_DEFAULT_PROVIDER": "the provider when neither --provider nor the lab decides",
}


@dataclass(frozen=True)
class Config:
    lab_file: Optional[str] = None
    lab_name: Optional[str] = None
    templates: Optional[str] = None
    debug: bool = False
    provider: Optional[str] = None

    @classmethod
    def from_environment(cls, environ=None):
        env = os.environ if environ is None else environ
        return cls(lab_file=env.get("LAB_FILE") or None, lab_name=env.get("LAB") or None,
                   templates=env.get("HALAB_TEMPLATES") or None,
                   debug=bool(env.get("HALAB_DEBUG")),
                   provider=env.get("VAGRANT_DEFAULT_PROVIDER") or None)


def current():
    """The configuration of this process, as its environment says now."""
    return Config.from_environment()
