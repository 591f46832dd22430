"""Shared-memory K/V context: the Understanding Expert writes it, other processes read it.

One POSIX shared-memory segment (``/dev/shm/<name>``, Linux) per writer. Everything is
little-endian and every tensor and every live counter is 64-byte aligned (the mapping
itself is page aligned).

Segment layout::

    offset  size  header (256 bytes, written once at creation; static fields '<')
    0       8     magic            b"AMOTKV\\x00\\x01"
    8       4     layout version   u32 (LAYOUT_VERSION)
    12      4     header size      u32 (256)
    16      8     generation       u64, random non-zero, new for every created segment
    24      8     total size       u64, bytes the segment must hold
    32      8     slot stride      u64, bytes from one slot to the next (multiple of 64)
    40      8     slots offset     u64, offset of slot 0 (256)
    48      8     writer pid       u64, for diagnostics only
    56      4     slot count       u32 (>= 2)
    60      4     max tokens       u32, capacity of each slot along the token axis
    64      4     num_layers       u32
    68      4     kv_heads         u32
    72      4     head_dim         u32
    76      4     dtype code       u32 (1 = float32, 2 = float16)
    80      64    model id         utf-8, NUL padded
    192     8     latest seq       u64, live (0 = nothing published yet)
    200     8     latest slot      u64, live

    slot i at slots_offset + i * slot_stride:
    0       8     seqlock counter  u64, odd while the writer is inside the slot
    8       8     seq              u64, 1, 2, 3, ... one per write, across slots
    16      8     stamp_ns         i64
    24      8     token count n    u64 (<= max tokens)
    32      8     next_position    i64, first position id after the context
    40      24    reserved
    64      ...   K/V payload, capacity layers*2*kv_heads*max_tokens*head_dim elements

Payload layout choice: the valid ``n`` tokens are packed contiguously as
``[layers, 2, kv_heads, n, head_dim]`` (index 0 of the "2" axis is K, 1 is V) at the
start of the slot's payload area, rather than strided inside a
``[layers, 2, kv_heads, max_tokens, head_dim]`` block. The reader then gets a
*contiguous* zero-copy view (``torch.from_numpy``, ONNX/TensorRT bindings want that) and
both sides copy only ``n`` tokens' worth of bytes, not the slot's capacity.

Seqlock protocol (per slot). Writer: counter += 1 (odd), payload, fields, counter += 1
(even), then publish ``latest``. Reader: c1 = counter (retry if odd), read fields and
payload, c2 = counter; accept only if c1 == c2. The counter is a monotonic u64, so
"unchanged" means "no write started in between" (no ABA). The writer cycles slots
round-robin, so it never rewrites the slot it published last: a reader of the latest
context races the writer only after two more writes (with 3 slots).

Why this is correct without explicit memory barriers in Python: counters are touched
only through aligned 8-byte numpy scalar loads/stores (one machine instruction each,
never torn), every access is a separate C call from the interpreter (no compiler can
reorder them across those calls), and on x86-64 (TSO) stores become visible to other
cores in program order and loads are not reordered with earlier loads, which is exactly
the store->store and load->load ordering the seqlock needs. The GIL plays no part across
processes. On weakly ordered CPUs (aarch64, e.g. Jetson) the hardware may in principle
make payload stores visible after the even counter; a native consumer there must use
acquire/release fences on the counter. The stress test in test/runtime proves the
protocol on the machine it runs on; run it on the target.

Lifetime: the writer creates the segment 0600 under a temporary name and renames it
into place, so a reader never sees a half-written header and a stale segment left by a
crashed writer (SIGKILL) is replaced atomically. Readers detect the replacement with
``ContextReader.is_current()`` (inode and generation) and re-attach with ``reopen()``.
The writer unlinks the segment on ``close()``, at interpreter exit, and on
SIGTERM/SIGINT once ``install_signal_cleanup()`` is called. Readers map it read-only and
never unlink. Zero-copy views keep their mapping alive after ``close()`` until dropped.
"""

from __future__ import annotations

import atexit
import logging
import mmap
import os
import secrets
import signal
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

__all__ = [
    "LAYOUT_VERSION",
    "ContextShmError",
    "BadSegmentError",
    "ModelMismatchError",
    "ContextBusyError",
    "ContextSnapshot",
    "ContextWriter",
    "ContextReader",
    "install_signal_cleanup",
    "segment_path",
]

_log = logging.getLogger(__name__)

SHM_DIR = "/dev/shm"
MAGIC = b"AMOTKV\x00\x01"
LAYOUT_VERSION = 1
ALIGN = 64
HEADER_SIZE = 256
SLOT_HEADER_SIZE = 64
MODEL_ID_BYTES = 64

_STATIC = struct.Struct("<8sIIQQQQQIIIIII64s")
assert _STATIC.size == 144
_LATEST_OFFSET = 192  # own cache line, away from the static fields

# Slot header word indices (u64 words; stamp and next_position are read as i64).
_W_COUNTER, _W_SEQ, _W_STAMP, _W_NTOK, _W_NEXTPOS = range(5)

_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f2")}
_DTYPE_CODES = {v: k for k, v in _DTYPES.items()}


class ContextShmError(Exception):
    """Base class for shared-memory context errors."""


class BadSegmentError(ContextShmError, ValueError):
    """The segment is not a valid context segment (magic, version, sizes, truncation)."""


class ModelMismatchError(ContextShmError, ValueError):
    """The segment was written for a different model than the reader expects."""


class ContextBusyError(ContextShmError):
    """No consistent read within the retry budget (the writer kept overwriting)."""


def segment_path(name: str) -> str:
    """Path of the POSIX shared-memory object ``name`` (a leading '/' is allowed)."""
    bare = name[1:] if name.startswith("/") else name
    if not bare or "/" in bare or bare in (".", "..") or len(bare) > 200:
        raise ValueError(f"invalid shared-memory name {name!r}")
    return os.path.join(SHM_DIR, bare)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _to_numpy(kv) -> np.ndarray:
    """numpy array from a numpy array or a torch tensor (duck-typed: no torch import)."""
    if isinstance(kv, np.ndarray):
        return kv
    if hasattr(kv, "detach") and hasattr(kv, "numpy"):
        t = kv.detach().cpu()
        if str(t.dtype) not in ("torch.float32", "torch.float16"):
            t = t.float()  # e.g. bfloat16, which numpy lacks; the slot copy casts anyway
        return t.numpy()
    return np.asarray(kv)


@dataclass(frozen=True)
class _Geometry:
    slots: int
    max_tokens: int
    num_layers: int
    kv_heads: int
    head_dim: int
    dtype: np.dtype

    @property
    def tokens_elems(self) -> int:
        """Elements per token over all layers, K/V and heads."""
        return self.num_layers * 2 * self.kv_heads * self.head_dim

    @property
    def slot_stride(self) -> int:
        return _align(SLOT_HEADER_SIZE + self.tokens_elems * self.max_tokens * self.dtype.itemsize)

    @property
    def total_size(self) -> int:
        return HEADER_SIZE + self.slots * self.slot_stride

    def kv_shape(self, n: int) -> tuple:
        return (self.num_layers, 2, self.kv_heads, n, self.head_dim)


class _Mapping:
    """Typed views over a mapped segment: the live header words and each slot."""

    def __init__(self, mm: mmap.mmap, geo: _Geometry):
        self.mm = mm
        self.geo = geo
        self.latest = np.frombuffer(mm, np.dtype("<u8"), 2, _LATEST_OFFSET)
        self.words = []
        self.iwords = []
        self.payload = []
        for s in range(geo.slots):
            base = HEADER_SIZE + s * geo.slot_stride
            w = np.frombuffer(mm, np.dtype("<u8"), SLOT_HEADER_SIZE // 8, base)
            self.words.append(w)
            self.iwords.append(w.view(np.dtype("<i8")))
            self.payload.append(
                np.frombuffer(mm, geo.dtype, geo.tokens_elems * geo.max_tokens, base + SLOT_HEADER_SIZE)
            )

    def kv_view(self, slot: int, n: int) -> np.ndarray:
        return self.payload[slot][: self.geo.tokens_elems * n].reshape(self.geo.kv_shape(n))

    def close(self) -> None:
        """Drop our views and unmap; caller-held views keep the mapping alive instead."""
        self.latest = self.words = self.iwords = self.payload = None
        try:
            self.mm.close()
        except BufferError:
            pass  # a consumer still holds a zero-copy view; the GC unmaps later


# --------------------------------------------------------------------------- writer

_live_writers: "set[ContextWriter]" = set()
_live_lock = threading.Lock()
_atexit_installed = False


def _unlink_all_live() -> None:
    """Unlink every open writer's segment (signal handlers and atexit; unlink only)."""
    with _live_lock:
        writers = list(_live_writers)
    for w in writers:
        w._unlink()


def install_signal_cleanup(signals=(signal.SIGTERM, signal.SIGINT)) -> None:
    """Unlink open writers' segments on these signals, then chain the previous handler.

    The previous Python-level handler keeps its meaning: SIGINT's default still raises
    KeyboardInterrupt (so rclpy/spin loops and ``finally`` blocks behave as before), a
    previous callable is called, SIG_DFL is restored and the signal re-raised so the
    process dies by that signal, and a signal that was SIG_IGN stays ignored (not
    installed). Call from the main thread. With rclpy, call this *before*
    ``rclpy.init()``: rclpy's C handler chains to the handler that was present when it
    was installed, whereas ``signal.signal`` afterwards would displace rclpy's. Without
    this helper, atexit and ``close()`` in a ``finally`` still remove the segment on a
    normal or KeyboardInterrupt exit; nothing can on SIGKILL (the next writer with the
    same name replaces the stale segment).
    """
    for sig in signals:
        previous = signal.getsignal(sig)
        # SIG_IGN stays ignored; None is a handler installed from C that Python cannot
        # chain to; ours is already there.
        if previous is signal.SIG_IGN or previous is None or getattr(previous, "_automot_shm_cleanup", False):
            continue

        def handler(signum, frame, _previous=previous):
            _unlink_all_live()
            if callable(_previous):
                _previous(signum, frame)
            else:  # SIG_DFL: die the way the signal would
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        handler._automot_shm_cleanup = True
        signal.signal(sig, handler)


class ContextWriter:
    """Creates and owns a context segment; publishes K/V caches into its slots.

    Args:
        name: shared-memory name (``/dev/shm/<name>``); one name per writer.
        model_id: identifies the model that produced the cache (<= 64 utf-8 bytes).
        num_layers, kv_heads, head_dim: K/V geometry.
        max_tokens: per-slot capacity along the token axis.
        dtype: float32 or float16 (anything ``np.dtype`` accepts).
        slots: number of slots, >= 2.

    A segment already present under ``name`` is treated as left by a crashed writer and
    replaced (atomic rename); readers of the old one see ``is_current() == False``.
    Use as a context manager or call ``close()``; it is also unlinked at exit. One
    thread writes: ``write`` is not meant to be called concurrently.
    """

    def __init__(self, name: str, model_id: str, num_layers: int, kv_heads: int, head_dim: int,
                 max_tokens: int, dtype=np.float32, slots: int = 3):
        self.path = segment_path(name)
        self.name = os.path.basename(self.path)
        dt = np.dtype(dtype).newbyteorder("<")
        if dt not in _DTYPE_CODES:
            raise ValueError(f"dtype must be float32 or float16, got {np.dtype(dtype)}")
        if slots < 2:
            raise ValueError(f"slots must be >= 2, got {slots}")
        if min(num_layers, kv_heads, head_dim, max_tokens) < 1:
            raise ValueError("num_layers, kv_heads, head_dim and max_tokens must be >= 1")
        mid = model_id.encode("utf-8")
        if len(mid) > MODEL_ID_BYTES or b"\x00" in mid:
            raise ValueError(f"model_id must be <= {MODEL_ID_BYTES} utf-8 bytes without NUL")
        self.model_id = model_id
        self.geometry = _Geometry(slots, max_tokens, num_layers, kv_heads, head_dim, dt)
        self.generation = secrets.randbits(64) or 1
        self._seq = 0
        self._next_slot = 0
        self._closed = False
        self._unlinked = False
        self._unlink_lock = threading.Lock()
        self._map = self._create(mid)
        st = os.stat(self.path)
        self._ident = (st.st_dev, st.st_ino)
        global _atexit_installed
        with _live_lock:
            _live_writers.add(self)
            if not _atexit_installed:
                atexit.register(_unlink_all_live)
                _atexit_installed = True

    def _create(self, model_id_bytes: bytes) -> _Mapping:
        geo = self.geometry
        tmp = f"{self.path}.tmp{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.fchmod(fd, 0o600)  # exact mode whatever the umask
            os.ftruncate(fd, geo.total_size)  # tmpfs: zero-filled, so counters start at 0
            mm = mmap.mmap(fd, geo.total_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            _STATIC.pack_into(
                mm, 0, MAGIC, LAYOUT_VERSION, HEADER_SIZE, self.generation, geo.total_size,
                geo.slot_stride, HEADER_SIZE, os.getpid(), geo.slots, geo.max_tokens,
                geo.num_layers, geo.kv_heads, geo.head_dim, _DTYPE_CODES[geo.dtype], model_id_bytes)
            if os.path.lexists(self.path):
                _log.warning("replacing stale context segment %s", self.path)
            os.rename(tmp, self.path)  # atomic: replaces a stale segment, never half-visible
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        finally:
            os.close(fd)
        return _Mapping(mm, geo)

    @property
    def seq(self) -> int:
        """Sequence number of the last write (0 before the first)."""
        return self._seq

    def write(self, kv, stamp_ns: int, next_position: int) -> "tuple[int, int]":
        """Publish one context; returns ``(seq, slot)`` to announce (e.g. in ContextInfo).

        kv: ``[num_layers, 2, kv_heads, n, head_dim]`` numpy array or torch tensor
        (any float dtype; cast to the segment dtype), ``n <= max_tokens``.
        """
        if self._closed:
            raise ContextShmError(f"writer {self.name} is closed")
        arr = _to_numpy(kv)
        geo = self.geometry
        if (arr.ndim != 5 or arr.shape[:3] != (geo.num_layers, 2, geo.kv_heads)
                or arr.shape[4] != geo.head_dim or arr.shape[3] > geo.max_tokens):
            raise ValueError(f"kv shape {tuple(arr.shape)} is not [layers={geo.num_layers}, 2, "
                             f"kv_heads={geo.kv_heads}, n<={geo.max_tokens}, head_dim={geo.head_dim}]")
        n = arr.shape[3]
        slot = self._next_slot
        seq = self._seq + 1
        m = self._map
        words, iwords = m.words[slot], m.iwords[slot]
        c = int(words[_W_COUNTER])
        words[_W_COUNTER] = c + 1  # odd: readers of this slot back off
        np.copyto(m.kv_view(slot, n), arr, casting="same_kind")
        words[_W_SEQ] = seq
        iwords[_W_STAMP] = int(stamp_ns)
        words[_W_NTOK] = n
        iwords[_W_NEXTPOS] = int(next_position)
        words[_W_COUNTER] = c + 2  # even: slot consistent again
        # Readers verify the slot's own seq against latest, so these two need no ordering.
        m.latest[1] = slot
        m.latest[0] = seq
        self._seq = seq
        self._next_slot = (slot + 1) % geo.slots
        return seq, slot

    def _unlink(self) -> None:
        """Remove the name if it is still ours (a newer writer may have replaced it)."""
        with self._unlink_lock:
            if self._unlinked:
                return
            self._unlinked = True
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._ident:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Unlink the segment and unmap it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._unlink()
        with _live_lock:
            _live_writers.discard(self)
        self._map.close()

    def __enter__(self) -> "ContextWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- reader

@dataclass(frozen=True, eq=False)
class ContextSnapshot:
    """One context as read from a slot.

    ``kv`` is ``[num_layers, 2, kv_heads, num_tokens, head_dim]`` (K at index 0 of axis
    1, V at 1). For a zero-copy read (``copy=False``) it is a read-only view into the
    segment: use it, then call ``still_valid()``; if that is False the writer has begun
    overwriting the slot and whatever was computed from the view must be discarded.
    For ``copy=True`` it is a private array and ``still_valid()`` is always True.
    """

    seq: int
    slot: int
    stamp_ns: int
    num_tokens: int
    next_position: int
    generation: int
    model_id: str
    kv: np.ndarray
    _check: Callable[[], bool] = field(repr=False, compare=False, default=lambda: True)

    def still_valid(self) -> bool:
        return self._check()


class ContextReader:
    """Attaches read-only to a writer's segment; never unlinks it.

    Args:
        name: shared-memory name.
        expected_model_id: if given, a segment for another model raises
            ModelMismatchError (also on ``reopen()``).
        max_retries: consistent-read attempts per ``read_latest`` before
            ContextBusyError (only a reader slower than the writer's slot wrap-around
            can exhaust them).

    Raises FileNotFoundError if there is no segment (yet), BadSegmentError if it is
    not a valid context segment.
    """

    def __init__(self, name: str, expected_model_id: Optional[str] = None, max_retries: int = 64):
        self.path = segment_path(name)
        self.name = os.path.basename(self.path)
        self.expected_model_id = expected_model_id
        self.max_retries = max_retries
        self.reads = 0  # consistent snapshots returned
        self.retries = 0  # attempts discarded because the writer was inside or moved on
        self._map: Optional[_Mapping] = None
        self._attach()

    def _attach(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if st.st_size < HEADER_SIZE:
                raise BadSegmentError(f"{self.path}: truncated header ({st.st_size} < {HEADER_SIZE} bytes)")
            mm = mmap.mmap(fd, st.st_size, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)
        try:
            geo, generation, model_id = self._validate(mm, st.st_size)
        except BaseException:
            mm.close()
            raise
        if self._map is not None:
            self._map.close()
        self._map = _Mapping(mm, geo)
        self._ident = (st.st_dev, st.st_ino)
        self.geometry = geo
        self.generation = generation
        self.model_id = model_id

    def _validate(self, mm: mmap.mmap, size: int):
        (magic, version, header_size, generation, total_size, stride, slots_offset, _pid, slots,
         max_tokens, layers, heads, head_dim, dtype_code, mid) = _STATIC.unpack_from(mm, 0)
        where = self.path
        if magic != MAGIC:
            raise BadSegmentError(f"{where}: bad magic {magic!r}, not a context segment")
        if version != LAYOUT_VERSION:
            raise BadSegmentError(f"{where}: layout version {version}, this reader supports {LAYOUT_VERSION}")
        if header_size != HEADER_SIZE or slots_offset != HEADER_SIZE:
            raise BadSegmentError(f"{where}: header size {header_size}/slots offset {slots_offset}, "
                                  f"expected {HEADER_SIZE}")
        if dtype_code not in _DTYPES:
            raise BadSegmentError(f"{where}: unknown dtype code {dtype_code}")
        if slots < 2 or min(max_tokens, layers, heads, head_dim) < 1:
            raise BadSegmentError(f"{where}: bad geometry slots={slots} max_tokens={max_tokens} "
                                  f"layers={layers} kv_heads={heads} head_dim={head_dim}")
        geo = _Geometry(slots, max_tokens, layers, heads, head_dim, _DTYPES[dtype_code])
        if stride != geo.slot_stride or total_size != geo.total_size:
            raise BadSegmentError(f"{where}: slot stride {stride}/total {total_size} disagree with the "
                                  f"geometry ({geo.slot_stride}/{geo.total_size})")
        if size < total_size:
            raise BadSegmentError(f"{where}: truncated segment ({size} < {total_size} bytes)")
        try:
            model_id = mid.rstrip(b"\x00").decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadSegmentError(f"{where}: model id is not utf-8 ({e})") from None
        if self.expected_model_id is not None and model_id != self.expected_model_id:
            raise ModelMismatchError(f"{where}: segment is for model {model_id!r}, "
                                     f"expected {self.expected_model_id!r}")
        return geo, generation, model_id

    # -- reading

    def read_latest(self, copy: bool = False) -> Optional[ContextSnapshot]:
        """The most recently published context, or None if nothing was published yet."""
        latest = self._mapped().latest
        for _ in range(self.max_retries):
            seq, slot = int(latest[0]), int(latest[1])
            if seq == 0:
                return None
            if slot >= self.geometry.slots:
                raise BadSegmentError(f"{self.path}: latest slot {slot} >= slot count {self.geometry.slots}")
            snap = self._try_read(slot, seq, copy)
            if snap is not None:
                return snap
            self.retries += 1
        raise ContextBusyError(f"{self.path}: no consistent read in {self.max_retries} attempts")

    def read_slot(self, slot: int, expected_seq: int, copy: bool = False) -> Optional[ContextSnapshot]:
        """The context ``expected_seq`` from ``slot`` (as a ContextInfo announced it), or
        None if that slot no longer (or does not yet) hold it.

        No retries: a context is announced only after its write completed, so a counter
        that is odd or moves during the read means a newer write is overwriting the slot
        and the announced context is gone for good.
        """
        if not 0 <= slot < self._mapped().geo.slots:
            raise ValueError(f"slot {slot} out of range [0, {self.geometry.slots})")
        return self._try_read(slot, expected_seq, copy)

    def _try_read(self, slot: int, expected_seq: int, copy: bool) -> Optional[ContextSnapshot]:
        """One seqlock attempt; None if the writer was inside, moved on, or seq differs."""
        m = self._map
        words, iwords = m.words[slot], m.iwords[slot]
        c1 = int(words[_W_COUNTER])
        if c1 & 1:
            return None
        seq = int(words[_W_SEQ])
        if seq != expected_seq:
            return None
        stamp = int(iwords[_W_STAMP])
        n = int(words[_W_NTOK])
        next_position = int(iwords[_W_NEXTPOS])
        if n > self.geometry.max_tokens:
            if int(words[_W_COUNTER]) == c1:  # consistent yet impossible: corrupt segment
                raise BadSegmentError(f"{self.path}: slot {slot} token count {n} > max {self.geometry.max_tokens}")
            return None
        kv = m.kv_view(slot, n)
        if copy:
            kv = kv.copy()
        if int(words[_W_COUNTER]) != c1:
            return None
        self.reads += 1
        if copy:
            check = _always_valid
        else:
            def check(words=words, c1=c1):
                return int(words[_W_COUNTER]) == c1
        return ContextSnapshot(seq, slot, stamp, n, next_position, self.generation, self.model_id, kv, check)

    def _mapped(self) -> _Mapping:
        if self._map is None:
            raise ContextShmError(f"reader of {self.name} is closed")
        return self._map

    # -- lifetime

    def is_current(self) -> bool:
        """True while ``name`` still refers to the segment this reader is attached to
        (False once the writer exited, or restarted and created a new generation).

        Comparing (device, inode) is enough: our mapping keeps the old inode allocated,
        so a newly created segment cannot have the same one.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def reopen(self) -> None:
        """Attach to whatever segment ``name`` refers to now (after a writer restart).
        Snapshots taken before stay readable (their mapping lives on)."""
        self._attach()

    def close(self) -> None:
        """Unmap (never unlinks). Idempotent."""
        if self._map is not None:
            self._map.close()
            self._map = None

    def __enter__(self) -> "ContextReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _always_valid() -> bool:
    return True
