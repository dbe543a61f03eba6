"""The client's address, believing ``X-Forwarded-For`` only from configured reverse proxies.

Behind the practice's reverse proxy (or Docker's port mapping) every request arrives from the
proxy's address; the login limits are per address, so they need the real one. But anybody can
send the header, so it is read only when the connecting peer is a trusted proxy
(``ACCUEIL_TRUSTED_PROXIES``, empty by default), and then from the right: the first address
that is not itself a trusted proxy is the client (the left entries are the client's claims).
"""

from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network


@lru_cache(maxsize=32)
def _parse(entries: tuple[str, ...]) -> tuple[tuple[Network, ...], frozenset[str]]:
    networks: list[Network] = []
    literals: set[str] = set()
    for entry in entries:
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            literals.add(entry)
    return tuple(networks), frozenset(literals)


def _trusted(host: str, networks: Iterable[Network], literals: frozenset[str]) -> bool:
    if host in literals:
        return True
    try:
        address = ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[str, ...]
) -> str | None:
    """The address to record and to count login failures against."""
    if peer is None or not trusted or not forwarded_for:
        return peer
    networks, literals = _parse(trusted)
    if not _trusted(peer, networks, literals):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks, literals):
            try:
                return str(ip_address(hop))[:64]
            except ValueError:
                return peer  # a garbled header: keep the proxy's own address
    return hops[0] if hops else peer
