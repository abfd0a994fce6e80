"""A minimal npm registry on loopback, for the npm package tests: serves
packuments and tarballs from memory, so `npm install`/`npm ci` resolve
packages the way they do from registry.npmjs.org (registry URLs and
integrity in the lockfile), with no network.

    with NpmRegistry() as reg:
        reg.publish("/path/pkg-1.0.0.tgz")      # reads package/package.json
        env["npm_config_registry"] = reg.url
"""
import base64
import hashlib
import http.server
import io
import json
import tarfile
import threading
import urllib.parse


class NpmRegistry:
    def __init__(self):
        self.packages = {}  # name -> {version: manifest}
        self.tarballs = {}  # url path -> bytes
        self.requests = []
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = urllib.parse.unquote(self.path.split("?")[0])
                registry.requests.append(path)
                body, kind = registry.answer(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def publish(self, tgz_path):
        """Serve a tarball made by `npm pack`; returns its manifest."""
        with open(tgz_path, "rb") as f:
            data = f.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            manifest = json.load(t.extractfile("package/package.json"))
        name, version = manifest["name"], manifest["version"]
        path = f"/{name}/-/{name}-{version}.tgz"
        self.tarballs[path] = data
        entry = dict(manifest, _id=f"{name}@{version}", dist={
            "tarball": self.url.rstrip("/") + path,
            "shasum": hashlib.sha1(data).hexdigest(),
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
        })
        self.packages.setdefault(name, {})[version] = entry
        return manifest

    def answer(self, path):
        if path in self.tarballs:
            return self.tarballs[path], "application/octet-stream"
        name = path.lstrip("/")
        if name in self.packages:
            versions = self.packages[name]
            latest = sorted(versions)[-1]
            doc = {"name": name, "dist-tags": {"latest": latest}, "versions": versions}
            return json.dumps(doc).encode(), "application/json"
        return None, None
