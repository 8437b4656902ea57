"""A small HTTP client for requests from this machine to the lab's VIP; every call has a
short timeout, and callers check the route first (checks.netsafety.ensure_local_route)."""
import http.client
import json
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def request(ip, method, path, payload=None, timeout=2.0, port=80):
    connection = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()
