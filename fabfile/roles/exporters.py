"""The monitoring client every host gets, whatever its role: Prometheus' node exporter, and
the exporter of the role's own service (HAProxy's built-in endpoint, the Nginx exporter,
the MySQL exporter, the app's own /metrics). Each listens on the host's private address
only; when the lab has a monitoring server, only that server may reach them (`inbound`).

Debian's exporter packages would start at install listening on every address: the
Packages step installs with a policy-rc.d that forbids starting (converge/steps.py), so
the first start is the Service step below, with the defaults file already written."""
from ..converge.steps import Command, Directory, File, Packages, Service, Template
from ..remote import facts as F

NODE_PORT = 9100             # Prometheus' registered default ports
NGINX_PORT = 9113
MYSQLD_PORT = 9104
SERVICE_NAMES = {NODE_PORT: "node exporter", NGINX_PORT: "Nginx exporter", MYSQLD_PORT: "MySQL exporter"}
STUB_STATUS_PORT = 8080      # Nginx's stub_status on 127.0.0.1, read by the Nginx exporter
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # keepalived's notify script writes VRRP state here
MYSQLD_MY_CNF = "/var/lib/prometheus/.my.cnf"       # the MySQL exporter's account, mode 0600
MYSQLD_GRANTS = "/etc/mysql/halab-exporter-grants.sql"
MYSQLD_USER = "halab_exporter"
# The node exporter's collectors: what the saved queries and alerts read (CPU, memory,
# disk I/O, filesystems, network, the VRRP textfile), nothing that walks /proc per process.
NODE_COLLECTORS = ("cpu", "diskstats", "filesystem", "loadavg", "meminfo", "netdev", "stat",
                   "textfile", "time", "uname", "vmstat")


def node_args(host):
    collectors = " ".join(f"--collector.{c}" for c in NODE_COLLECTORS)
    return (f"--web.listen-address={host.ip}:{NODE_PORT} --collector.disable-defaults {collectors} "
            f"--collector.textfile.directory={TEXTFILE_DIR}")


def packages(role):
    """The exporters' packages on a host of `role`, installed with the role's own."""
    return ("prometheus-node-exporter",) + {
        "web": ("prometheus-nginx-exporter",),
        "app": ("python3-prometheus-client",),
        "db": ("prometheus-mysqld-exporter",),
    }.get(role, ())


def defaults_file(unit, args):
    path = f"/etc/default/{unit}"
    return path, File(path, f"# {path}: written by halab, edits are overwritten.\nARGS=\"{args}\"\n")


def exporter_service(unit, args):
    """The defaults file (listen address first), then the service, restarted when it changes."""
    path, step = defaults_file(unit, args)
    return [step, Service(unit, restart_on=(path,), can_reload=False)]


def exporter_account_hosts():
    return F.sql_value(f"SELECT Host FROM mysql.global_priv WHERE User='{MYSQLD_USER}'")


def mysqld_steps(ctx):
    """The MySQL exporter's own account: localhost only, the privileges it reads with."""
    password = ctx.secrets["exporter_db_password"]
    account = exporter_account_hosts()
    sql = (f"-- The MySQL exporter's account on {ctx.host.name}: written by halab.\n"
           f"CREATE USER IF NOT EXISTS '{MYSQLD_USER}'@'localhost' IDENTIFIED BY '{password}' "
           f"WITH MAX_USER_CONNECTIONS 3;\n"
           f"ALTER USER '{MYSQLD_USER}'@'localhost' IDENTIFIED BY '{password}' WITH MAX_USER_CONNECTIONS 3;\n"
           f"GRANT PROCESS, REPLICATION CLIENT ON *.* TO '{MYSQLD_USER}'@'localhost';\n"
           f"GRANT SELECT ON performance_schema.* TO '{MYSQLD_USER}'@'localhost';\n")
    my_cnf = (f"[client]\nuser={MYSQLD_USER}\npassword={password}\nsocket=/run/mysqld/mysqld.sock\n")

    def account_needed(facts, changed_paths):
        return MYSQLD_GRANTS in changed_paths or F.value(facts, account) != "localhost"

    return [
        File(MYSQLD_GRANTS, sql, mode="600", secret=True),
        Command("exporter account", f"mariadb --batch < {MYSQLD_GRANTS}", when=account_needed, needs=(account,)),
        File(MYSQLD_MY_CNF, my_cnf, mode="600", owner="prometheus", group="prometheus", secret=True),
        *exporter_service("prometheus-mysqld-exporter",
                          f"--config.my-cnf={MYSQLD_MY_CNF} --web.listen-address={ctx.host.ip}:{MYSQLD_PORT}"),
    ]


def steps(ctx):
    """The exporters' steps, after the role's own (the service they watch runs by then)."""
    host = ctx.host
    own = [Directory(TEXTFILE_DIR), *exporter_service("prometheus-node-exporter", node_args(host))]
    if host.role == "web":
        own += exporter_service("prometheus-nginx-exporter",
                                f"-nginx.scrape-uri=http://127.0.0.1:{STUB_STATUS_PORT}/stub_status "
                                f"-web.listen-address={host.ip}:{NGINX_PORT}")
    elif host.role == "db":
        own += mysqld_steps(ctx)
    return own


def with_exporters(ctx, steps_):
    """A host's steps with the exporters added: their packages in the host's first
    Packages step (one apt-get run), their steps at the end."""
    extra = packages(ctx.host.role)
    merged, added = [], False
    for step in steps_:
        if isinstance(step, Packages) and not added:
            step = Packages(tuple(dict.fromkeys(step.names + extra)))
            added = True
        merged.append(step)
    if not added:
        merged.insert(0, Packages(extra))
    return merged + steps(ctx)


def services(role):
    return ("prometheus-node-exporter",) + {"web": ("prometheus-nginx-exporter",),
                                           "db": ("prometheus-mysqld-exporter",)}.get(role, ())


def scrape_targets(lab, settings_of):
    """[(job, host, address)] that a monitoring server scrapes, one per exporter, read from
    lab.yml: a web2 or app2 added there is scraped at the next provision.
    `settings_of(role)` gives a role's settings (the HAProxy stats port, the app port)."""
    targets = []
    for host in lab.hosts:
        targets.append(("node", host, f"{host.ip}:{NODE_PORT}"))
        if host.role == "loadbalancer":
            targets.append(("haproxy", host, f"{host.ip}:{settings_of('loadbalancer')['stats_port']}"))
        elif host.role == "web":
            targets.append(("nginx", host, f"{host.ip}:{NGINX_PORT}"))
        elif host.role == "app":
            targets.append(("app", host, f"{host.ip}:{settings_of('app')['app_port']}"))
        elif host.role == "db":
            targets.append(("mysqld", host, f"{host.ip}:{MYSQLD_PORT}"))
    return targets


def listeners(host):
    """[(address, port)] the exporters of `host` listen on (the app's and HAProxy's
    metrics share their service's port)."""
    ports = {"web": (NGINX_PORT,), "db": (MYSQLD_PORT,)}.get(host.role, ())
    return [(host.ip, NODE_PORT)] + [(host.ip, port) for port in ports]


def inbound(lab, host, settings_of):
    """[Inbound] the exporters of `host` need: their ports, from the monitoring server
    only. Nothing when the lab has no monitoring server: nobody scrapes."""
    from .base import Inbound  # base imports this module
    monitors = tuple(h.ip for h in lab.with_role("monitor"))
    if not monitors:
        return []
    names = {"node": "node exporter", "haproxy": "HAProxy metrics", "nginx": "Nginx exporter",
             "app": "app metrics", "mysqld": "MySQL exporter"}
    return [Inbound(names[job], "tcp", int(address.rsplit(":", 1)[1]), monitors)
            for job, target, address in scrape_targets(lab, settings_of) if target == host]
