"""The VRRP timers of each provider: picked by the provider the lab runs on, overridden by
lab.yml, and a provider switch changes keepalived.conf and nothing else."""
from fabfile.machines import providers
from fabfile.roles import ROLES
from fabfile.roles import loadbalancer as LB

from .test_templates import BASE_HOSTS, make_lab, render


def on_provider(monkeypatch, name):
    monkeypatch.setattr(LB, "lab_timer_profile", lambda lab: name)


def test_every_provider_has_timers_and_they_are_settings():
    assert set(LB.TIMERS_BY_PROVIDER) == set(providers.PROVIDERS) | {"libvirt/tcg"}
    for chosen in LB.TIMERS_BY_PROVIDER.values():
        assert set(chosen) <= set(LB.DEFAULTS)
        assert 0.01 <= chosen["advert_int"] <= 40.95


def test_the_provider_in_use_picks_the_timers(monkeypatch):
    lab = make_lab(BASE_HOSTS)
    for name, chosen in LB.TIMERS_BY_PROVIDER.items():
        on_provider(monkeypatch, name)
        assert ROLES["loadbalancer"].settings(lab)["advert_int"] == chosen["advert_int"]
    on_provider(monkeypatch, None)
    assert ROLES["loadbalancer"].settings(lab)["advert_int"] == LB.DEFAULTS["advert_int"]


def test_lab_yml_overrides_the_provider_timers(monkeypatch):
    on_provider(monkeypatch, "libvirt")
    lab = make_lab(BASE_HOSTS, {"loadbalancer": {"advert_int": 0.3}})
    assert ROLES["loadbalancer"].settings(lab)["advert_int"] == 0.3


def test_switching_provider_changes_keepalived_conf_and_nothing_else(monkeypatch):
    rendered = {}
    for name in ("docker", "libvirt"):
        on_provider(monkeypatch, name)
        rendered[name] = {t: render(t, "lb2") for t in
                          ("loadbalancer/keepalived.conf.j2", "loadbalancer/haproxy.cfg.j2",
                           "loadbalancer/keepalived-notify.sh.j2", "loadbalancer/haproxy-keepalived.conf.j2")}
    changed = [t for t in rendered["docker"] if rendered["docker"][t] != rendered["libvirt"][t]]
    assert changed == ["loadbalancer/keepalived.conf.j2"]
    assert f"advert_int {LB.TIMERS_BY_PROVIDER['libvirt']['advert_int']}" in rendered["libvirt"][changed[0]]


def test_lab_provider_reads_the_machines_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(providers, "machines_dir", lambda lab: tmp_path)
    lab = make_lab(BASE_HOSTS)
    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)
    assert providers.lab_provider(lab) is None
    monkeypatch.setenv("VAGRANT_DEFAULT_PROVIDER", "libvirt")
    assert providers.lab_provider(lab) == "libvirt"
    monkeypatch.setenv("VAGRANT_DEFAULT_PROVIDER", "nonsense")
    assert providers.lab_provider(lab) is None
    (tmp_path / "lb1" / "docker").mkdir(parents=True)
    (tmp_path / "lb1" / "docker" / "id").write_text("abc")
    assert providers.lab_provider(lab) == "docker"  # the machines win over the environment


def test_libvirt_keys_its_timers_by_the_accelerator_that_boots_its_guests(monkeypatch):
    from fabfile.machines.providers import libvirt
    monkeypatch.setattr(providers, "lab_provider", lambda lab: "libvirt")
    lab = make_lab(BASE_HOSTS)
    for kept, profile in (("kvm", "libvirt"), ("tcg", "libvirt/tcg"), ("", "libvirt/tcg")):
        monkeypatch.setattr(libvirt, "accelerator", lambda probe=True, kept=kept: kept)
        assert providers.lab_timer_profile(lab) == profile
    monkeypatch.setattr(providers, "lab_provider", lambda lab: "docker")
    assert providers.lab_timer_profile(lab) == "docker"
    monkeypatch.setattr(providers, "lab_provider", lambda lab: None)
    assert providers.lab_timer_profile(lab) is None
