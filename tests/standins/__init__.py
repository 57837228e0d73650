"""Serve a provider stand-in (a WSGI app) on loopback in a thread and record what it receives."""
import io
import threading
from dataclasses import dataclass, field

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


class QuietHandler(WSGIRequestHandler):
    """Keep the access log out of test output; the recorded requests say more."""

    def log_request(self, *args, **kwargs):
        pass


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict
    form: dict
    json: object
    headers: dict
    auth_user: str = None  # HTTP Basic user name, e.g. the Twilio AccountSid
    auth_scheme: str = None  # "basic", "bearer", "app", ... lower-cased
    body: bytes = field(default=b"", repr=False)


class StandIn:
    """Run `app` on 127.0.0.1 on a free port until `stop()`; usable as a context manager."""

    def __init__(self, app, host="127.0.0.1", ssl_context=None):
        self.app = app
        self.down = False  # True: answer every request 503, as a provider outage would
        self._requests = []
        self._lock = threading.Lock()
        # port 0 lets the kernel pick a free port, so parallel test runs never collide
        self._server = make_server(host, 0, self._wsgi, threaded=True,
                                   request_handler=QuietHandler, ssl_context=ssl_context)
        scheme = "https" if ssl_context else "http"
        self.url = "%s://%s:%d" % (scheme, host, self._server.server_port)
        # A short poll interval keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def requests(self):
        """A snapshot of the recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self):
        """Forget recorded requests and bring the provider back up."""
        with self._lock:
            self._requests.clear()
        self.down = False

    def stop(self):
        """Shut the server down; later connections are refused."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _wsgi(self, environ, start_response):
        # Read the body once, record it, then hand the app a fresh stream over the same bytes.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            body = environ["wsgi.input"].read(length)
        elif environ.get("wsgi.input_terminated"):  # chunked upload: the server ends the stream
            body = environ["wsgi.input"].read()
        else:
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        self._record(environ, body)
        environ["wsgi.input"] = io.BytesIO(body)
        if self.down:
            return Response("Service Unavailable", 503)(environ, start_response)
        return self.app(environ, start_response)

    def _record(self, environ, body):
        request = Request(environ)
        auth = request.authorization
        scheme = request.headers.get("Authorization", "").partition(" ")[0].lower() or None
        entry = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.args.to_dict(),
            form=request.form.to_dict(),
            json=request.get_json(silent=True),
            headers=dict(request.headers),
            auth_user=auth.username if auth is not None and auth.type == "basic" else None,
            auth_scheme=scheme,
            body=body,
        )
        with self._lock:
            self._requests.append(entry)
