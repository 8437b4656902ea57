"""`invoke doctor`'s checks (fabfile/checks/doctor.py): each verdict and its fix, with the
lookups (providers, docker, vagrant, the lab file, /proc/meminfo) faked; nothing is run."""
import importlib.metadata
import io
from types import SimpleNamespace

import pytest

import fabfile.checks.doctor as doctor
import fabfile.core.lab as lab_module
from fabfile.core.errors import LabError
from fabfile.core.lab import parse_lab
from tests.unit.test_lab import GOOD


@pytest.fixture
def lab():
    return parse_lab(GOOD)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setattr(lab_module, "VBOX_NETWORKS_CONF", tmp_path / "no-networks.conf")
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)


def usable_only(monkeypatch, *names):
    monkeypatch.setattr(doctor, "usable", lambda name: (name in names, "works" if name in names else "missing"))


def fake_docker(monkeypatch, built=True, networks=(), image="halab-box:1"):
    monkeypatch.setattr(doctor, "docker", SimpleNamespace(
        box_image=lambda: image, box_built=lambda: built, networks=lambda: list(networks),
        network_conflicts=__import__("fabfile.machines.providers.docker",
                                     fromlist=["network_conflicts"]).network_conflicts))


def fake_meminfo(monkeypatch, text):
    real_open = open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/meminfo":
            return io.StringIO(text)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(doctor, "open", fake_open, raising=False)


def by_item(findings):
    return {f.item: f for f in findings}


# --- one check at a time -----------------------------------------------------------------------------------

def test_lab_file_ok_and_its_summary(monkeypatch, lab):
    monkeypatch.setattr(doctor, "load_lab", lambda: lab)
    found, finding = doctor.check_lab_file()
    assert found is lab
    assert (finding.verdict, finding.detail) == (
        "ok", "lab halab: 2 loadbalancer, 1 web, 1 app, 1 db; 192.168.56.0/24, VIP 192.168.56.10")


def test_lab_file_errors_and_unknown_settings_fail_with_the_fix(monkeypatch):
    def broken():
        raise LabError("lab.yml: vip: is missing", "add `vip:`")

    monkeypatch.setattr(doctor, "load_lab", broken)
    assert doctor.check_lab_file() == (None, doctor.Finding("lab.yml", "fail", "lab.yml: vip: is missing",
                                                            "add `vip:`"))
    odd = parse_lab(GOOD + "settings:\n  loadbalancer: {no_such_setting: 1}\n")
    monkeypatch.setattr(doctor, "load_lab", lambda: odd)
    lab, finding = doctor.check_lab_file()
    assert lab is None and finding.verdict == "fail" and "no_such_setting" in finding.detail


def test_vagrant_found_or_not(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    missing = doctor.check_vagrant()
    assert (missing.verdict, missing.detail) == ("fail", "not found") and "setup.sh" in missing.fix
    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/vagrant")
    runs = []
    monkeypatch.setattr(doctor.subprocess, "run",
                        lambda argv, **kw: runs.append(argv) or SimpleNamespace(stdout="Vagrant 2.4.1\n"))
    assert doctor.check_vagrant() == doctor.Finding("vagrant", "ok", "Vagrant 2.4.1")
    assert runs == [["vagrant", "--version"]]


def test_providers_each_with_a_verdict_and_the_choice(monkeypatch):
    usable_only(monkeypatch, "docker")
    findings = by_item(doctor.check_providers())
    assert [f.verdict for f in findings.values()] == ["warn", "warn", "ok", "ok"]
    assert findings["provider docker"].detail == "works"
    assert findings["provider choice"].detail.startswith("`invoke up` uses docker")


def test_no_usable_provider_fails(monkeypatch):
    usable_only(monkeypatch)
    findings = doctor.check_providers()
    assert findings[-1] == doctor.Finding("providers", "fail", "no provider is usable",
                                          "run scripts/setup.sh (installs docker.io and starts it)")
    assert len(findings) == 4


def test_an_unusable_default_provider_fails_the_choice(monkeypatch):
    usable_only(monkeypatch, "docker")
    monkeypatch.setenv("VAGRANT_DEFAULT_PROVIDER", "libvirt")
    choice = by_item(doctor.check_providers())["provider choice"]
    assert choice.verdict == "fail" and "libvirt is not usable" in choice.detail and choice.fix


def test_docker_box(monkeypatch):
    usable_only(monkeypatch, "virtualbox")
    assert doctor.check_box().verdict == "warn"
    usable_only(monkeypatch, "docker")
    fake_docker(monkeypatch, built=True)
    assert doctor.check_box() == doctor.Finding("docker box", "ok", "halab-box:1 is built")
    fake_docker(monkeypatch, built=False)
    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/sbin/debootstrap")
    not_built = doctor.check_box()
    assert not_built.verdict == "warn" and "invoke up" in not_built.fix
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    no_debootstrap = doctor.check_box()
    assert no_debootstrap.verdict == "fail" and "debootstrap" in no_debootstrap.fix


def test_network_in_range_and_no_docker_conflict(monkeypatch, lab):
    usable_only(monkeypatch, "docker")
    fake_docker(monkeypatch, networks=[{"name": "bridge", "subnets": ["172.17.0.0/16"], "labels": {}}])
    findings = doctor.check_network(lab)
    assert [(f.item, f.verdict) for f in findings] == [("network (VirtualBox)", "ok"), ("network (docker)", "ok")]


def test_network_out_of_virtualbox_range_fails_only_where_virtualbox_works(monkeypatch):
    lab = parse_lab(GOOD.replace("192.168.56.", "10.20.30."))
    usable_only(monkeypatch, "virtualbox")
    findings = doctor.check_network(lab)
    assert [(f.item, f.verdict) for f in findings] == [("network (VirtualBox)", "fail")]
    assert "networks.conf" in findings[0].fix
    usable_only(monkeypatch)
    assert doctor.check_network(lab)[0].verdict == "warn"


def test_docker_network_conflicts_fail_with_their_fix(monkeypatch, lab):
    usable_only(monkeypatch, "docker")
    fake_docker(monkeypatch, networks=[{"name": "vagrant_network_x", "subnets": ["192.168.56.0/24"],
                                        "labels": {}}])
    docker_findings = [f for f in doctor.check_network(lab) if f.item == "network (docker)"]
    assert len(docker_findings) == 1 and docker_findings[0].verdict == "fail"
    assert "docker network rm vagrant_network_x" in docker_findings[0].fix


def test_memory(monkeypatch, lab):
    wanted = sum(h.memory for h in lab.hosts)
    fake_meminfo(monkeypatch, f"MemTotal: 99999999 kB\nMemAvailable: {(wanted + 1) * 1024} kB\n")
    assert doctor.check_memory(lab) == doctor.Finding(
        "memory", "ok", f"{wanted + 1} MiB available, lab.yml asks {wanted} MiB")
    fake_meminfo(monkeypatch, f"MemAvailable: {(wanted - 1) * 1024} kB\n")
    short = doctor.check_memory(lab)
    assert short.verdict == "fail" and "lower memory" in short.fix
    fake_meminfo(monkeypatch, "MemTotal: 1 kB\n")
    assert doctor.check_memory(lab).verdict == "warn"


def test_python_packages(monkeypatch):
    assert doctor.check_python_packages().verdict == "ok"
    real = importlib.metadata.version

    def version(name):
        if name == "python-vagrant":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(doctor.importlib.metadata, "version", version)
    missing = doctor.check_python_packages()
    assert (missing.verdict, missing.detail) == ("fail", "missing: python-vagrant")
    assert "requirements.txt" in missing.fix


def test_environment_lists_the_lab_variables_that_are_set():
    quiet = doctor.check_environment({"HOME": "/root", "LAB": ""})
    assert quiet.verdict == "ok" and quiet.detail.startswith("none of LAB_FILE, LAB")
    assert quiet.detail.endswith("is set: lab.yml and the defaults decide")
    found = doctor.check_environment({"LAB": "student2", "HALAB_DEBUG": "1", "PATH": "/bin"})
    assert found.detail == ("LAB=student2 (" + doctor.ENVIRONMENT["LAB"] + "); HALAB_DEBUG=1 ("
                            + doctor.ENVIRONMENT["HALAB_DEBUG"] + ")")


# --- all of them ---------------------------------------------------------------------------------------------

def test_run_checks_on_a_docker_host(monkeypatch, lab):
    monkeypatch.setattr(doctor, "load_lab", lambda: lab)
    monkeypatch.setattr(doctor.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(doctor.subprocess, "run", lambda argv, **kw: SimpleNamespace(stdout="Vagrant 2.4.1\n"))
    usable_only(monkeypatch, "docker")
    fake_docker(monkeypatch, built=False)
    fake_meminfo(monkeypatch, "MemAvailable: 99999999 kB\n")
    findings = doctor.run_checks()
    assert [(f.item, f.verdict) for f in findings] == [
        ("environment", "ok"), ("lab.yml", "ok"), ("vagrant", "ok"), ("provider virtualbox", "warn"), ("provider libvirt", "warn"),
        ("provider docker", "ok"), ("provider choice", "ok"), ("docker box", "warn"),
        ("network (VirtualBox)", "ok"), ("network (docker)", "ok"), ("memory", "ok"), ("python packages", "ok")]
    assert all(f.fix for f in findings if f.verdict == "fail")


def test_run_checks_without_a_lab_file_skips_the_checks_that_need_it(monkeypatch):
    def broken():
        raise LabError("lab.yml: no such lab file")

    monkeypatch.setattr(doctor, "load_lab", broken)
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    usable_only(monkeypatch)
    items = [f.item for f in doctor.run_checks()]
    assert items == ["environment", "lab.yml", "vagrant", "provider virtualbox", "provider libvirt", "provider docker",
                     "providers", "docker box", "python packages"]
