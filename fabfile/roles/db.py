"""The database: MariaDB (Debian's MySQL), bound to the private IP, one account per app
host, scoped to that host's address."""
from dataclasses import replace

from ..converge.steps import Command, Packages, Service, Template
from ..remote import facts as F
from .base import Check, Inbound, Role, register

CONF = "/etc/mysql/mariadb.conf.d/60-halab.cnf"
GRANTS = "/etc/mysql/halab-grants.sql"

DEFAULTS = {
    "db_port": 3306,                # MariaDB's standard port
    "db_name": "notes",             # no "_" or "%": those are wildcards in a GRANT's database name
    "db_user": "notes",             # the app's own account; never root
    "buffer_pool_mb": 256,          # InnoDB cache; a quarter of db1's 1 GiB leaves room for the OS
    "max_connections": 100,         # the app opens one connection per request; 100 is plenty here
}

# mariadbd parses the candidate with every other option file and exits: an unknown option
# exits non-zero, a bad engine value only prints [ERROR] (MariaDB 10.11 has no working
# --validate-config: it starts the server and waits for the live one's lock).
VALIDATE_CONF = ("out=$(mariadbd --defaults-extra-file={path} --user=mysql --help --verbose 2>&1 >/dev/null); "
                 "rc=$?; printf '%s\\n' \"$out\" | grep -v Warning; "
                 "[ $rc -eq 0 ] && ! printf '%s\\n' \"$out\" | grep -q '\\[ERROR\\]'")


def notes_table(settings):
    return f"{settings['db_name']}.notes"


def account_hosts(settings):
    """The fact: the hosts of the app user's accounts (each app host's IP when converged;
    empty when MariaDB does not answer)."""
    sql = f"SELECT Host FROM mysql.global_priv WHERE User='{settings['db_user']}'"
    return replace(F.sql_value(sql), parse=F.parse_words)


def wanted_account_hosts(lab):
    """One account per app host of lab.yml, bound to its private IP."""
    return sorted(h.ip for h in lab.with_role("app"))


class Database(Role):
    name = "db"
    summary = "MariaDB on the private IP; the notes database; an account per app host"
    defaults = DEFAULTS
    services = ("mariadb",)
    packages = ("default-mysql-server",)

    def listeners(self, host, settings):
        return [(host.ip, settings["db_port"])]

    def inbound(self, lab, host, settings):
        return [Inbound("MariaDB", "tcp", settings["db_port"], tuple(h.ip for h in lab.with_role("app")))]

    def check_facts(self, lab, host):
        return [*super().check_facts(lab, host), account_hosts(self.settings(lab))]

    def checks(self, lab, host, facts):
        checks = super().checks(lab, host, facts)
        settings = self.settings(lab)
        have = sorted(F.value(facts, account_hosts(settings), ()))
        wanted = wanted_account_hosts(lab)
        missing = [ip for ip in wanted if ip not in have]
        stale = [ip for ip in have if ip not in wanted]
        problems = ([f"missing for {', '.join(missing)}"] if missing else []) + \
                   ([f"not an app host: {', '.join(stale)}"] if stale else [])
        checks.append(Check(f"{settings['db_user']} accounts: one per app host, no other", host.name,
                            not problems, "; ".join(problems) if problems else ", ".join(have)))
        return checks

    def steps(self, ctx):
        settings = ctx.settings
        wanted = wanted_account_hosts(ctx.lab)
        accounts = account_hosts(settings)

        # The grants file says what the accounts must be (lab.yml alone: it stays the same
        # once they are); it runs when it changed or the accounts differ from lab.yml's
        # app hosts (one added, one that left lab.yml, MariaDB not answering).
        def grants_needed(facts, changed_paths):
            return GRANTS in changed_paths or sorted(F.value(facts, accounts, ())) != wanted

        return [
            Packages(self.packages),
            Template(CONF, template="db/mariadb-lab.cnf.j2", context=ctx.template_context(),
                     validate=VALIDATE_CONF),
            Service("mariadb", restart_on=(CONF,)),
            Template(GRANTS, template="db/grants.sql.j2",
                     context=ctx.template_context(db_password=ctx.secrets["db_password"]),
                     mode="600", secret=True),
            Command("database and grants", f"mariadb --batch < {GRANTS}", when=grants_needed, needs=(accounts,)),
        ]


DB = register(Database())
