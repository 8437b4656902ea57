"""`vagrant validate` of the Vagrantfile for the VM providers. VirtualBox cannot run on
this project's machines, so its block is validated by Vagrant's own VirtualBox plugin
against a stand-in VBoxManage that only reports a version; an unknown setting there fails."""
import os
import shutil
import subprocess

import pytest

from fabfile.core.config import PROJECT_DIR
from tests.e2e.conftest import LAB_FILE

pytestmark = pytest.mark.e2e


def validate(provider, tmp_path, vagrantfile_dir=PROJECT_DIR):
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "VBoxManage").write_text('#!/bin/sh\ncase "$1" in --version) echo 7.0.14r161095;; esac\n')
    (fake / "VBoxManage").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", LAB_FILE=str(LAB_FILE),
               VAGRANT_DEFAULT_PROVIDER=provider, VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"),
               HALAB_BOX_IMAGE="unused", VAGRANT_NO_COLOR="1")
    return subprocess.run(["vagrant", "validate"], cwd=vagrantfile_dir, env=env, text=True,
                          capture_output=True, timeout=120)


def test_the_virtualbox_block_validates(tmp_path):
    result = validate("virtualbox", tmp_path)
    assert result.returncode == 0 and "validated successfully" in result.stdout, result.stdout + result.stderr


def test_a_wrong_virtualbox_setting_is_caught(tmp_path):
    copy = tmp_path / "checkout"
    (copy / "scripts").mkdir(parents=True)
    for recipe in ("build-libvirt-box.sh", "box-common.sh"):   # the Vagrantfile hashes both
        shutil.copy(PROJECT_DIR / "scripts" / recipe, copy / "scripts")
    text = (PROJECT_DIR / "Vagrantfile").read_text()
    (copy / "Vagrantfile").write_text(text.replace("vb.linked_clone = true", "vb.linked_clone = true\n        vb.no_such_setting = 1"))
    result = validate("virtualbox", tmp_path, copy)
    assert result.returncode != 0 and "no_such_setting" in result.stdout + result.stderr


@pytest.mark.skipif(not shutil.which("virsh"), reason="vagrant-libvirt and libvirt are not installed")
def test_the_libvirt_block_validates(tmp_path):
    result = validate("libvirt", tmp_path)
    assert result.returncode == 0 and "validated successfully" in result.stdout, result.stdout + result.stderr
