"""HTTP over moad's Unix socket for the bench scripts, and a percentile."""
import http.client
import json
import socket


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path_ = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path_)
        self.sock = s


def request(sock, method, path, body=None, timeout=60):
    """One request on a fresh connection: (status, body bytes)."""
    c = UnixConn(sock, timeout)
    h = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def pct(v, p):
    """The p-th percentile (nearest rank) of @v, NaN if empty."""
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))] if v else float("nan")
