"""smbvol.locks: per-(host, share) and per-(host, VM) locks, in process and across processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from oslo_concurrency import lockutils

from smbvol import exceptions, opts
from smbvol.locks import LockRegistry, lock_name

SHARE = r"\\fs01\vols"


def _busy(ctx) -> bool:
    """Whether taking ``ctx`` (a non-blocking lock) fails because someone holds it."""
    try:
        with ctx:
            return False
    except lockutils.AcquireLockFailedException:
        return True


def test_share_lock_excludes_the_same_share_case_insensitively():
    locks = LockRegistry()
    with locks.share("hv01", SHARE):
        assert _busy(locks.share("hv01", SHARE, blocking=False))
        assert _busy(locks.share("HV01", SHARE.upper(), blocking=False))
        assert not _busy(locks.share("hv01", r"\\fs01\other", blocking=False))
        assert not _busy(locks.share("hv02", SHARE, blocking=False))
        # A VM of the same name as the share is another lock.
        assert not _busy(locks.vm("hv01", SHARE, blocking=False))
    assert not _busy(locks.share("hv01", SHARE, blocking=False))


def test_vm_lock_excludes_the_same_vm():
    locks = LockRegistry()
    with locks.vm("hv01", "instance-1"):
        assert _busy(locks.vm("hv01", "INSTANCE-1", blocking=False))
        assert not _busy(locks.vm("hv01", "instance-2", blocking=False))


def test_registries_do_not_share_locks():
    one, two = LockRegistry(), LockRegistry()
    with one.share("hv01", SHARE):
        assert not _busy(two.share("hv01", SHARE, blocking=False))
        assert _busy(one.share("hv01", SHARE, blocking=False))


def test_lock_is_released_when_the_body_raises():
    locks = LockRegistry()
    with pytest.raises(RuntimeError):
        with locks.hold("hv01", "instance-1", [SHARE]):
            raise RuntimeError("boom")
    assert not _busy(locks.vm("hv01", "instance-1", blocking=False))
    assert not _busy(locks.share("hv01", SHARE, blocking=False))


def test_hold_takes_vm_and_every_share_once():
    locks = LockRegistry()
    shares = [r"\\fs02\b", SHARE, SHARE.upper(), r"\\fs01\a"]
    with locks.hold("hv01", "instance-1", shares):
        assert _busy(locks.vm("hv01", "instance-1", blocking=False))
        for share in shares:
            assert _busy(locks.share("hv01", share, blocking=False))
    for share in shares:
        assert not _busy(locks.share("hv01", share, blocking=False))


def test_threads_are_serialised_on_one_share():
    locks = LockRegistry()
    inside = []
    overlap = []
    guard = threading.Lock()

    def worker():
        for _ in range(50):
            with locks.share("hv01", SHARE):
                with guard:
                    inside.append(1)
                    if len(inside) > 1:
                        overlap.append(len(inside))
                time.sleep(0)  # yield to other threads while holding the lock
                with guard:
                    inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == []


def test_opposite_orders_cannot_deadlock():
    """hold() sorts the shares, so two callers naming them in opposite orders both finish."""
    locks = LockRegistry()
    a, b = r"\\fs01\a", r"\\fs01\b"
    done = []

    def worker(order):
        for _ in range(200):
            with locks.hold("hv01", None, order):
                pass
        done.append(order)

    threads = [threading.Thread(target=worker, args=([a, b],)),
               threading.Thread(target=worker, args=([b, a],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(done) == 2


def test_lock_names_are_file_name_safe_and_distinct():
    names = {lock_name("share", "hv01", SHARE), lock_name("share", "hv01", r"\\fs01\v"),
             lock_name("vm", "hv01", SHARE), lock_name("share", "hv02", SHARE)}
    assert len(names) == 4
    for name in names:
        assert all(c.isalnum() or c == "-" for c in name)
    assert lock_name("share", "HV01", SHARE.upper()) == lock_name("share", "hv01", SHARE)


def test_external_locks_need_a_lock_path():
    conf = opts.new_conf(hyperv_use_external_locks=True)
    with pytest.raises(exceptions.ConfigError) as err:
        LockRegistry.from_conf(conf)
    assert "lock_path" in str(err.value)


_CHILD = r"""
import sys
from oslo_concurrency import lockutils
from smbvol.locks import LockRegistry
locks = LockRegistry(external=True, lock_path=sys.argv[1])
try:
    with locks.share("hv01", sys.argv[2], blocking=False):
        print("acquired")
except lockutils.AcquireLockFailedException:
    print("busy")
"""


def _child(lock_path, share):
    out = subprocess.run([sys.executable, "-c", _CHILD, str(lock_path), share],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def test_external_locks_serialise_processes(tmp_path):
    conf = opts.new_conf(hyperv_use_external_locks=True, hyperv_lock_path=str(tmp_path))
    locks = LockRegistry.from_conf(conf)
    assert locks.external
    with locks.share("hv01", SHARE):
        assert _child(tmp_path, SHARE) == "busy"
        assert _child(tmp_path, r"\\fs01\other") == "acquired"
    assert _child(tmp_path, SHARE) == "acquired"
    assert any(p.name.startswith("smbvol-share-") for p in tmp_path.iterdir())


def test_in_process_only_by_default(tmp_path):
    locks = LockRegistry.from_conf(opts.new_conf(hyperv_lock_path=str(tmp_path)))
    assert not locks.external
    with locks.share("hv01", SHARE):
        assert list(tmp_path.iterdir()) == []
        assert _child(tmp_path, SHARE) == "acquired"
