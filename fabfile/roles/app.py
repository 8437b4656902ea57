"""The application servers: Gunicorn running the lab's WSGI app (app/notes_app.py) as an
unprivileged user, on the private IP, against the database host."""
from ..core.config import PROJECT_DIR
from ..converge.steps import Await, Command, Directory, File, Packages, Service, Template, User
from .base import Inbound, Role, register
from .db import DB

APP_SOURCE = PROJECT_DIR / "app" / "notes_app.py"
METRICS_SOURCE = PROJECT_DIR / "app" / "notes_metrics.py"  # what Gunicorn serves: the app, counted
UNIT = "/etc/systemd/system/halab-app.service"
# systemd-analyze wants a unit's real name: verify a copy of the candidate under it.
# An unknown key is only a warning (exit 0): fail on any line that names the unit file.
VERIFY_UNIT = ("d=$(mktemp -d) && cp {path} $d/halab-app.service && "
               "out=$(systemd-analyze verify --man=no $d/halab-app.service 2>&1); rc=$?; rm -rf $d; "
               "printf '%s\\n' \"$out\"; [ $rc -eq 0 ] && ! printf '%s\\n' \"$out\" | grep -q 'halab-app.service:'")
PARSE_PYTHON = "python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' {path}"

DEFAULTS = {
    "app_port": 8000,               # Gunicorn's port; Nginx's upstream points at it
    "app_user": "halab",            # an unprivileged system user runs the app
    "app_group": "halab",
    "app_dir": "/opt/halab-app",    # notes_app.py and app.env live here
    "workers": 3,                   # sync workers = concurrent requests; 2 x CPUs + 1 for 1 CPU
    "worker_timeout_s": 30,         # Gunicorn kills a worker stuck longer than this
    "graceful_timeout_s": 10,       # on reload/stop, finish in-flight requests within 10 s
    # db_port, db_name, db_user: the db role's own (see App.shared)
}


class App(Role):
    name = "app"
    summary = "Gunicorn serving the notes app on the private IP"
    defaults = DEFAULTS
    services = ("halab-app",)
    packages = ("gunicorn", "python3-pymysql", "default-mysql-client")

    def shared(self, lab):
        db = DB.settings(lab)
        return {key: db[key] for key in ("db_port", "db_name", "db_user")}

    def listeners(self, host, settings):
        return [(host.ip, settings["app_port"])]

    def inbound(self, lab, host, settings):
        return [Inbound("Gunicorn", "tcp", settings["app_port"], tuple(h.ip for h in lab.with_role("web")))]

    def steps(self, ctx):
        s = ctx.settings
        app_dir, user = s["app_dir"], s["app_user"]
        code, env_file = f"{app_dir}/notes_app.py", f"{app_dir}/app.env"
        metrics = f"{app_dir}/notes_metrics.py"
        db = ctx.lab.with_role("db")[0]
        migrate = f"cd {app_dir} && runuser -u {user} -- python3 notes_app.py migrate --env-file {env_file}"
        return [
            Packages(self.packages),
            User(user, app_dir),
            Directory(app_dir, "755"),
            File(code, APP_SOURCE.read_text(), validate=PARSE_PYTHON),
            File(metrics, METRICS_SOURCE.read_text(), validate=PARSE_PYTHON),
            Template(env_file, template="app/app.env.j2",
                     context=ctx.template_context(db=db, db_password=ctx.secrets["db_password"]),
                     mode="640", group=s["app_group"], secret=True),
            Template(UNIT, template="app/gunicorn.service.j2", context=ctx.template_context(),
                     validate=VERIFY_UNIT),
            Await(("db",)),
            Command("migrate schema", migrate, check_command=f"{migrate} --check", reports="schema:",
                    hint=f"is the database up? `invoke run --hosts {db.name} 'systemctl status mariadb'`"),
            Service("halab-app", reload_on=(code, metrics), restart_on=(env_file, UNIT)),
        ]


APP = register(App())
