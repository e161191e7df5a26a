"""A single-machine launch listens on loopback only (issue 7, item 9).

The listening TCP sockets of the parent and of every rank are found without psutil: each
process's ``/proc/PID/fd`` links name socket inodes, and ``/proc/net/tcp`` / ``tcp6`` give the
local address of every socket in state LISTEN (``0A``) by inode. Before the fix the rendezvous
store listened on the wildcard address (``::``, IPv4 and IPv6) with no authentication.
"""

from __future__ import annotations

import ipaddress
import os
import sys

import pytest

from verify.runtime.launch import WorkerPool, _loopback_interface

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(
        not (sys.platform.startswith("linux") and os.path.exists("/proc/net/tcp")),
        reason="reads Linux's /proc/net/tcp",
    ),
]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``/proc/net/tcp*``'s hex address: 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_addr)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(raw)


def _listening() -> dict[str, tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """inode -> (local address, port) of every TCP socket in state LISTEN."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as fh:
            next(fh)  # header
            for line in fh:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    addr, port = fields[1].split(":")
                    out[fields[9]] = (_address(addr), int(port, 16))
    return out


def _is_loopback(addr) -> bool:
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def _gloo_ifname(rank, world_size):
    return os.environ.get("GLOO_SOCKET_IFNAME")


def test_address_parsing_matches_known_encodings():
    assert str(_address("0100007F")) == "127.0.0.1"
    assert str(_address("00000000")) == "0.0.0.0"
    assert str(_address("00000000000000000000000001000000")) == "::1"
    assert str(_address("00000000000000000000000000000000")) == "::"
    assert _is_loopback(_address("0000000000000000FFFF00000100007F"))  # ::ffff:127.0.0.1
    assert not _is_loopback(_address("00000000"))


def test_pool_listens_on_loopback_only():
    with WorkerPool(2, timeout_s=30) as pool:
        assert pool.run(_gloo_ifname) == [_loopback_interface()] * 2
        listening = _listening()
        found = {}
        for pid in [os.getpid(), *pool.pids]:
            for inode in _socket_inodes(pid):
                if inode in listening:
                    found.setdefault(pid, []).append(listening[inode])
    # the parent hosts the rendezvous store; each gloo rank listens for its peers
    assert os.getpid() in found, f"no listening socket of the parent found: {found}"
    exposed = {pid: s for pid, socks in found.items() for s in socks if not _is_loopback(s[0])}
    assert not exposed, f"sockets listening beyond loopback: {exposed}"
