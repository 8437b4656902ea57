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


# mariadbd parses the candidate with every other option file and exits: an unknown option
# exits non-zero, a bad engine value only prints [ERROR] (MariaDB 10.11 has no working
# --validate-config: it starts the server and waits for the live one's lock).
VALIDATE_CONF = ("out=$(mariadbd --defaults-extra-file={path} --user=mysql --help --verbose 2>&1 >/dev/null); "
                 "rc=$?; printf '%s\\n' \"$out\" | grep -v Warning; "
                 "[ $rc -eq 0 ] && ! printf '%s\\n' \"$out\" | grep -q '\\[ERROR\\]'")
