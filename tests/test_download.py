"""Full-precision downloads against a real HTTP server on 127.0.0.1 (http.server in a thread):
a good file is cached, a wrong hash is refused and nothing is kept, a 404, a connection cut
mid-file and a stalled server are one-line errors, the mirror variable and the offline line."""
from __future__ import annotations

import hashlib
import http.server
import threading
import time

import pytest

from squeezenet.interop import download as D

PAYLOAD = bytes(range(256)) * 400   # 100 KB


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        self.server.hits.append(self.path)
        if self.path.endswith("/good.bin") or self.path.endswith("/other.bin"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path.endswith("/cut.bin"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
            self.wfile.flush()
            self.connection.shutdown(2)   # the connection drops mid-file
        elif self.path.endswith("/slow.bin"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:100])
            self.wfile.flush()
            self.server.release.wait(10)   # stalls until the test is over
        else:
            self.send_error(404, "Not Found")


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.hits, srv.release = [], threading.Event()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(D.MIRROR_ENV, raising=False)
    return tmp_path / "cache"


GOOD = hashlib.sha256(PAYLOAD).hexdigest()


def test_good_file_is_cached_and_not_fetched_again(server, cache):
    srv, base = server
    p = D.fetch(f"{base}/m/good.bin", "good.bin", sha256=GOOD, progress=False)
    assert p == cache / "good.bin" and p.read_bytes() == PAYLOAD
    assert D.fetch(f"{base}/m/good.bin", "good.bin", sha256=GOOD, progress=False) == p
    assert srv.hits == ["/m/good.bin"]   # the second call used the cache
    assert [f.name for f in cache.iterdir()] == ["good.bin"]   # no temp file left


def test_hash_prefix_is_checked(server, cache):
    _, base = server
    assert D.fetch(f"{base}/good.bin", "good.bin", sha256_prefix=GOOD[:8], progress=False).is_file()
    with pytest.raises(D.DownloadError, match="does not match"):
        D.fetch(f"{base}/other.bin", "other.bin", sha256_prefix="00000000", progress=False)


def test_wrong_hash_is_refused_and_nothing_kept(server, cache):
    _, base = server
    with pytest.raises(D.DownloadError) as e:
        D.fetch(f"{base}/good.bin", "good.bin", sha256="0" * 64, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and f"{base}/good.bin" in msg and GOOD in msg and "nothing was kept" in msg
    assert not cache.exists() or list(cache.iterdir()) == []


def test_stale_cached_file_is_fetched_again(server, cache):
    srv, base = server
    cache.mkdir()
    (cache / "good.bin").write_bytes(b"corrupt")
    assert D.fetch(f"{base}/good.bin", "good.bin", sha256=GOOD, progress=False).read_bytes() == PAYLOAD
    assert srv.hits == ["/good.bin"]


def test_404(server, cache):
    _, base = server
    with pytest.raises(D.DownloadError, match=r"missing\.bin: HTTP 404"):
        D.fetch(f"{base}/missing.bin", "missing.bin", sha256=GOOD, progress=False)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_connection_cut_mid_file(server, cache):
    _, base = server
    with pytest.raises(D.DownloadError) as e:
        D.fetch(f"{base}/cut.bin", "cut.bin", sha256=GOOD, progress=False, timeout=5)
    msg = str(e.value)
    assert "cut.bin" in msg and "nothing was kept" in msg and "\n" not in msg
    assert "connection cut after 1,000 of 102,400 bytes" in msg or "connection lost" in msg
    assert not cache.exists() or list(cache.iterdir()) == []


def test_stalled_server_times_out(server, cache):
    _, base = server
    t0 = time.monotonic()
    with pytest.raises(D.DownloadError, match="timed out"):
        D.fetch(f"{base}/slow.bin", "slow.bin", sha256=GOOD, progress=False, timeout=0.5)
    assert time.monotonic() - t0 < 9   # gave up on the timeout, not when the server let go
    assert not cache.exists() or list(cache.iterdir()) == []


def test_mirror_base_url_and_folder(server, cache, tmp_path, monkeypatch):
    srv, base = server
    monkeypatch.setenv(D.MIRROR_ENV, f"{base}/mirror/")
    assert D.fetch("https://example.invalid/x/good.bin", "good.bin", sha256=GOOD, progress=False).is_file()
    assert srv.hits == ["/mirror/good.bin"]
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "other.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv(D.MIRROR_ENV, str(folder))
    assert D.fetch("https://example.invalid/other.bin", "other.bin", sha256=GOOD,
                   progress=False).read_bytes() == PAYLOAD
    with pytest.raises(D.DownloadError, match="not found in the mirror folder"):
        D.fetch("https://example.invalid/none.bin", "none.bin", sha256=GOOD, progress=False)


def test_offline_is_one_line_naming_the_url_and_the_variable(cache):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there: connection refused, as without a network
    url = f"http://127.0.0.1:{port}/w.pth"
    with pytest.raises(D.DownloadError) as e:
        D.fetch(url, "w.pth", sha256=GOOD, progress=False, timeout=2)
    msg = str(e.value)
    assert "\n" not in msg and url in msg and D.MIRROR_ENV in msg


def test_registry_download_converts_with_the_importer(server, cache, monkeypatch, tmp_path):
    # a torchvision-format .pth served locally through the mirror, read without unpickling
    import torch

    from squeezenet.interop import pretrained as P
    from squeezenet.models import create_model
    sd = create_model("squeezenet1_1").state_dict()
    pth = tmp_path / "mirror" / "squeezenet1_1-b8a52dc0.pth"
    pth.parent.mkdir()
    torch.save(sd, pth)
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    w = P.Weights("squeezenet1_1.test", "squeezenet1_1", "torchvision", "https://example.invalid/w.pth",
                  pth.name, digest, "torchvision", "BSD-3-Clause", "test")
    monkeypatch.setenv(D.MIRROR_ENV, str(pth.parent))
    m = w.load(full=True, progress=False)
    assert torch.equal(m.state_dict()["features.0.weight"], sd["features.0.weight"])
    assert m.classes[0] == "n01440764" and m.class_names[0].startswith("tench")
    assert (cache / pth.name).is_file()
