"""Server-side request forgery: which hosts a task URL can make the service connect to."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from tests.support.hostile_server import HostileServer
from tests.support.standin import png_bytes
from tests.training.test_training_runs import wait_for
from yolo_backend.errors import MediaAccessDenied, MediaError
from yolo_backend.labelstudio.ls_auth import LabelStudioAuth
from yolo_backend.media import url_policy
from yolo_backend.media.fetcher import DiskCache, MediaFetcher
from yolo_backend.media.url_policy import UrlPolicy, is_public

TOKEN = "0123456789abcdef0123456789abcdef01234567"


def png() -> bytes:
    return png_bytes((8, 6))


def fetcher(tmp_path: Path, base_url: str = "http://127.0.0.1:9", allowed: str = "",
            timeout: float = 5) -> MediaFetcher:
    return MediaFetcher(LabelStudioAuth(base_url, TOKEN), DiskCache(tmp_path / "cache", 2**20),
                        timeout=timeout, allowed_hosts=allowed)


@pytest.mark.parametrize("address", [
    "169.254.169.254", "fd00:ec2::254", "127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.1",
    "192.168.1.1", "100.64.0.1", "fe80::1", "fc00::1", "0.0.0.0", "::", "::ffff:127.0.0.1",
    "::ffff:169.254.169.254", "2002:7f00:1::", "64:ff9b::a9fe:a9fe", "224.0.0.1", "255.255.255.255",
])
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://localhost:6379/",
    "http://127.1/", "http://2130706433/", "http://0x7f000001/", "http://0/", "http://[::1]:22/",
    "http://[::ffff:7f00:1]/", "https://10.0.0.1/x.png", "http://LocalHost/",
])
def test_every_spelling_of_an_internal_host_is_refused(url: str) -> None:
    with pytest.raises(MediaAccessDenied, match="MEDIA_ALLOWED_HOSTS"):
        UrlPolicy.build("http://label-studio.example:8080").check_url(url)


def test_label_studio_origin_and_configured_hosts_are_allowed() -> None:
    policy = UrlPolicy.build("http://127.0.0.1:8080", "images.lan, 127.0.0.1:7000, 10.9.0.0/16")
    policy.check_url("http://127.0.0.1:8080/data/upload/1/a.png")
    policy.check_url("http://127.0.0.1:7000/a.png")
    policy.check_url("http://10.9.3.4/a.png")
    assert policy.named("images.lan", 1234)
    with pytest.raises(MediaAccessDenied):
        policy.check_url("http://127.0.0.1:8081/")  # same loopback host, another service
    with pytest.raises(MediaAccessDenied):
        policy.check_url("http://10.8.0.1/")


def test_a_private_image_server_is_never_contacted_unless_allowed(tmp_path: Path) -> None:
    with HostileServer({"a.png": png()}) as server:
        with pytest.raises(MediaAccessDenied):
            fetcher(tmp_path).load(f"{server.url}/img/a.png")
        assert server.requests == []
        image = fetcher(tmp_path, allowed=server.host_port).load(f"{server.url}/img/a.png")
        assert (image.width, image.height) == (8, 6)
        assert fetcher(tmp_path / "b", allowed="127.0.0.0/8").load(f"{server.url}/img/a.png").width == 8


def test_redirects_are_checked_at_every_hop(tmp_path: Path) -> None:
    with HostileServer({"a.png": png()}) as allowed, HostileServer({"a.png": png()}) as internal:
        url = f"{allowed.url}/redirect?to={internal.url}/img/a.png"
        with pytest.raises(MediaAccessDenied):
            fetcher(tmp_path, allowed=allowed.host_port).load(url)
        assert internal.requests == [], "the redirect target must not be contacted"
        ok = f"{allowed.url}/redirect?to=/img/a.png"
        assert fetcher(tmp_path, allowed=allowed.host_port).load(ok).width == 8
        with pytest.raises(MediaError, match="more than 5 redirects"):
            fetcher(tmp_path, allowed=allowed.host_port).load(f"{allowed.url}/loop")
        assert len([p for p, _ in allowed.requests if p == "/loop"]) == 6


def test_the_token_does_not_follow_a_redirect_away_from_label_studio(tmp_path: Path) -> None:
    with HostileServer() as label_studio, HostileServer({"a.png": png()}) as other:
        url = f"/data/upload/redirect?to={other.url}/img/a.png"
        fetcher(tmp_path, base_url=label_studio.url, allowed=other.host_port).load(url)
        assert label_studio.requests[0][1]["Authorization"] == f"Token {TOKEN}"
        assert "Authorization" not in other.requests[0][1]


def test_dns_rebinding_is_caught_at_connect_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name looks public when checked, then resolves to loopback when connecting."""
    with HostileServer({"a.png": png()}) as server:
        real = socket.getaddrinfo

        def rebinding(host: str, *args: object, **kwargs: object) -> list:
            return real("127.0.0.1" if host == "rebind.example" else host, *args, **kwargs)

        monkeypatch.setattr(url_policy, "resolve", lambda host, port: [ipaddress.ip_address("93.184.216.34")])
        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        port = server.host_port.split(":")[1]
        with pytest.raises(MediaAccessDenied):
            fetcher(tmp_path).load(f"http://rebind.example:{port}/img/a.png")
        assert server.requests == []


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    """Cut off by the read timeout: the server holds the request for 120 s, then would close it (another error)."""
    with HostileServer() as server:
        with pytest.raises(MediaError, match=r"could not download.*: ReadTimeout$"):
            fetcher(tmp_path, allowed=server.host_port, timeout=1).load(f"{server.url}/hang")
        assert [path for path, _ in server.requests] == ["/hang"]


def test_a_server_dribbling_bytes_is_cut_off(tmp_path: Path) -> None:
    """Each byte comes within the read timeout; the download's deadline cuts it off and the connection is closed."""
    with HostileServer() as server:
        with pytest.raises(MediaError, match="too slowly"):
            fetcher(tmp_path, allowed=server.host_port, timeout=1).load(f"{server.url}/slow")
        assert not list((tmp_path / "cache").iterdir()), "no partial file may stay in the cache"
        wait_for(lambda: server.dribble_cut, "the server to see the connection closed", timeout=60)


def test_a_blackholed_connect_gives_up(tmp_path: Path) -> None:
    """A listening socket that never accepts (backlog full) must not hang the fetch forever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(8):  # fill the accept backlog so further connects stall
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(listener.getsockname())
            fillers.append(s)
        host_port = f"127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(MediaError, match=r"could not download.*: ConnectTimeout$"):  # not a hang
            fetcher(tmp_path, allowed=host_port, timeout=1).load(f"http://{host_port}/a.png")
    finally:
        for s in fillers:
            s.close()
        listener.close()
