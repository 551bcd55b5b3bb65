"""A small in-memory stand-in for the Hugging Face Hub's HTTP API, for the round-trip test.

It answers exactly the routes that huggingface_hub's ``create_repo``, ``upload_folder`` (preupload, then
one NDJSON commit), ``repo_info``, ``list_repo_tree``, ``hf_hub_download`` and ``snapshot_download`` call for
model repos, so those run their real HTTP code against it (``HF_ENDPOINT=FakeHub.url``)::

    POST /api/repos/create                               create a repo (409 if it exists)
    POST /api/models/{ns}/{name}/preupload/{rev}         every file: uploadMode "regular"
    POST /api/models/{ns}/{name}/commit/{rev}            NDJSON: header, file (base64), deletedFile/Folder
    GET  /api/models/{ns}/{name}[/revision/{rev}]        repo info: sha and siblings
    GET  /api/models/{ns}/{name}/tree/{rev}[/{path}]     file and folder listing (?recursive=true)
    HEAD, GET /{ns}/{name}/resolve/{rev}/{path}          a file, with X-Repo-Commit, ETag, Content-Length
    POST /api/validate-yaml                              README.md front matter must be a YAML mapping
    GET  /api/agent-harnesses                            (fetched by the client's user-agent code) empty
    OPTIONS (any path)                                   a CORS preflight: 204, GET and HEAD from any origin

Every answer carries CORS headers (``Access-Control-Allow-Origin: *``, the Hub's headers exposed to scripts), as the
Hub sends them, so a page on another origin (the static site's ``?model=NAMESPACE/NAME``) can read the files.

Files are kept as git blobs in memory (ETag and oid: the git blob SHA-1, as the Hub gives for regular files);
each commit is a full snapshot, so a commit hash resolves as well as ``main``. Errors carry the Hub's
``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound) so the client raises its usual exceptions.
Every request is recorded in ``FakeHub.requests``; a route it does not know answers 404 and is listed in
``FakeHub.unknown``.

Not covered, on purpose (the client never takes these paths here, or gets a clear 4xx): LFS and Xet
transfers (preupload never answers "lfs", so hf_xet uploads nothing; a commit with an ``lfsFile`` gets 400;
no ``X-Xet-Hash`` header, so downloads are plain HTTP), authentication and permissions (a write needs some
``Authorization: Bearer`` header, whose value is not checked; nothing is private or gated), branches, tags
and pull requests (only ``main`` is a ref; ``create_pr`` gets 400), ``parentCommit`` checks, ``.gitignore``
rules, tree pagination, redirects, Range requests, dataset and Space repos, and persistence. For the browser: the
real Hub redirects a resolve URL of an LFS or Xet file to its CDN or the cas bridge, whose own CORS headers the page
then depends on; here every file is answered directly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
# what a script on another origin may do and read (the Hub's own CORS answer names these too)
CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "Content-Length, ETag, X-Repo-Commit, X-Error-Code, X-Error-Message"}
PREFLIGHT = {"Access-Control-Allow-Methods": "GET, HEAD, OPTIONS", "Access-Control-Allow-Headers": "*",
             "Access-Control-Max-Age": "600"}


def git_blob_sha1(data: bytes) -> str:
    """The id git (and the Hub) gives a regular file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def validate_yaml(card: str) -> tuple[int, dict, dict]:
    """What the Hub checks before an upload with a README.md: front matter, if any, is a YAML mapping."""
    m = re.match(r"---\n(.*?)\n---\n", card, re.S)
    try:
        meta = yaml.safe_load(m[1]) if m else {}
    except yaml.YAMLError as e:
        return 400, {}, {"errors": [{"message": f"invalid YAML: {e}"}], "warnings": []}
    if not isinstance(meta, dict):
        return 400, {}, {"errors": [{"message": "metadata must be a YAML mapping"}], "warnings": []}
    return 200, {}, {"errors": [], "warnings": [] if m else [{"message": "empty or missing yaml metadata"}]}


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None, **body):
        super().__init__(message)
        self.status, self.code, self.commit, self.body = status, code, commit, body


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit oid -> {path: content}
    main: str = ""

    def commit(self, files: dict[str, bytes], message: str) -> str:
        blobs = "".join(f"{p}:{git_blob_sha1(d)}\n" for p, d in sorted(files.items()))
        oid = hashlib.sha1(f"{self.main}\n{message}\n{blobs}".encode()).hexdigest()
        self.commits[oid], self.main = dict(files), oid
        return oid

    def snapshot(self, rev: str) -> tuple[str, dict[str, bytes]]:
        oid = self.main if rev == "main" else rev
        if oid not in self.commits:
            raise HubError(404, f"Revision {rev!r} not found (this fake hub knows 'main' and commit hashes)",
                           "RevisionNotFound")
        return oid, self.commits[oid]


class FakeHub:
    """``with FakeHub() as hub:`` serves on 127.0.0.1 (a free port) until the block ends."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.unknown: list[str] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(_Handler):
            owner = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-hub", daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository {repo_id!r} not found", "RepoNotFound")
        return self.repos[repo_id]

    # ------------------------------------------------------------------ routes: (status, headers, body)
    def create(self, body: dict) -> tuple[int, dict, dict]:
        if body.get("type", "model") != "model":
            raise HubError(400, "this fake hub holds model repos only")
        repo_id = f"{body['organization']}/{body['name']}"
        if repo_id in self.repos:
            raise HubError(409, "You already created this model repo", url=f"{self.url}/{repo_id}")
        self.repos[repo_id] = Repo()
        self.repos[repo_id].commit({}, "initial commit")
        return 200, {}, {"url": f"{self.url}/{repo_id}", "name": repo_id}

    def preupload(self, repo_id: str, rev: str, body: dict, query: dict) -> tuple[int, dict, dict]:
        if query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by this fake hub")
        _, files = self.repo(repo_id).snapshot(rev)
        return 200, {}, {"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_sha1(files[f["path"]]) if f["path"] in files else None} for f in body["files"]]}

    def commit(self, repo_id: str, rev: str, lines: list[dict], query: dict) -> tuple[int, dict, dict]:
        if query.get("create_pr") or rev != "main":
            raise HubError(400, "this fake hub commits to 'main' only (no branches or pull requests)")
        repo = self.repo(repo_id)
        _, files = repo.snapshot(rev)
        files, header = dict(files), lines[0]["value"]
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file" and value.get("encoding") == "base64":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {p: d for p, d in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                raise HubError(400, f"commit operation {key!r} is not supported by this fake hub (regular files only)")
        oid = repo.commit(files, header["summary"])
        return 200, {}, {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None, "success": True}

    def info(self, repo_id: str, rev: str) -> tuple[int, dict, dict]:
        oid, files = self.repo(repo_id).snapshot(rev)
        return 200, {}, {"id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0], "sha": oid,
                         "private": False, "gated": False, "disabled": False,
                         "siblings": [{"rfilename": p} for p in sorted(files)]}

    def tree(self, repo_id: str, rev: str, path: str, query: dict) -> tuple[int, dict, list]:
        _, files = self.repo(repo_id).snapshot(rev)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        entries: dict[str, dict] = {}
        for p, data in sorted(files.items()):
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix):].split("/")
            for depth in range(1, len(parts)):  # the folders between prefix and file
                if depth > 1 and not recursive:
                    break
                folder = prefix + "/".join(parts[:depth])
                entries.setdefault(folder, {"type": "directory", "path": folder,
                                            "oid": hashlib.sha1(folder.encode()).hexdigest()})
            if len(parts) == 1 or recursive:
                entries[p] = {"type": "file", "path": p, "size": len(data), "oid": git_blob_sha1(data)}
        if prefix and not entries:
            raise HubError(404, f"{path!r} not found", "EntryNotFound")
        return 200, {}, [entries[k] for k in sorted(entries)]

    def resolve(self, repo_id: str, rev: str, path: str) -> tuple[int, dict, bytes]:
        oid, files = self.repo(repo_id).snapshot(rev)
        if path not in files:
            raise HubError(404, f"Entry {path!r} not found", "EntryNotFound", commit=oid)
        data = files[path]
        return 200, {"X-Repo-Commit": oid, "ETag": f'"{git_blob_sha1(data)}"',
                     "Content-Type": "application/octet-stream"}, data


class _Handler(BaseHTTPRequestHandler):
    owner: FakeHub
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects

    def log_message(self, *args) -> None:  # quiet: requests are recorded in FakeHub.requests instead
        pass

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_OPTIONS(self) -> None:  # a CORS preflight: nothing to route, nothing recorded as a call of the API
        self.owner.requests.append(("OPTIONS", urlsplit(self.path).path, 204))
        self.send_response(204)
        for k, v in {**CORS, **PREFLIGHT, "Content-Length": "0"}.items():
            self.send_header(k, v)
        self.end_headers()

    def _route(self, method: str, path: str, query: dict, raw: bytes):
        hub, m = self.owner, None

        def match(pattern: str) -> bool:
            nonlocal m
            m = re.fullmatch(pattern, path)
            return m is not None

        if method == "GET" and path == "/api/agent-harnesses":
            return 200, {}, {"standardEnvVars": [], "harnesses": {}}
        if method == "POST" and path == "/api/validate-yaml":
            return validate_yaml(json.loads(raw)["content"])
        if method == "POST" and not self.headers.get("Authorization", "").startswith("Bearer "):
            raise HubError(401, "write access needs a token (any bearer token will do here)")
        if method == "POST" and path == "/api/repos/create":
            return hub.create(json.loads(raw))
        if method == "POST" and match(rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)"):
            return hub.preupload(m["repo"], unquote(m["rev"]), json.loads(raw), query)
        if method == "POST" and match(rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)"):
            lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
            return hub.commit(m["repo"], unquote(m["rev"]), lines, query)
        if method == "GET" and match(rf"/api/models/{REPO}(?:/revision/(?P<rev>[^/]+))?"):
            return hub.info(m["repo"], unquote(m["rev"] or "main"))
        if method == "GET" and match(rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(?P<path>/.*)?"):
            return hub.tree(m["repo"], unquote(m["rev"]), unquote(m["path"] or ""), query)
        if method in ("GET", "HEAD") and match(rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"):
            return hub.resolve(m["repo"], unquote(m["rev"]), unquote(m["path"]))
        hub.unknown.append(f"{method} {path}")
        raise HubError(404, f"{method} {path}: not a route this fake hub serves")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            with self.owner.lock:
                status, headers, body = self._route(method, url.path, parse_qs(url.query), raw)
        except HubError as e:
            status, body = e.status, {"error": str(e), **e.body}
            headers = {"X-Error-Message": str(e), **({"X-Error-Code": e.code} if e.code else {}),
                       **({"X-Repo-Commit": e.commit} if e.commit else {})}
        if not isinstance(body, bytes):
            body, headers = json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
        self.owner.requests.append((method, url.path, status))
        self.send_response(status)
        for k, v in {**headers, **CORS, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)
