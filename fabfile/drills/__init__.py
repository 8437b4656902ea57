"""drills: failover scenarios as a table (fault, undo, expected effect), the VIP sampler,
the open-loop client, and the runner that measures each drill."""
