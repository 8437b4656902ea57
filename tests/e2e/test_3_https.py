"""HTTPS at the balancers, on a real lab: real curl trusting only the lab's CA gets the page
through the VIP and through each balancer's own address, plain HTTP answers 301 to HTTPS,
the server itself refuses TLS 1.0 and 1.1 (and verify catches a balancer that does not),
chromium opens https://<site>/ with the lab's CA trusted, and a reencrypt lab verifies."""
import shutil
import subprocess

import pytest

from fabfile.checks.netsafety import ensure_local_route
from fabfile.converge.templates import TEMPLATES_DIR
from fabfile.core.certs import ca_path
from tests import browser
from tests.e2e.conftest import LAB_FILE, read_json

pytestmark = pytest.mark.e2e

CURL_TIMEOUT = ("--connect-timeout", "3", "--max-time", "10")
# TLS 1.0/1.1 offered at OpenSSL security level 0: Debian's curl refuses them by itself at
# the default level, and then a "refused" would prove nothing about the server.
OLD_TLS = {"1.0": ("--tlsv1.0", "--tls-max", "1.0"), "1.1": ("--tlsv1.1", "--tls-max", "1.1")}
LOW_SECURITY = ("--ciphers", "DEFAULT@SECLEVEL=0")


def curl(*args):
    return subprocess.run(["curl", "-sS", *CURL_TIMEOUT, *args], capture_output=True, text=True, timeout=30)


def routed(lab, *addresses):
    for address in addresses:
        ensure_local_route(address, lab.network)


def test_curl_trusting_the_lab_ca_gets_the_page_through_the_vip_and_each_balancer(lab_cli, provisioned):
    lab = lab_cli.lab
    routed(lab, lab.vip, *(h.ip for h in lab.with_role("loadbalancer")))
    ca = str(ca_path(lab))
    through_vip = curl("--cacert", ca, "-o", "/dev/null", "-w", "%{http_code} %{http_version}", f"https://{lab.vip}/")
    assert through_vip.stdout == "200 2", through_vip.stderr
    for balancer in lab.with_role("loadbalancer"):
        reply = curl("--cacert", ca, "-si", "--resolve", f"{lab.site}:443:{balancer.ip}", f"https://{lab.site}/")
        assert reply.returncode == 0, reply.stderr
        head = reply.stdout.lower()
        assert head.startswith("http/2 200") and f"x-lb: {balancer.name}" in head, reply.stdout[:400]
        assert "strict-transport-security: max-age=" in head
    stranger = curl("-o", "/dev/null", f"https://{lab.vip}/")  # the system's CAs do not know the lab's
    assert stranger.returncode == 60 and "certificate" in stranger.stderr, stranger.stderr


def test_both_balancers_hold_the_same_site_key_readable_by_root_alone(lab_cli, provisioned):
    seen = set()
    for balancer in ("lb1", "lb2"):
        out = lab_cli.invoke("ssh", balancer, "-c", "sudo stat -c '%a %U %G' /etc/haproxy/tls/site.pem && "
                                                    "sudo sha256sum /etc/haproxy/tls/site.pem").stdout.split()
        assert out[:3] == ["600", "root", "root"], out
        seen.add(out[3])
    assert len(seen) == 1, "a failover must not change the certificate"
    lab_cli.run("sudo sh -c 'echo drift >> /etc/haproxy/tls/site.pem'", "--hosts", "lb1")
    try:
        dry = lab_cli.invoke("provision", "--hosts", "lb1", "--dry-run").stdout
        assert "would change file /etc/haproxy/tls/site.pem" in dry, dry
        assert "(secret content: diff not shown)" in dry and "PRIVATE KEY" not in dry and "drift" not in dry
    finally:
        repaired = lab_cli.invoke("provision", "--hosts", "lb1").stdout
    assert "changed      file /etc/haproxy/tls/site.pem" in repaired and "service haproxy: reload" in repaired


def test_plain_http_answers_301_to_https_and_keeps_the_health_uri(lab_cli, provisioned):
    lab = lab_cli.lab
    routed(lab, lab.vip)
    reply = curl("-si", f"http://{lab.vip}/api/notes?x=1")
    status, *headers = reply.stdout.splitlines()
    assert status.split()[1] == "301", reply.stdout
    assert f"location: https://{lab.vip}/api/notes?x=1" in [h.strip().lower() for h in headers]
    health = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://{lab.vip}/haproxy-health")
    assert health.stdout == "200"


@pytest.mark.parametrize("version", sorted(OLD_TLS))
def test_an_old_tls_handshake_is_refused_by_the_server(lab_cli, provisioned, version):
    lab = lab_cli.lab
    routed(lab, lab.vip)
    reply = curl("--cacert", str(ca_path(lab)), *OLD_TLS[version], *LOW_SECURITY, "-o", "/dev/null",
                 f"https://{lab.vip}/")
    assert reply.returncode == 35, reply.stderr
    assert "alert protocol version" in reply.stderr, "the refusal must come from the server: " + reply.stderr


def test_verify_catches_a_balancer_that_accepts_tls_1_1(lab_cli, provisioned, tmp_path):
    lab = lab_cli.lab
    routed(lab, lab.vip)
    overlay = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR / "loadbalancer", overlay / "loadbalancer")
    config = overlay / "loadbalancer" / "haproxy.cfg.j2"
    text = config.read_text()
    lenient = "    ssl-default-bind-options ssl-min-ver TLSv1.1 no-tls-tickets\n    ssl-default-bind-ciphers DEFAULT:@SECLEVEL=0\n"
    strict = "    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets\n"
    assert strict in text
    config.write_text(text.replace(strict, lenient))
    master = lab.host("lb1")
    lab_cli.env["HALAB_TEMPLATES"] = str(overlay)
    try:
        lab_cli.invoke("provision", "--hosts", master.name)
        accepted = curl("--cacert", str(ca_path(lab)), *OLD_TLS["1.1"], *LOW_SECURITY, "-o", "/dev/null",
                        "-w", "%{http_code}", f"https://{lab.vip}/")
        assert accepted.stdout == "200", "the lenient HAProxy must really accept TLS 1.1: " + accepted.stderr
        report = tmp_path / "verify.json"
        result = lab_cli.invoke("verify", "--json", str(report), check=False)
        failed = {c["name"]: c["detail"] for c in read_json(report)["checks"] if not c["passed"]}
        assert result.returncode == 1
        assert "TLS 1.1 ACCEPTED" in failed.get("TLS 1.0 and 1.1 refused by the server", ""), failed
    finally:
        del lab_cli.env["HALAB_TEMPLATES"]
        lab_cli.invoke("provision", "--hosts", master.name)
    lab_cli.invoke("verify")


def test_chromium_opens_the_site_by_name_with_the_lab_ca_trusted(lab_cli, provisioned, tmp_path):
    assert browser.available(), "chromium is not installed: run scripts/setup.sh"
    assert browser.trust_available(), "certutil is not installed: run scripts/setup.sh (libnss3-tools)"
    lab = lab_cli.lab
    routed(lab, lab.vip)
    names = {lab.site: lab.vip}
    page = browser.dump_url(f"https://{lab.site}/", names, ca_path(lab))
    assert f"<title>{lab.name}: served by web1</title>" in page, page[:500]
    untrusted = browser.dump_url(f"https://{lab.site}/", names, None)
    assert "served by web1" not in untrusted, "without the lab's CA the browser must refuse the site"
    png = browser.screenshot_url(f"https://{lab.site}/", tmp_path / "https-site.png", names, ca_path(lab))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_reencrypt_lab_verifies_and_converges_back(lab_cli, provisioned, tmp_path):
    """The same lab switched to tls: reencrypt (HAProxy to Nginx over TLS, checked against
    the lab's CA), verified, then switched back; each switch converges in one run."""
    lab = lab_cli.lab
    reencrypt = tmp_path / "lab.yml"
    reencrypt.write_text(LAB_FILE.read_text() + "\ntls: reencrypt\n")
    lab_cli.env["LAB_FILE"] = str(reencrypt)
    try:
        lab_cli.invoke("provision", "--roles", "loadbalancer,web")
        again = lab_cli.invoke("provision", "--roles", "loadbalancer,web").stdout
        assert "nothing changed" in again, again
        report = tmp_path / "verify.json"
        result = lab_cli.invoke("verify", "--json", str(report), check=False)
        checks = {(c["host"], c["name"]): c for c in read_json(report)["checks"]}
        assert result.returncode == 0, result.stdout
        assert checks[("web1", "port 443 on all addresses")]["passed"]
        assert ("web1", "port 80 on all addresses") not in checks
        cfg = lab_cli.invoke("ssh", "lb1", "-c", "grep -E '^ +server web' /etc/haproxy/haproxy.cfg").stdout
        assert "ssl verify required ca-file /etc/haproxy/tls/ca.crt verifyhost web1" in cfg
        plain = lab_cli.invoke("ssh", "lb1", "-c", f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 3 "
                                                   f"http://{lab.host('web1').ip}/healthz", check=False).stdout
        assert plain == "000", "no plain HTTP on the web host in reencrypt mode"
    finally:
        lab_cli.env["LAB_FILE"] = str(LAB_FILE)
        lab_cli.invoke("provision", "--roles", "loadbalancer,web")
    lab_cli.invoke("verify")
