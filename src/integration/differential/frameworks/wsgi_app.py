"""A WSGI application on Python's standard library (wsgiref), used by gatehouse's
differential test suite as an upstream that reads requests the way WSGI/CGI servers do.

It answers every request with a JSON report of what IT read, and prints the same
report as one line on stdout (the test's ledger). Readings that differ from Node on
purpose, each the documented behaviour of real Python web stacks:

- headers come from the WSGI environ: `X_Foo` and `X-Foo` are both `HTTP_X_FOO`
  (wsgiref joins them with a comma, or keeps whichever came first);
- PATH_INFO is percent-decoded (wsgiref), and routing compares it case-sensitively;
- `X-Original-URL` / `X-Rewrite-URL` replace the routed path (as IIS-fronted PHP and
  older Symfony do), `X-HTTP-Method-Override` & co. replace the method (as the
  method-override middlewares do);
- the body is read like a lenient framework: Content-Encoding gzip/deflate is undone,
  a form body gives fields, JSON is decoded by `json.loads` on bytes (UTF-8 with or
  without BOM, UTF-16, UTF-32 detected) or with the declared charset, and `model` is
  looked up case-insensitively with the last match winning (as Go's encoding/json and
  .NET's case-insensitive binders do).

Usage: python3 wsgi_app.py  -> prints `LISTENING <port>` once bound to 127.0.0.1:0.
"""
import gzip
import json
import sys
import threading
import zlib
from socketserver import ThreadingMixIn
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

ROUTES = ("admin", "private", "internal", "login")
OVERRIDE_METHOD = ("HTTP_X_HTTP_METHOD_OVERRIDE", "HTTP_X_HTTP_METHOD", "HTTP_X_METHOD_OVERRIDE")
OVERRIDE_URL = ("HTTP_X_ORIGINAL_URL", "HTTP_X_REWRITE_URL")
out_lock = threading.Lock()


class Handler(WSGIRequestHandler):
    def get_environ(self):
        env = super().get_environ()
        # The raw request target, as Werkzeug/gunicorn expose it (REQUEST_URI/RAW_URI).
        env["RAW_URI"] = self.path
        return env

    def log_message(self, *args):
        pass


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def route_of(path):
    for r in ROUTES:
        if path == "/" + r or path.startswith("/" + r + "/"):
            return r
    return "public"


def read_chunked(stream):
    body = b""
    while True:
        line = stream.readline(65537)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return body
        body += stream.read(size)
        stream.readline(65537)


def read_body(env):
    stream = env["wsgi.input"]
    if "chunked" in env.get("HTTP_TRANSFER_ENCODING", "").lower():
        return read_chunked(stream)
    length = int(env.get("CONTENT_LENGTH") or "0")
    return stream.read(length) if length > 0 else b""


def parse_body(env, raw):
    """Returns (fields dict or None, error string or None)."""
    if not raw:
        return None, None
    try:
        coding = env.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if coding == "gzip":
            raw = gzip.decompress(raw)
        elif coding == "deflate":
            raw = zlib.decompress(raw)
        ctype = env.get("CONTENT_TYPE", "").lower()
        mime = ctype.split(";", 1)[0].strip()
        if mime == "application/x-www-form-urlencoded":
            text = raw.decode("utf-8", "replace")
            return {k.lower(): v for k, v in parse_qsl(text)}, None
        charset = None
        for param in ctype.split(";")[1:]:
            k, _, v = param.strip().partition("=")
            if k.strip() == "charset":
                charset = v.strip().strip('"')
        data = raw.decode(charset) if charset else raw
        pairs = json.loads(data, object_pairs_hook=lambda p: p)
        fields = {}
        if isinstance(pairs, list):
            for k, v in pairs:
                fields[k.lower()] = v
        return fields, None
    except Exception as err:  # a framework answers 400; the report says why
        return None, type(err).__name__


def app(env, start_response):
    raw_uri = env.get("RAW_URI", "")
    # PATH_INFO holds the percent-decoded bytes as latin-1 text (PEP 3333); the report
    # keeps that form, so every framework reports its decoded path byte for byte.
    path = env.get("PATH_INFO", "")
    for key in OVERRIDE_URL:
        if env.get(key):
            path = unquote_to_bytes(urlsplit(env[key]).path).decode("latin-1")
            break
    method = env.get("REQUEST_METHOD", "")
    effective = method
    for key in OVERRIDE_METHOD:
        if env.get(key):
            effective = env[key].strip().upper()
            break
    headers = {}
    for key, value in env.items():
        if key.startswith("HTTP_"):
            headers[key[5:].lower().replace("_", "-")] = value
    if env.get("CONTENT_TYPE"):
        headers["content-type"] = env["CONTENT_TYPE"]
    if env.get("CONTENT_LENGTH"):
        headers["content-length"] = env["CONTENT_LENGTH"]
    host_header = env.get("HTTP_HOST", "")
    host = host_header
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    elif ":" in host:
        host = host.rsplit(":", 1)[0]
    fields, body_error = parse_body(env, read_body(env))
    body = None
    if fields is not None:
        body = {"model": fields["model"]} if "model" in fields else {}
    report = {
        "fw": "python",
        "route": route_of(path),
        "raw_target": raw_uri,
        "path": path,
        "host": host,
        "host_header": host_header,
        "method": method,
        "effective_method": effective,
        "request_id": env.get("HTTP_X_REQUEST_ID", ""),
        "headers": headers,
        # The client address as apps behind a proxy take it (None: no X-Real-IP).
        "ip": env.get("HTTP_X_REAL_IP"),
        "body": body,
        "body_error": body_error,
    }
    line = json.dumps(report, ensure_ascii=True)
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    payload = line.encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def main():
    server = Server(("127.0.0.1", 0), Handler)
    server.set_app(app)
    sys.stdout.write("LISTENING %d\n" % server.server_address[1])
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
