"""MariaDB (Debian's MySQL), bound to the private IP, one account per app host."""
from ..render import render
from ..steps import Command, File, Packages, Service

CONF = "/etc/mysql/mariadb.conf.d/60-halab.cnf"
GRANTS = "/etc/mysql/halab-grants.sql"


def steps(ctx):
    s = ctx.settings
    app_hosts = len(ctx.lab.with_role("app"))
    account_count = f"mariadb -N -e \"SELECT COUNT(*) FROM mysql.global_priv WHERE User='{s['db_user']}'\""

    def grants_needed(facts, changed_paths):
        return GRANTS in changed_paths or facts.get("db_accounts") != str(app_hosts)

    return [
        Packages(("default-mysql-server",)),
        File(CONF, lambda facts: render("db/mariadb-lab.cnf.j2", ctx.context()),
             validate=VALIDATE_CONF),
        Service("mariadb", restart_on=(CONF,)),
        File(GRANTS, lambda facts: render("db/grants.sql.j2", ctx.context(
            db_password=ctx.secrets["db_password"])), mode="600", secret=True),
        Command("database and grants", f"mariadb --batch < {GRANTS}", when=grants_needed,
                queries={"db_accounts": account_count}),
    ]


# mariadbd parses the candidate with every other option file and exits: an unknown or
# malformed option fails (--validate-config would start InnoDB and wait for the live lock).
VALIDATE_CONF = "mariadbd --defaults-extra-file={path} --user=mysql --help --verbose >/dev/null"
