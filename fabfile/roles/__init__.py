"""One module per server kind; each returns the ordered steps that make a host of it."""
from . import app, db, loadbalancer, web

ROLE_MODULES = {"loadbalancer": loadbalancer, "web": web, "app": app, "db": db}
