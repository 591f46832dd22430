"""Shared-memory context: layout, lifetime, validation and the seqlock under load."""

import os
import signal
import struct
import time

import numpy as np
import pytest

from automot_ros.runtime.context_shm import (
    BadSegmentError, ContextBusyError, ContextReader, ContextShmError, ContextWriter,
    ModelMismatchError, install_signal_cleanup)
from shm_proc import SMALL, STRESS

SHAPE = (SMALL["num_layers"], 2, SMALL["kv_heads"])


def make_kv(n, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(SHAPE + (n, SMALL["head_dim"])).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_round_trip(shm, dtype):
    name = shm.name()
    with ContextWriter(name, "m", dtype=dtype, **SMALL) as w, ContextReader(name, expected_model_id="m") as r:
        assert r.read_latest() is None
        kv = make_kv(5, dtype)
        assert w.write(kv, stamp_ns=123, next_position=5) == (1, 0)
        for copy in (False, True):
            s = r.read_latest(copy=copy)
            assert (s.seq, s.slot, s.stamp_ns, s.num_tokens, s.next_position) == (1, 0, 123, 5, 5)
            assert (s.generation, s.model_id) == (w.generation, "m")
            assert s.kv.dtype == dtype and s.kv.shape == kv.shape and s.kv.flags.c_contiguous
            if not copy:
                assert s.kv.ctypes.data % 64 == 0  # the payload in the segment is aligned
            np.testing.assert_array_equal(s.kv, kv)
            assert s.still_valid()
        view = r.read_latest().kv
        assert not view.flags.writeable and view.base is not None  # a read-only view, no copy
        assert r.reads == 3


def test_torch_input_and_cast(shm):
    torch = pytest.importorskip("torch")
    name = shm.name()
    with ContextWriter(name, "m", dtype=np.float16, **SMALL) as w, ContextReader(name) as r:
        t = torch.randn(SHAPE + (4, SMALL["head_dim"]), dtype=torch.bfloat16)
        w.write(t, 1, 4)
        np.testing.assert_array_equal(r.read_latest(copy=True).kv, t.float().numpy().astype(np.float16))
        w.write(torch.zeros(SHAPE + (0, SMALL["head_dim"])), 2, 0)  # an empty context is valid
        assert r.read_latest().kv.shape[3] == 0


def test_write_rejects_bad_shapes_and_args(shm):
    name = shm.name()
    with ContextWriter(name, "m", **SMALL) as w:
        for bad in [np.zeros((2, 2, 2, 17, 8)), np.zeros((2, 2, 3, 4, 8)), np.zeros((2, 2, 2, 4))]:
            with pytest.raises(ValueError, match="kv shape"):
                w.write(bad, 0, 0)
    with pytest.raises(ValueError, match="slots"):
        ContextWriter(shm.name(), "m", slots=1, **SMALL)
    with pytest.raises(ValueError, match="dtype"):
        ContextWriter(shm.name(), "m", dtype=np.float64, **SMALL)
    with pytest.raises(ValueError, match="model_id"):
        ContextWriter(shm.name(), "x" * 65, **SMALL)


def test_round_robin_and_read_slot(shm):
    name = shm.name()
    with ContextWriter(name, "m", slots=3, **SMALL) as w, ContextReader(name) as r:
        published = [w.write(make_kv(2, seed=i), i, 2) for i in range(4)]
        assert published == [(1, 0), (2, 1), (3, 2), (4, 0)]
        assert r.read_slot(0, 4).stamp_ns == 3
        assert r.read_slot(0, 1) is None  # overwritten by seq 4
        assert r.read_slot(1, 2, copy=True).stamp_ns == 1
        assert r.read_slot(1, 99) is None  # not written (yet)
        zero_copy = r.read_latest()
        assert zero_copy.seq == 4 and zero_copy.still_valid()
        w.write(make_kv(2), 5, 2)  # slot 1
        assert zero_copy.still_valid()  # the latest slot is never the next one written
        w.write(make_kv(2), 6, 2)  # slot 2
        w.write(make_kv(2), 7, 2)  # slot 0 again: the view is stale now
        assert not zero_copy.still_valid()
        with pytest.raises(ValueError):
            r.read_slot(3, 1)


def test_mode_0600_and_close_unlinks(shm):
    name = shm.name()
    old = os.umask(0)  # the mode must not depend on the umask
    try:
        w = ContextWriter(name, "m", **SMALL)
    finally:
        os.umask(old)
    st = os.stat(shm.path(name))
    assert st.st_mode & 0o777 == 0o600
    assert st.st_uid == os.getuid()
    r = ContextReader(name)
    w.close()
    w.close()
    assert not os.path.exists(shm.path(name))
    assert not r.is_current()
    with pytest.raises(ContextShmError):
        w.write(make_kv(1), 0, 0)
    r.close()


def test_sigterm_unlinks_writer_segment(shm):
    name = shm.name()
    proc, line = shm.spawn("hold", name)
    assert line.startswith("READY") and os.path.exists(shm.path(name))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == -signal.SIGTERM  # still dies by the signal
    assert not os.path.exists(shm.path(name))


def test_sigint_unlinks_and_keeps_keyboardinterrupt(shm):
    name = shm.name()
    proc, _ = shm.spawn("hold", name)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    assert "KeyboardInterrupt" in proc.stderr.read()
    assert not os.path.exists(shm.path(name))


def test_atexit_unlinks(shm):
    name = shm.name()
    proc, line = shm.spawn("exit", name)
    assert line == "CREATED" and proc.wait(timeout=10) == 0
    assert not os.path.exists(shm.path(name))


def test_signal_cleanup_chains_previous_handler(shm):
    calls = []
    original = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    try:
        install_signal_cleanup((signal.SIGUSR1,))
        install_signal_cleanup((signal.SIGUSR1,))  # idempotent: no double wrapping
        w = ContextWriter(shm.name(), "m", **SMALL)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert calls == [signal.SIGUSR1]
        assert not os.path.exists(w.path)
        w.close()
    finally:
        signal.signal(signal.SIGUSR1, original)


def test_reader_never_unlinks(shm):
    name = shm.name()
    with ContextWriter(name, "m", **SMALL) as w:
        w.write(make_kv(3), 1, 3)
        proc, line = shm.spawn("read", name)
        assert line == "READ 1" and proc.wait(timeout=10) == 0
        assert os.path.exists(shm.path(name))
        r = ContextReader(name)
        snap = r.read_latest()
        r.close()
        r.close()
        assert os.path.exists(shm.path(name))
        np.testing.assert_array_equal(snap.kv, make_kv(3))  # views outlive close()
        with pytest.raises(ContextShmError, match="closed"):
            r.read_latest()


def _write_file(path, data: bytes):
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def test_bad_segments_raise_clear_errors(shm):
    with pytest.raises(FileNotFoundError):
        ContextReader(shm.name())
    good = shm.name()
    with ContextWriter(good, "model-a", **SMALL) as w:
        w.write(make_kv(2), 1, 2)
        with open(shm.path(good), "rb") as f:
            image = f.read()
        with pytest.raises(ModelMismatchError, match="model-a"):
            ContextReader(good, expected_model_id="model-b")

    cases = {
        "truncated header": image[:100],
        "bad magic": b"\x00" * len(image),
        "truncated segment": image[: len(image) - 64],
        "layout version": image[:8] + struct.pack("<I", 99) + image[12:],
        "dtype code": image[:76] + struct.pack("<I", 7) + image[80:],
        "disagree with the geometry": image[:60] + struct.pack("<I", 17) + image[64:],  # max_tokens
    }
    for message, data in cases.items():
        name = shm.name()
        _write_file(shm.path(name), data)
        with pytest.raises(BadSegmentError, match=message) as info:
            ContextReader(name)
        assert isinstance(info.value, ValueError) and name in str(info.value)
        os.unlink(shm.path(name))

    # A consistent slot claiming more tokens than the capacity is corruption, not a race.
    corrupt = bytearray(image)
    struct.pack_into("<Q", corrupt, 256 + 24, SMALL["max_tokens"] + 1)
    name = shm.name()
    _write_file(shm.path(name), bytes(corrupt))
    with pytest.raises(BadSegmentError, match="token count"):
        ContextReader(name).read_latest()
    os.unlink(shm.path(name))


def test_restart_detection_and_stale_replacement(shm):
    name = shm.name()
    proc, line = shm.spawn("hold", name)
    old_generation = int(line.split()[1])
    r = ContextReader(name)
    assert r.generation == old_generation and r.is_current()
    assert r.read_latest().stamp_ns == 42

    proc.send_signal(signal.SIGKILL)  # crash: nothing can unlink
    proc.wait(timeout=10)
    assert os.path.exists(shm.path(name)) and r.is_current()
    assert r.read_latest().stamp_ns == 42  # a stale context stays readable

    with ContextWriter(name, "test-model", **SMALL) as w:  # replaces the stale segment
        assert w.generation != old_generation
        assert not r.is_current()
        old = r.read_latest()
        r.reopen()
        assert r.is_current() and r.generation == w.generation
        assert r.read_latest() is None
        w.write(make_kv(4), 7, 4)
        assert r.read_latest().stamp_ns == 7
        np.testing.assert_array_equal(old.kv, np.ones((2, 2, 2, 3, 8)))  # old view still mapped
    assert not r.is_current()
    with pytest.raises(FileNotFoundError):
        r.reopen()
    r.close()


def test_busy_reader_raises(shm):
    name = shm.name()
    with ContextWriter(name, "m", **SMALL) as w, ContextReader(name, max_retries=3) as r:
        w.write(make_kv(2), 1, 2)
        w._map.words[0][0] += 1  # simulate a writer stuck inside slot 0 (counter odd)
        with pytest.raises(ContextBusyError):
            r.read_latest()
        assert r.retries == 3


def _check(snap, seq=None):
    """True if the snapshot is exactly what the stress writer published for its seq."""
    s = snap.seq if seq is None else seq
    n = 1 + s % STRESS["max_tokens"]
    return (snap.num_tokens == n and snap.stamp_ns == 1000 * s and snap.next_position == 7 * s
            and snap.kv.shape[3] == n and bool((snap.kv == np.float32(s)).all()))


def test_no_torn_reads_under_a_racing_writer(shm):
    """A writer process cycles 3 slots flat out; for 10 s this process reads latest
    (zero-copy and copied) and announced slots, checking every payload element."""
    name = shm.name()
    duration = 10.0
    proc, _ = shm.spawn("stress", name, duration + 30)
    r = ContextReader(name, expected_model_id="stress-model")
    accepted = discarded = torn = busy = gone = raw_reads = raw_torn = 0
    end = time.monotonic() + duration
    i = 0
    while time.monotonic() < end:
        i += 1
        try:
            if i % 4 == 0:
                # Negative control: the same read without the seqlock protocol. It does
                # tear, which shows the checks below would catch a broken protocol.
                slot = i % 3
                words = r._map.words[slot]
                seq, n = int(words[1]), int(words[3])
                if seq:
                    raw_reads += 1
                    kv = r._map.kv_view(slot, min(n, STRESS["max_tokens"]))
                    raw_torn += not bool((kv == np.float32(seq)).all())
                continue
            if i % 4 == 3:
                latest = r.read_latest()
                if latest is None:
                    continue
                snap = r.read_slot((latest.slot + 2) % 3, latest.seq - 1, copy=True)
                if snap is None:
                    gone += 1
                    continue
            else:
                snap = r.read_latest(copy=(i % 4 == 2))
                if snap is None:
                    continue
            ok = _check(snap)
            if not snap.still_valid():
                discarded += 1  # the consumer must drop what it computed from the view
                continue
            accepted += 1
            torn += not ok
        except ContextBusyError:
            busy += 1
    last = r.read_latest()
    r.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert not os.path.exists(shm.path(name))
    print(f"\nstress: writes={last.seq} accepted={accepted} torn={torn} discarded_views={discarded} "
          f"retries={r.retries} busy={busy} gone={gone} raw_reads={raw_reads} raw_torn={raw_torn}")
    assert torn == 0
    assert accepted > 2000 and last.seq > 2000
    assert raw_torn > 0  # the race is real: without the protocol reads do tear
