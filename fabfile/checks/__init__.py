"""checks: verify (the lab from inside and through the VIP), status, doctor (this
machine), network safety, and the HTTP client used from this machine."""
