"""Role defaults: the numbers behind every configuration file of the lab.

Templates receive the dict of their host's role as `settings` and never hard-code
these values. Facts shared by two roles (the app port, the database name) are
defined once below and referenced by both dicts, so they cannot drift apart.

The timings aim at fast failover without flapping on a busy 2-core machine that
runs all five hosts at once.
"""

APP_PORT = 8000        # Gunicorn's port on the app hosts; Nginx's upstream points at it
DB_PORT = 3306         # MariaDB's standard port
DB_NAME = "notes"      # no "_" or "%": those are wildcards in a GRANT's database name
DB_USER = "notes"      # the app's own account; never root

LOADBALANCER = {
    # HAProxy
    "stats_port": 8404,           # HAProxy's customary stats port; bound on the private IP only
    "check_inter_ms": 500,        # health-check a web server twice a second...
    "check_fall": 2,              # ...and take it out after 2 failures (~1 s)...
    "check_rise": 2,              # ...and back in after 2 successes: one lucky answer is not enough
    "timeout_connect_ms": 2000,   # a LAN connect takes < 1 ms; 2 s means "that server is gone"
    "timeout_client_ms": 30000,   # idle client (browser keep-alive, slow upload)
    "timeout_server_ms": 30000,   # must cover the slowest app answer (Gunicorn kills at 30 s)
    "timeout_http_request_ms": 10000,  # whole request headers within 10 s (slowloris guard)
    # keepalived (VRRP)
    "vrid": 51,                   # virtual router id 1-255, unique per network segment
    "advert_int": 0.1,            # VRRPv3 adverts every 100 ms: the backup declares the master
                                  # dead after 3 x 0.1 + skew ~= 0.36 s of silence
    "priority_master": 150,       # the higher priority wins the election (1-254)...
    "priority_backup": 100,       # ...and the gap leaves room for weights if you add them
    "preempt": True,              # the MASTER takes the VIP back when it recovers
    "garp_master_delay": 1,       # a second burst of gratuitous ARPs 1 s after becoming MASTER
    "garp_master_repeat": 3,      # 3 gratuitous ARPs per burst: one lost packet changes nothing
    "script_interval": 1,         # run chk_haproxy every second (keepalived wants whole seconds)
    "script_fall": 2,             # 2 failed checks in a row -> FAULT: one slow answer is no failure
    "script_rise": 2,             # 2 good checks in a row -> healthy again
    "script_timeout": 1,          # an HAProxy that needs more than 1 s to answer locally is sick
    "process_delay": 0.1,         # HAProxy must stay gone 100 ms before the node goes to FAULT
                                  # (a reload keeps the master process, so it never trips this)
    "haproxy_state_file": "/run/haproxy-state",  # 0 HAProxy runs, 1 it stopped: systemd writes,
                                  # keepalived watches (track_file), no polling delay
    "track_process": True,        # watch HAProxy through the kernel's process events. Set it
                                  # False on container guests (`systemd-detect-virt --container`
                                  # succeeds): the event connector lives only in the host's
                                  # network namespace, and keepalived would stay in FAULT
}

WEB = {
    "app_port": APP_PORT,
    "proxy_connect_timeout_s": 2,   # app host unreachable -> try the next one after 2 s
    "proxy_read_timeout_s": 30,     # matches Gunicorn's worker timeout
    "upstream_max_fails": 2,        # 2 failed attempts...
    "upstream_fail_timeout_s": 5,   # ...within 5 s park that app server for 5 s
    "upstream_keepalive": 16,       # idle connections Nginx may keep per worker to the app tier
}

APP = {
    "app_port": APP_PORT,
    "app_user": "halab",            # an unprivileged system user runs the app
    "app_group": "halab",
    "app_dir": "/opt/halab-app",    # notes_app.py and app.env live here
    "workers": 3,                   # sync workers = concurrent requests; 2 x CPUs + 1 for 1 CPU
    "worker_timeout_s": 30,         # Gunicorn kills a worker stuck longer than this
    "graceful_timeout_s": 10,       # on reload/stop, finish in-flight requests within 10 s
    "db_port": DB_PORT,
    "db_name": DB_NAME,
    "db_user": DB_USER,
}

DB = {
    "db_port": DB_PORT,
    "db_name": DB_NAME,
    "db_user": DB_USER,
    "buffer_pool_mb": 256,          # InnoDB cache; a quarter of db1's 1 GiB leaves room for the OS
    "max_connections": 100,         # the app opens one connection per request; 100 is plenty here
}

# The systemd units each role runs; `verify` and `status` check them, `logs` shows them.
ROLE_SERVICES = {
    "loadbalancer": ("haproxy", "keepalived"),
    "web": ("nginx",),
    "app": ("halab-app",),
    "db": ("mariadb",),
}

ROLE_SETTINGS = {
    "loadbalancer": LOADBALANCER,
    "web": WEB,
    "app": APP,
    "db": DB,
}


def settings_for(role):
    """A copy of the role's defaults, safe for the caller to override."""
    return dict(ROLE_SETTINGS[role])
