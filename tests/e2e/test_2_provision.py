"""Provisioning turns the bare hosts into the stack, idempotently, and never installs a
configuration that its service rejects."""
import shutil

import pytest

from fabfile.checks.http import lab_tls, request
from fabfile.checks.netsafety import ensure_local_route
from fabfile.converge.templates import TEMPLATES_DIR
from tests.e2e.conftest import read_json

pytestmark = pytest.mark.e2e


def test_cold_provision_succeeds_on_every_host(lab_cli, provisioned):
    ensure_local_route(lab_cli.lab.vip, lab_cli.lab.network)
    assert provisioned["failed"] == 0
    assert set(provisioned["hosts"]) == set(lab_cli.lab.host_names)
    assert all(h["changed"] > 0 for h in provisioned["hosts"].values())


def test_the_page_through_the_vip_names_the_balancer_and_the_web_host(lab_cli, provisioned):
    reply = request(lab_cli.lab.vip, "GET", "/", tls=lab_tls(lab_cli.lab))
    assert reply.status == 200 and b"web1" in reply.body
    assert reply.headers["x-lb"] in ("lb1", "lb2")
    assert reply.headers["x-served-by"] == "web1"


def test_a_note_written_through_the_vip_reads_back_and_is_in_mysql(lab_cli, provisioned):
    vip, tls = lab_cli.lab.vip, lab_tls(lab_cli.lab)
    written = request(vip, "POST", "/api/notes", {"text": "through the whole stack"}, tls=tls)
    assert written.status == 201, written.body
    note = written.json()
    assert note["app"] == "app1" and note["text"] == "through the whole stack"
    read = request(vip, "GET", f"/api/notes/{note['id']}", tls=tls)
    assert read.status == 200 and read.json()["text"] == "through the whole stack"
    assert read.headers["x-app"] == "app1"
    sql = f"SELECT text FROM notes.notes WHERE id={int(note['id'])}"
    out = lab_cli.invoke("ssh", "db1", "-c", f'sudo mariadb -N -e "{sql}"').stdout
    assert out.strip() == "through the whole stack"


def test_bad_input_answers_400_not_500(lab_cli, provisioned):
    tls = lab_tls(lab_cli.lab)
    reply = request(lab_cli.lab.vip, "POST", "/api/notes", {"text": ""}, tls=tls)
    assert reply.status == 400 and "error" in reply.json()
    assert request(lab_cli.lab.vip, "GET", "/api/notes/abc", tls=tls).status == 400


def test_the_database_grant_is_scoped_to_the_app_hosts(lab_cli, provisioned):
    db = lab_cli.lab.host("db1").ip
    probe = (f"python3 -c \"import socket; s=socket.create_connection(('{db}', 3306), 3); "
             f"print(s.recv(300))\"")
    # Two walls: the firewall refuses lb1 before MariaDB sees it, and MariaDB itself turns
    # away an address no account names (db1's own private address, which its firewall lets in).
    from_lb1 = lab_cli.invoke("ssh", "lb1", "-c", probe, check=False)
    assert from_lb1.returncode != 0 and "Connection refused" in from_lb1.stderr, from_lb1
    from_db1 = lab_cli.invoke("ssh", "db1", "-c", probe).stdout
    assert "is not allowed to connect" in from_db1, from_db1
    login = ("cd /opt/halab-app && sudo python3 -c \"import notes_app as a, pymysql; "
             "e = a.read_env_file('app.env'); "
             "c = pymysql.connect(host=e['DB_HOST'], user=e['DB_USER'], password=e['DB_PASSWORD'], "
             "database=e['DB_NAME'], connect_timeout=3); print('connected', c.get_server_info())\"")
    assert "connected" in lab_cli.invoke("ssh", "app1", "-c", login).stdout


def test_a_second_provision_changes_nothing(lab_cli, provisioned, tmp_path):
    report = tmp_path / "again.json"
    out = lab_cli.invoke("provision", "--json", str(report)).stdout
    again = read_json(report)
    assert again["changed"] == 0 and again["failed"] == 0, out
    assert all(h["changed"] == 0 for h in again["hosts"].values())
    assert "nothing changed" in out


def test_a_dry_run_on_the_converged_lab_has_nothing_to_change(lab_cli, provisioned):
    out = lab_cli.invoke("provision", "--dry-run").stdout
    assert "nothing to change" in out, out


def test_a_template_that_breaks_haproxy_fails_and_haproxy_keeps_serving(lab_cli, provisioned, tmp_path):
    overlay = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR / "loadbalancer", overlay / "loadbalancer")
    config = overlay / "loadbalancer" / "haproxy.cfg.j2"
    original = config.read_text()
    assert "    balance roundrobin\n" in original
    config.write_text(original.replace("    balance roundrobin\n", "    balance nonsense\n"))
    before = lab_cli.invoke("ssh", "lb1", "-c", "sha256sum /etc/haproxy/haproxy.cfg").stdout

    lab_cli.env["HALAB_TEMPLATES"] = str(overlay)
    try:
        result = lab_cli.invoke("provision", "--roles", "loadbalancer", check=False)
    finally:
        del lab_cli.env["HALAB_TEMPLATES"]

    assert result.returncode != 0
    assert "haproxy -c" in result.stdout and "balance only supports" in result.stdout, result.stdout
    assert "left as it was" in result.stdout
    assert lab_cli.invoke("ssh", "lb1", "-c", "sha256sum /etc/haproxy/haproxy.cfg").stdout == before
    assert request(lab_cli.lab.vip, "GET", "/", tls=lab_tls(lab_cli.lab)).status == 200


def test_a_provision_that_fails_halfway_is_finished_by_the_next_run(lab_cli, provisioned, tmp_path):
    """haproxy.cfg is written, then keepalived's template fails: the reload of HAProxy
    never happened. The next run must see that HAProxy runs an older file and reload it."""
    overlay = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR / "loadbalancer", overlay / "loadbalancer")
    haproxy = overlay / "loadbalancer" / "haproxy.cfg.j2"
    marker = "    http-response set-header X-LB {{ host.name }}\n"
    assert marker in haproxy.read_text()
    haproxy.write_text(haproxy.read_text().replace(marker, marker + "    http-response set-header X-Check yes\n"))
    keepalived = overlay / "loadbalancer" / "keepalived.conf.j2"
    good_keepalived = keepalived.read_text()
    keepalived.write_text(good_keepalived + "{% if %}\n")
    lb1, tls = lab_cli.lab.host("lb1").ip, lab_tls(lab_cli.lab)
    ensure_local_route(lb1, lab_cli.lab.network)

    lab_cli.env["HALAB_TEMPLATES"] = str(overlay)
    try:
        failed = lab_cli.invoke("provision", "--hosts", "lb1", check=False)
        assert failed.returncode != 0 and "keepalived.conf.j2" in failed.stdout, failed.stdout
        assert "x-check" not in request(lb1, "GET", "/", tls=tls).headers, "HAProxy was reloaded by the failed run"
        keepalived.write_text(good_keepalived)
        rerun = lab_cli.invoke("provision", "--hosts", "lb1").stdout
        assert "changed      service haproxy: reload" in rerun, rerun
        assert request(lb1, "GET", "/", tls=tls).headers.get("x-check") == "yes"
    finally:
        del lab_cli.env["HALAB_TEMPLATES"]
        lab_cli.invoke("provision", "--hosts", "lb1")
    assert "x-check" not in request(lb1, "GET", "/", tls=tls).headers
    assert "nothing changed" in lab_cli.invoke("provision", "--hosts", "lb1").stdout
