"""Which hosts a task's image URL may make this service connect to (server-side request forgery).

Anyone who can import a task chooses the URL, so by default only two kinds of place
are reachable: the configured Label Studio origin (often on loopback or a private
network) and hosts whose every resolved address is public. Cloud metadata
(169.254.169.254, fd00:ec2::254), loopback, RFC 1918, CGNAT, unique-local and
link-local addresses are refused unless ``MEDIA_ALLOWED_HOSTS`` names the host, the
``host:port`` or a network containing the address. The check runs on the resolved
addresses before connecting and again on the socket's peer address once connected
(``CheckedAdapter``), so a DNS answer that changes between the two cannot slip through.

On the Label Studio origin a second rule applies: our token goes only to its media routes
(``check_token_route``). Every other path there is its API, which a task's URL must never
reach with our token, and a path that only normalises to a media route is refused too.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..errors import MediaAccessDenied, MediaError, MediaUrlRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PORTS = {"http": 80, "https": 443}
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), which is where packets end up."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is not None:
            return inner
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not private, loopback, link-local, CGNAT, multicast or reserved."""
    address = embedded_ipv4(address)
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


@dataclass(frozen=True)
class UrlPolicy:
    """Allowed: the Label Studio origin, ``allowed`` entries, and otherwise public addresses only."""

    label_studio: tuple[str, int] | None = None
    hosts: frozenset[str] = frozenset()  # "host" (any port) or "host:port", lower case
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(cls, label_studio_url: str, allowed: str = "") -> UrlPolicy:
        """From LABEL_STUDIO_URL and MEDIA_ALLOWED_HOSTS (comma-separated hosts, host:port, IPs, CIDRs)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip().lower() for e in allowed.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry)
        return cls(origin(label_studio_url) if label_studio_url else None, frozenset(hosts), tuple(networks))

    def named(self, host: str, port: int) -> bool:
        """The host is trusted by name: Label Studio's own origin or a MEDIA_ALLOWED_HOSTS entry."""
        host = host.lower().strip("[]")
        return (host, port) == self.label_studio or host in self.hosts or f"{host}:{port}" in self.hosts

    def address_allowed(self, address: IPAddress) -> bool:
        return is_public(address) or any(address in net for net in self.networks)

    def check_url(self, url: str) -> None:
        """Raise MediaAccessDenied unless ``url`` may be fetched; resolves the host name."""
        _, host, port = _parts(url)
        if self.named(host, port):
            return
        for address in resolve(host, port):
            self.check_address(host, port, address)

    def check_address(self, host: str, port: int, address: IPAddress) -> None:
        if not self.named(host, port) and not self.address_allowed(address):
            raise MediaAccessDenied(
                f"refused to fetch from {host} ({address}): private, loopback or link-local addresses are only "
                "reachable for LABEL_STUDIO_URL's host or hosts listed in MEDIA_ALLOWED_HOSTS")


# -- which Label Studio paths receive our token ------------------------------------------
# Label Studio 1.23.2's media routes (data_import/urls.py, io_storages/urls.py, core/storage.py) and the
# query parameter each needs. Matched case-sensitively against the raw path, as Django routes.
MEDIA_ROUTES: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"/data/upload/.+", re.ASCII | re.DOTALL), None),  # uploaded files
    (re.compile(r"/data/local-files/?", re.ASCII), "d"),  # local-files storage
    (re.compile(r"/storage-data/uploaded/", re.ASCII), "filepath"),  # uploads kept in cloud storage
    # cloud storage (s3, gs, azure-blob): presigned redirect or proxied bytes; /presign/ is the old name
    (re.compile(r"/(?:tasks|projects)/[0-9]+/(?:resolve|presign)/", re.ASCII), "fileuri"),
)
ROUTES_TEXT = ("/data/upload/..., /data/local-files/?d=..., /storage-data/uploaded/?filepath=..., "
               "/tasks/<id>/resolve|presign/?fileuri=..., /projects/<id>/resolve|presign/?fileuri=...")
_TASK_ID = re.compile(r"[0-9]+", re.ASCII)


def same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme.lower(), a.hostname, a.port) == (b.scheme.lower(), b.hostname, b.port)


def task_id_text(task_id: object) -> str:
    """A task id as it goes into ``/tasks/<id>/presign/``: a non-negative integer, nothing else."""
    text = str(task_id) if isinstance(task_id, (int, str)) and not isinstance(task_id, bool) else ""
    if not _TASK_ID.fullmatch(text):
        raise MediaUrlRefused(f"task id {str(task_id)[:40]!r} is not a non-negative integer: "
                              "refused to build a Label Studio presign URL from it")
    return text


def check_token_route(url: str, base_url: str, redirect: bool = False) -> None:
    """Raise MediaUrlRefused unless ``url`` (on ``base_url``'s origin) is one of Label Studio's media routes."""
    parts = urlsplit(url)
    prefix = urlsplit(base_url).path.rstrip("/")  # Label Studio served under a sub-path
    where = "a redirect to " if redirect else ""
    problem = _path_problem(parts.path)
    if problem is None and prefix and not parts.path.startswith(prefix + "/"):
        problem = f"is outside LABEL_STUDIO_URL's path {prefix!r}"
    if problem is None:
        problem = _route_problem(parts.path[len(prefix):], parts.query)
    if problem is not None:
        first = parts.path.lstrip("/").split("/")[0]
        # the first segment, only when it is a plain word: never echo what may be a secret
        shown = "/" if not first else f"/{first}/..." if re.fullmatch(r"[A-Za-z_-]{1,20}", first) else "/..."
        raise MediaUrlRefused(
            f"refused {where}Label Studio path {shown}: it {problem}. The token is only sent to "
            f"Label Studio's media routes ({ROUTES_TEXT}), never to its API")


def _path_problem(path: str) -> str | None:
    """Why a path might reach somewhere other than it reads: dot segments, ``//``, backslashes, encodings."""
    decoded = path
    for _ in range(3):  # double and triple encodings (%252e) decode to the same dots
        decoded = unquote(decoded)
    if "\\" in decoded:
        return "contains a backslash"
    if any(ord(c) < 32 or ord(c) == 127 for c in decoded):
        return "contains a control character"
    segments = decoded.split("/")[1:]
    if any(s in (".", "..") for s in segments):
        return "has a '.' or '..' segment (after percent-decoding)"
    if "" in segments[:-1]:
        return "has an empty segment ('//')"
    return None


def _route_problem(path: str, query: str) -> str | None:
    for pattern, needs in MEDIA_ROUTES:
        if pattern.fullmatch(path):
            if needs and not parse_qs(query).get(needs):
                return f"lacks the ?{needs}= its route needs"
            return None
    return "is not a media route"


def origin(url: str) -> tuple[str, int]:
    _, host, port = _parts(url)
    return host, port


def _parts(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise MediaError(f"unsupported or host-less image URL (scheme {scheme or '-'!r})")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise MediaError("image URL with an invalid port") from None
    return scheme, parts.hostname.lower(), port


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an attacker needs only one private one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise MediaError(f"could not resolve image host {host!r}: {exc}") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _checked(base: type[HTTPConnection]) -> type[HTTPConnection]:
    """A urllib3 connection class that re-checks the peer address right after connecting."""

    class Checked(base):  # type: ignore[misc, valid-type]
        policy: UrlPolicy

        def _new_conn(self):  # urllib3's signature
            sock = super()._new_conn()
            peer = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
            try:
                self.policy.check_address(self.host, self.port, peer)
            except MediaAccessDenied:
                sock.close()
                raise
            return sock

    return Checked


class CheckedAdapter(HTTPAdapter):
    """requests adapter whose connections refuse peers the policy does not allow."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_conn = type("PolicyHTTPConnection", (_checked(HTTPConnection),), {"policy": self.policy})
        https_conn = type("PolicyHTTPSConnection", (_checked(HTTPSConnection),), {"policy": self.policy})
        http_pool = type("PolicyHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
        https_pool = type("PolicyHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}
