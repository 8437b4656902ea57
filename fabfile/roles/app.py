"""Gunicorn running the lab's WSGI app (app/notes_app.py) as an unprivileged user."""
from ..lab import PROJECT_DIR
from ..render import render
from ..steps import Await, Command, Directory, File, Packages, Service, User

APP_SOURCE = PROJECT_DIR / "app" / "notes_app.py"
UNIT = "/etc/systemd/system/halab-app.service"
# systemd-analyze wants a unit's real name: verify a copy of the candidate under it.
# An unknown key is only a warning (exit 0): fail on any line that names the unit file.
VERIFY_UNIT = ("d=$(mktemp -d) && cp {path} $d/halab-app.service && "
               "out=$(systemd-analyze verify --man=no $d/halab-app.service 2>&1); rc=$?; rm -rf $d; "
               "printf '%s\\n' \"$out\"; [ $rc -eq 0 ] && ! printf '%s\\n' \"$out\" | grep -q 'halab-app.service:'")
PARSE_PYTHON = "python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' {path}"


def steps(ctx):
    s = ctx.settings
    app_dir, user = s["app_dir"], s["app_user"]
    code, env_file = f"{app_dir}/notes_app.py", f"{app_dir}/app.env"
    db = ctx.lab.with_role("db")[0]
    source = APP_SOURCE.read_text()
    migrate = f"cd {app_dir} && runuser -u {user} -- python3 notes_app.py migrate --env-file {env_file}"
    return [
        Packages(("gunicorn", "python3-pymysql", "default-mysql-client")),
        User(user, app_dir),
        Directory(app_dir, "755"),
        File(code, lambda facts: source, validate=PARSE_PYTHON),
        File(env_file, lambda facts: render("app/app.env.j2", ctx.context(
            db=db, db_password=ctx.secrets["db_password"])), mode="640", group=s["app_group"], secret=True),
        File(UNIT, lambda facts: render("app/gunicorn.service.j2", ctx.context()),
             validate=VERIFY_UNIT),
        Await(("db",)),
        Command("migrate schema", migrate, check_command=f"{migrate} --check", reports="schema:",
                hint=f"is the database up? `invoke run --hosts {db.name} 'systemctl status mariadb'`"),
        Service("halab-app", reload_on=(code,), restart_on=(env_file, UNIT)),
    ]
