"""A stand-in for the Hugging Face Hub's upload routes on 127.0.0.1 (these machines have no internet): it answers
what `HfApi.create_repo` and `HfApi.create_commit` ask (every file uploaded inline, "regular" mode) and records
every request, so a test sees exactly which repository and which files a real Hub would have received.

Standard library only, in a thread of this process, answering in milliseconds.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def commit_files(self) -> dict[str, bytes]:
        """A commit's files (its NDJSON lines of key "file"), by path in the repository, decoded."""
        files = {}
        for line in self.body.decode("utf-8").splitlines():
            entry = json.loads(line)
            if entry["key"] == "file":
                files[entry["value"]["path"]] = base64.b64decode(entry["value"]["content"])
        return files


class FakeHub:
    """`with FakeHub() as hub:` serves at `hub.url` until the block ends; `hub.log` holds the requests;
    `hub.refuse_create = 403` makes creating a repository fail with that status."""

    def __init__(self) -> None:
        self.log: list[Recorded] = []
        self.refuse_create: Optional[int] = None
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> bytes:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.log.append(Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                        body))
                return body

            def _answer(self, status: int, data: Any) -> None:
                raw = json.dumps(data).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self._record()
                if self.path == "/api/repos/create":
                    if hub.refuse_create:
                        self._answer(hub.refuse_create, {"error": "You don't have the rights to create this model"})
                        return
                    asked = json.loads(body)
                    self._answer(200, {"url": f"{hub.url}/{asked['organization']}/{asked['name']}"})
                elif "/preupload/" in self.path:
                    files = json.loads(body)["files"]
                    self._answer(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                 for f in files]})
                elif "/commit/" in self.path:
                    repo = self.path.removeprefix("/api/models/").split("/commit/")[0]
                    self._answer(200, {"commitUrl": f"{hub.url}/{repo}/commit/{'0' * 40}", "commitOid": "0" * 40,
                                       "pullRequestUrl": None})
                else:  # /api/validate-yaml (a README's front matter) and anything else: fine
                    self._answer(200, {})

            def do_GET(self) -> None:  # noqa: N802
                self._record()
                self._answer(404, {"error": "not found"})

            def do_HEAD(self) -> None:  # noqa: N802 - the reachability probe
                self._record()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)

    def requests(self, path: str) -> list[Recorded]:
        return [request for request in self.log if request.path == path]

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
