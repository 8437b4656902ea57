"""Every configuration template renders through its role's own steps and context (the
same code `invoke provision` runs), for a small lab, and says what matters."""
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest
import yaml

from fabfile.converge.steps import Template
from fabfile.converge.templates import environment
from fabfile.core.lab import parse_lab
from fabfile.remote import facts as F
from fabfile.roles import ROLES, host_plan

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
IFACE = "eth1"
PASSWORD = "s3cret-Pass_word"

TEMPLATES_BY_ROLE = {
    "loadbalancer": ["loadbalancer/haproxy.cfg.j2", "loadbalancer/keepalived.conf.j2",
                     "loadbalancer/keepalived-notify.sh.j2", "loadbalancer/haproxy-keepalived.conf.j2"],
    "web": ["web/nginx-site.conf.j2", "web/index.html.j2"],
    "app": ["app/gunicorn.service.j2", "app/app.env.j2"],
    "db": ["db/mariadb-lab.cnf.j2", "db/grants.sql.j2"],
}
# Rendered for a monitored lab in test_monitor.py (the console page holds Go templates).
MONITOR_TEMPLATES = ["monitor/prometheus.yml.j2", "monitor/halab-rules.yml.j2", "monitor/alertmanager.yml.j2",
                     "monitor/halab.html.j2", "monitor/prometheus.default.j2", "monitor/alertmanager.default.j2",
                     "monitor/prometheus-sandbox.conf.j2"]


@dataclass(frozen=True)
class Host:
    name: str
    role: str
    ip: str


BASE_HOSTS = [Host("lb1", "loadbalancer", "192.168.56.11"),
              Host("lb2", "loadbalancer", "192.168.56.12"),
              Host("web1", "web", "192.168.56.21"),
              Host("app1", "app", "192.168.56.31"),
              Host("db1", "db", "192.168.56.41")]
SCALED_HOSTS = BASE_HOSTS + [Host("web2", "web", "192.168.56.22"),
                             Host("app2", "app", "192.168.56.32")]


def make_lab(hosts, settings=None):
    """A lab parsed from lab.yml text, as `invoke` would load it."""
    data = {"name": "halab", "network": "192.168.56.0/24", "vip": "192.168.56.10",
            "hosts": {h.name: {"role": h.role, "ip": h.ip} for h in hosts}}
    if settings:
        data["settings"] = settings
    return parse_lab(yaml.safe_dump(data))


def host_facts(host, steps):
    """The facts a converged host would report where a template reads them: the private
    address on IFACE, not a container."""
    wanted = [f for step in steps for f in step.facts()] + [F.addresses(), F.container()]
    return F.parse_raw(wanted, {"addresses": f"2: {IFACE}    inet {host.ip}/24 brd 192.168.56.255 scope global {IFACE}",
                                "container": ""})


def render(template, host_name, hosts=BASE_HOSTS, overrides=None, db_password=PASSWORD, **extra):
    """Render `template` as host_name's role renders it; `overrides` are lab.yml settings
    of that host's role; `extra` replaces context variables (to test failures)."""
    role = next(h.role for h in hosts if h.name == host_name)
    lab = make_lab(hosts, {role: overrides} if overrides else None)
    host = lab.host(host_name)
    secrets = {"db_password": db_password, "exporter_db_password": "fake-Exp_pass", "lab_ssh_key": ("PRIVATE KEY", "ssh-ed25519 AAAAtest halab-lab")}
    steps, _ = host_plan(lab, host, secrets)
    step = next(s for s in steps if isinstance(s, Template) and s.template == template)
    context = step.context(host_facts(host, steps)) if callable(step.context) else dict(step.context)
    context.update(extra)
    return environment().get_template(template).render(**context)


def config_lines(text, comment="#"):
    """The non-empty lines that are not comments, stripped."""
    stripped = (line.strip() for line in text.splitlines())
    return [line for line in stripped if line and not line.startswith(comment)]


# --- every template, every host --------------------------------------------------

COMMON_TEMPLATES = ["common/hosts.j2", "common/motd.j2"]

ALL_CASES = [(template, host.name, label)
             for label, hosts in (("base", BASE_HOSTS), ("scaled", SCALED_HOSTS))
             for host in hosts
             for template in TEMPLATES_BY_ROLE[host.role] + COMMON_TEMPLATES]


@pytest.mark.parametrize("template, host_name, label", ALL_CASES)
def test_every_template_renders_without_undefined_variables(template, host_name, label):
    hosts = SCALED_HOSTS if label == "scaled" else BASE_HOSTS
    text = render(template, host_name, hosts)
    assert text.endswith("\n") and not text.endswith("\n\n\n")
    assert not text.startswith("\n"), "a blank first line (breaks #! and reads badly)"
    assert "{{" not in text and "{%" not in text
    assert all(line == line.rstrip() for line in text.splitlines()), "trailing whitespace"


def test_every_template_file_is_covered():
    # templates/views/ draws pages for people, not hosts' files: test_drill_report covers it
    on_disk = {str(p.relative_to(TEMPLATES_DIR)) for p in TEMPLATES_DIR.rglob("*.j2")
               if p.relative_to(TEMPLATES_DIR).parts[0] != "views"}
    # common/firewall.nft.j2 is rendered from the roles' Inbound records: tests/unit/test_firewall.py
    assert on_disk == ({t for templates in TEMPLATES_BY_ROLE.values() for t in templates} | set(COMMON_TEMPLATES)
                       | set(MONITOR_TEMPLATES) | {"common/firewall.nft.j2"})


def test_every_host_knows_every_other_by_name():
    text = render("common/hosts.j2", "app1", SCALED_HOSTS)
    for host in SCALED_HOSTS:
        assert f"{host.ip}\t{host.name}" in text.splitlines()
    assert "127.0.0.1\tlocalhost" in text.splitlines()


def test_message_of_the_day_says_role_services_config_and_lab_commands():
    lb = render("common/motd.j2", "lb1")
    assert "lb1 (192.168.56.11) - loadbalancer" in lb and "/etc/keepalived/keepalived.conf" in lb
    assert "VRRP with lb2" in lb and "invoke failover" in lb
    app = render("common/motd.j2", "app1")
    assert "mysql -h db1" in app and "journalctl -u halab-app" in app
    assert "lb1, lb2, web1, app1, db1" in app


def test_a_missing_variable_fails_loudly():
    with pytest.raises(jinja2.UndefinedError):
        render("loadbalancer/keepalived.conf.j2", "lb1", iface=jinja2.StrictUndefined())
    with pytest.raises(jinja2.UndefinedError):
        render("web/nginx-site.conf.j2", "web1", settings={"app_port": 8000})


# --- HAProxy ----------------------------------------------------------------------

def test_haproxy_frontend_and_header():
    lines = config_lines(render("loadbalancer/haproxy.cfg.j2", "lb2"))
    assert "bind :80" in lines
    assert "http-response set-header X-LB lb2" in lines
    assert "log /dev/log local0" in lines
    assert "stats socket /run/haproxy/admin.sock mode 660 level admin" in lines
    assert not any(line.startswith("bind 192.168.56.10") for line in lines), "never bind the VIP"


def test_haproxy_backend_checks_and_servers():
    lines = config_lines(render("loadbalancer/haproxy.cfg.j2", "lb1"))
    assert "balance roundrobin" in lines
    assert "option httpchk GET /healthz" in lines
    assert "option redispatch" in lines and "retries 2" in lines
    assert "default-server inter 500ms fall 2 rise 2" in lines
    assert [l for l in lines if l.startswith("server ")] == ["server web1 192.168.56.21:80 check"]


def test_haproxy_stats_only_on_the_private_ip():
    lines = config_lines(render("loadbalancer/haproxy.cfg.j2", "lb1"))
    assert "bind 192.168.56.11:8404" in lines
    assert "stats uri /stats" in lines and "stats refresh 5s" in lines


def test_haproxy_timeouts_come_from_settings():
    lines = config_lines(render("loadbalancer/haproxy.cfg.j2", "lb1", overrides={
        "timeout_connect_ms": 1111, "check_inter_ms": 777, "stats_port": 9999}))
    assert "timeout connect 1111ms" in lines
    assert "default-server inter 777ms fall 2 rise 2" in lines
    assert "bind 192.168.56.11:9999" in lines


def test_haproxy_scale_out_lists_every_web_server():
    lines = config_lines(render("loadbalancer/haproxy.cfg.j2", "lb1", SCALED_HOSTS))
    assert [l for l in lines if l.startswith("server ")] == [
        "server web1 192.168.56.21:80 check", "server web2 192.168.56.22:80 check"]


# --- keepalived -------------------------------------------------------------------

def keepalived(host_name, **kwargs):
    return render("loadbalancer/keepalived.conf.j2", host_name, **kwargs)


def test_keepalived_master_instance():
    lines = config_lines(keepalived("lb1"))
    assert "router_id lb1" in lines
    assert "vrrp_version 3" in lines
    assert "enable_script_security" in lines and "script_user root" in lines
    assert "vrrp_instance VI_halab {" in lines
    assert "state MASTER" in lines and "priority 150" in lines
    assert "interface eth1" in lines
    assert "virtual_router_id 51" in lines and "advert_int 1.0" in lines
    assert "unicast_src_ip 192.168.56.11" in lines
    peer_block = lines[lines.index("unicast_peer {") + 1]
    assert peer_block == "192.168.56.12"
    assert "192.168.56.10/24 dev eth1" in lines
    assert "vrrp_notify_fifo_script /etc/keepalived/notify.sh" in lines  # transitions in order, one reader
    assert "notify /etc/keepalived/notify.sh" not in lines                # not a script forked per transition
    assert "nopreempt" not in lines


def test_keepalived_backup_instance_points_at_the_master():
    lines = config_lines(keepalived("lb2"))
    assert "state BACKUP" in lines and "priority 100" in lines
    assert "unicast_src_ip 192.168.56.12" in lines
    assert lines[lines.index("unicast_peer {") + 1] == "192.168.56.11"


def test_keepalived_never_strict():
    for host_name in ("lb1", "lb2"):
        assert not any("vrrp_strict" in line for line in config_lines(keepalived(host_name)))


def test_keepalived_tracks_the_haproxy_process_and_its_answer():
    lines = config_lines(keepalived("lb1"))
    assert "vrrp_track_process haproxy_proc {" in lines
    assert "process haproxy" in lines and "weight 0" in lines and "delay 0.1" in lines
    assert "vrrp_script chk_haproxy {" in lines
    script = next(l for l in lines if l.startswith("script "))
    assert "/usr/bin/curl" in script and "127.0.0.1:80/haproxy-health" in script
    assert "interval 1" in lines and "fall 2" in lines and "rise 2" in lines
    assert "haproxy_proc" in lines and "chk_haproxy" in lines   # inside track_* blocks


def test_systemd_tells_keepalived_when_haproxy_stops_through_the_tracked_file():
    dropin = render("loadbalancer/haproxy-keepalived.conf.j2", "lb1")
    state_file = ROLES["loadbalancer"].defaults["haproxy_state_file"]
    assert f"ExecStartPost=/bin/sh -c 'echo 0 > {state_file}'" in dropin
    assert f"ExecStopPost=/bin/sh -c 'echo 1 > {state_file}'" in dropin
    conf = keepalived("lb1")
    assert f"file {state_file}" in conf and "init_file 1" in conf
    assert "track_file {\n        haproxy_down\n    }" in conf


def test_keepalived_without_process_events_relies_on_the_script_alone():
    # Container guests: no process-event connector in their network namespace.
    text = keepalived("lb1", overrides={"track_process": False})
    lines = config_lines(text)
    assert not any("track_process" in line or "haproxy_proc" in line for line in lines)
    assert "vrrp_script chk_haproxy {" in lines and "chk_haproxy" in lines
    assert "errno 111" in text   # the comment says why


def test_keepalived_raises_its_own_priority_when_late():
    assert "max_auto_priority" in config_lines(keepalived("lb1"))


def test_keepalived_health_uri_is_answered_by_haproxy_itself():
    haproxy = config_lines(render("loadbalancer/haproxy.cfg.j2", "lb1"))
    assert "monitor-uri /haproxy-health" in haproxy


def test_keepalived_gratuitous_arp_on_transition():
    lines = config_lines(keepalived("lb1"))
    assert "garp_master_repeat 3" in lines
    assert any(l.startswith("garp_master_delay ") for l in lines)


def test_keepalived_explains_the_master_down_interval():
    # lb2, priority 100: 3 x 0.1 + (256 - 100) x 0.1 / 256 = 0.361 s
    assert "= 0.361 s" in keepalived("lb2", overrides={"advert_int": 0.1})


def test_keepalived_nopreempt_starts_both_as_backup():
    for host_name in ("lb1", "lb2"):
        lines = config_lines(keepalived(host_name, overrides={"preempt": False}))
        assert "nopreempt" in lines
        assert "state BACKUP" in lines and "state MASTER" not in lines
    assert "priority 150" in config_lines(keepalived("lb1", overrides={"preempt": False}))


def test_keepalived_uses_the_interface_it_is_given():
    lines = config_lines(keepalived("lb1", iface="enp0s8"))
    assert "interface enp0s8" in lines and "192.168.56.10/24 dev enp0s8" in lines


def test_notify_script_is_posix_sh_logging_each_transition():
    text = render("loadbalancer/keepalived-notify.sh.j2", "lb1")
    assert text.startswith("#!/bin/sh\n")
    assert "/var/log/keepalived-transitions.log" in text
    assert "logger -t keepalived-notify" in text
    assert "%3N" in text   # milliseconds
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)


# --- Nginx ------------------------------------------------------------------------

def test_nginx_site_serves_static_files_and_health():
    text = render("web/nginx-site.conf.j2", "web1")
    lines = config_lines(text)
    assert "listen 80 default_server;" in lines
    assert "root /var/www/halab;" in lines and "index index.html;" in lines
    assert "location = /healthz {" in lines
    assert 'return 200 "ok\\n";' in lines
    assert "add_header X-Served-By web1 always;" in lines


def test_nginx_proxies_the_api_without_retrying_posts():
    lines = config_lines(render("web/nginx-site.conf.j2", "web1"))
    assert "location /api/ {" in lines and "proxy_pass http://app;" in lines
    assert "server 192.168.56.31:8000 max_fails=2 fail_timeout=5s;" in lines
    for header in ("Host $host", "X-Real-IP $remote_addr",
                   "X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $http_x_forwarded_proto"):
        assert f"proxy_set_header {header};" in lines
    assert "proxy_next_upstream error timeout;" in lines
    assert not any("non_idempotent" in line for line in lines)
    assert "proxy_connect_timeout 2s;" in lines and "proxy_read_timeout 30s;" in lines


def test_nginx_scale_out_lists_every_app_server():
    lines = config_lines(render("web/nginx-site.conf.j2", "web2", SCALED_HOSTS))
    servers = [l for l in lines if l.startswith("server 192.")]
    assert servers == ["server 192.168.56.31:8000 max_fails=2 fail_timeout=5s;",
                       "server 192.168.56.32:8000 max_fails=2 fail_timeout=5s;"]
    assert "add_header X-Served-By web2 always;" in lines


def test_index_page_names_its_host_and_loads_nothing_external():
    text = render("web/index.html.j2", "web1")
    assert "<title>halab: served by web1</title>" in text
    assert "web1" in text and "192.168.56.21" in text and "192.168.56.10" in text
    assert 'fetch("/api/notes"' in text
    for external in ("http://", "https://", "src=", "<link"):
        assert external not in text


# --- app server -------------------------------------------------------------------

def test_gunicorn_unit():
    lines = config_lines(render("app/gunicorn.service.j2", "app1"))
    assert "User=halab" in lines and "Group=halab" in lines
    assert "WorkingDirectory=/opt/halab-app" in lines
    assert "EnvironmentFile=/opt/halab-app/app.env" in lines
    assert "ExecStart=/usr/bin/gunicorn \\" in lines
    assert "--bind 192.168.56.31:8000 \\" in lines
    assert "--workers 3 \\" in lines
    assert "--access-logfile - \\" in lines and "notes_metrics:application" in lines
    assert "ExecReload=/bin/kill -s HUP $MAINPID" in lines
    assert "Restart=on-failure" in lines and "RestartSec=1" in lines
    assert "After=network-online.target" in lines
    for option in ("NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=full"):
        assert option in lines
    # Options that need more namespaces or kernel access than a Docker guest grants.
    for risky in ("ProtectHome", "PrivateDevices", "ProtectKernel", "PrivateNetwork",
                  "ProtectSystem=strict", "MemoryDenyWriteExecute", "SystemCallFilter"):
        assert not any(line.startswith(risky) for line in lines)


def test_app_env_file():
    lines = config_lines(render("app/app.env.j2", "app2", SCALED_HOSTS))
    assert lines == ["DB_HOST=192.168.56.41", "DB_PORT=3306", "DB_NAME=notes", "DB_USER=notes",
                     f"DB_PASSWORD={PASSWORD}", "APP_HOST_NAME=app2"]


def test_app_env_file_is_readable_by_the_app(tmp_path):
    import notes_app
    env_file = tmp_path / "app.env"
    env_file.write_text(render("app/app.env.j2", "app1"))
    values = notes_app.read_env_file(env_file)
    assert values["DB_PASSWORD"] == PASSWORD and values["APP_HOST_NAME"] == "app1"


# --- database ---------------------------------------------------------------------

def test_mariadb_listens_on_the_private_ip_only_and_is_durable():
    lines = config_lines(render("db/mariadb-lab.cnf.j2", "db1"))
    assert lines[0] == "[mysqld]"
    assert "bind-address = 192.168.56.41" in lines
    assert not any("0.0.0.0" in line for line in lines)
    assert "skip-name-resolve" in lines
    assert "innodb_flush_log_at_trx_commit = 1" in lines
    assert "innodb_buffer_pool_size = 256M" in lines
    assert "max_connections = 100" in lines


def test_mariadb_sizes_come_from_settings():
    lines = config_lines(render("db/mariadb-lab.cnf.j2", "db1",
                                overrides={"buffer_pool_mb": 64, "max_connections": 20}))
    assert "innodb_buffer_pool_size = 64M" in lines and "max_connections = 20" in lines


def sql_lines(text):
    return config_lines(text, comment="--")


def test_grants_create_alter_and_grant_for_every_app_host():
    lines = sql_lines(render("db/grants.sql.j2", "db1", SCALED_HOSTS))
    assert ("CREATE DATABASE IF NOT EXISTS `notes` CHARACTER SET utf8mb4 "
            "COLLATE utf8mb4_unicode_ci;") in lines
    for ip in ("192.168.56.31", "192.168.56.32"):
        account = f"'notes'@'{ip}'"
        assert f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{PASSWORD}';" in lines
        assert f"ALTER USER {account} IDENTIFIED BY '{PASSWORD}';" in lines
        assert (f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON `notes`.* "
                f"TO {account};") in lines
    assert not any("'%'" in line for line in lines)


def test_grants_secure_the_server():
    lines = sql_lines(render("db/grants.sql.j2", "db1"))
    assert "DELETE FROM mysql.global_priv WHERE User = '';" in lines
    assert "FLUSH PRIVILEGES;" in lines
    assert lines.index("FLUSH PRIVILEGES;") < lines.index(next(l for l in lines
                                                              if l.startswith("CREATE USER")))


def test_grants_never_touch_what_the_lab_did_not_create():
    """No database dropped, no other account than anonymous ones and the app user's."""
    lines = sql_lines(render("db/grants.sql.j2", "db1", SCALED_HOSTS))
    assert not [l for l in lines if l.upper().startswith(("DROP DATABASE", "DELETE FROM MYSQL.DB"))]
    deletes = [l for l in lines if l.upper().startswith("DELETE")]
    assert deletes == ["DELETE FROM mysql.global_priv WHERE User = '';"]
    assert "root" not in " ".join(lines)


def test_grants_drop_the_accounts_of_hosts_that_left_lab_yml():
    """The accounts not on an app host's IP are read and dropped when the file runs: the
    file itself depends on lab.yml alone, so it stays the same once they are gone."""
    text = render("db/grants.sql.j2", "db1", SCALED_HOSTS, overrides={"db_user": "shop"})
    lines = sql_lines(text)
    block = lines[lines.index("DELIMITER //"):lines.index("DELIMITER ;") + 1]
    assert block == [
        "DELIMITER //", "BEGIN NOT ATOMIC",
        "FOR account IN (SELECT Host FROM mysql.global_priv WHERE User = 'shop'",
        "AND Host NOT IN ('192.168.56.31', '192.168.56.32')) DO",
        "EXECUTE IMMEDIATE CONCAT('DROP USER ', QUOTE('shop'), '@', QUOTE(account.Host));",
        "END FOR;", "END //", "DELIMITER ;"]
    assert lines.index("DELIMITER ;") < lines.index(next(l for l in lines if l.startswith("CREATE USER")))
    assert "NOT IN ('192.168.56.31'))" in render("db/grants.sql.j2", "db1")


def test_grants_escape_the_password_and_the_database_wildcards():
    lines = sql_lines(render("db/grants.sql.j2", "db1", db_password="it's\\x",
                             overrides={"db_name": "lab_notes"}))
    assert "ALTER USER 'notes'@'192.168.56.31' IDENTIFIED BY 'it''s\\\\x';" in lines
    assert any("ON `lab\\_notes`.*" in line for line in lines)
    assert any("CREATE DATABASE IF NOT EXISTS `lab_notes`" in line for line in lines)


# --- settings ---------------------------------------------------------------------

def test_shared_facts_agree_across_roles_even_when_lab_yml_changes_them():
    lab = make_lab(BASE_HOSTS, {"db": {"db_name": "shop", "db_port": 3307}, "app": {"app_port": 9000}})
    settings = {name: role.settings(lab) for name, role in ROLES.items()}
    assert settings["web"]["app_port"] == settings["app"]["app_port"] == 9000
    for key in ("db_name", "db_user", "db_port"):
        assert settings["app"][key] == settings["db"][key]
    assert settings["app"]["db_name"] == "shop"


def test_a_setting_is_overridden_only_by_its_owner_and_only_if_it_exists():
    from fabfile.core.errors import LabError
    with pytest.raises(LabError, match="belongs to another role"):
        ROLES["web"].settings(make_lab(BASE_HOSTS, {"web": {"app_port": 1}}))
    with pytest.raises(LabError, match="unknown setting advert_intt"):
        ROLES["loadbalancer"].settings(make_lab(BASE_HOSTS, {"loadbalancer": {"advert_intt": 1}}))


def test_vrrp_timings_are_sane():
    lb = ROLES["loadbalancer"].settings(make_lab(BASE_HOSTS))
    assert 1 <= lb["priority_backup"] < lb["priority_master"] <= 254
    assert 0.01 <= lb["advert_int"] <= 40 and 1 <= lb["vrid"] <= 255
    assert isinstance(lb["script_interval"], int)   # keepalived's vrrp_script wants integers


def test_settings_are_a_new_dict_each_time():
    lab = make_lab(BASE_HOSTS)
    settings = ROLES["web"].settings(lab)
    settings["app_port"] = 1
    assert ROLES["web"].settings(lab)["app_port"] != 1


def test_prometheus_gives_up_its_user_namespace_in_a_container_only():
    """Docker's default seccomp and no CAP_SYS_ADMIN: Debian's PrivateUsers=true stops
    Prometheus at start (217/USER). Off in a container; a VM keeps Debian's unit as it is."""
    hosts = BASE_HOSTS + [Host("mon1", "monitor", "192.168.56.51")]
    contained = render("monitor/prometheus-sandbox.conf.j2", "mon1", hosts, in_container=True)
    assert "[Service]\nPrivateUsers=false\n" in contained
    assert [line for line in contained.splitlines() if line and not line.startswith("#")] == \
        ["[Service]", "PrivateUsers=false"], "nothing else of the unit's sandboxing is turned off"
    vm = render("monitor/prometheus-sandbox.conf.j2", "mon1", hosts, in_container=False)
    assert "PrivateUsers" not in vm and "[Service]" not in vm
