"""Reading candle files as bytes: plain text, ``.gz`` and ``.zip`` (every CSV member), with
physical line numbers for error messages.

A :class:`TextSource` is one CSV text (a file, or one member of a zip). Byte-order marks are
removed and UTF-16 text (MetaTrader 5 exports) is re-encoded as UTF-8, so the CSV readers see
plain UTF-8 bytes.
"""

from __future__ import annotations

import gzip
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forex_diffusion.errors import DataError, NotFoundError

_ZIP_MEMBER_SUFFIXES = (".csv", ".tsv")  # HistData zips also hold a .txt status report


@dataclass
class TextSource:
    """One CSV text and where it came from (``name`` is what error messages print)."""

    name: str
    data: bytes
    _nonempty_lines: np.ndarray | None = field(default=None, repr=False)

    def nonempty_lines(self) -> np.ndarray:
        """1-based physical line numbers of the non-empty lines, shape (n_nonempty,), int64.

        A line is empty when it holds nothing (``\\r`` of a CRLF ending aside); this matches
        what the CSV reader skips, so row k of the reader is line ``nonempty_lines()[k]``.
        """
        if self._nonempty_lines is None:
            buf = np.frombuffer(self.data, dtype=np.uint8)
            ends = np.flatnonzero(buf == 10)
            if len(buf) and buf[-1] != 10:
                ends = np.r_[ends, len(buf)]
            starts = np.r_[0, ends[:-1] + 1] if len(ends) else np.zeros(0, dtype=np.int64)
            length = ends - starts
            has_cr = np.zeros(len(ends), dtype=bool)
            nz = length > 0
            has_cr[nz] = buf[ends[nz] - 1] == 13
            empty = (length == 0) | ((length == 1) & has_cr)
            self._nonempty_lines = np.flatnonzero(~empty).astype(np.int64) + 1
        return self._nonempty_lines

    def head_lines(self, n: int = 5) -> list[str]:
        """The first ``n`` non-empty lines as text (for format detection and messages)."""
        text = self.data[: 64 * 1024].decode("utf-8", errors="replace")
        lines = [line.rstrip("\r") for line in text.split("\n")]
        return [line for line in lines if line.strip()][:n]


def _normalise_text(data: bytes) -> bytes:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16").encode("utf-8")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    if len(data) >= 4 and data[1] == 0 and data[3] == 0 and data[0] != 0:
        return data.decode("utf-16-le").encode("utf-8")  # UTF-16 without a byte-order mark
    return data


def open_sources(path: str | Path) -> list[TextSource]:
    """The CSV texts held by ``path`` (one for a plain or gzip file, one per CSV member of a zip).

    Raises:
        NotFoundError: the file does not exist.
        DataError: a directory, an unreadable, empty or corrupt file, or a zip without CSV files.
    """
    p = Path(path)
    if p.is_dir():
        inside = sorted(q.name for q in p.iterdir() if q.is_file())[:5]
        raise DataError(
            f"{p} is a directory, not a candle file; give the files themselves"
            + (
                f" (it holds {', '.join(inside)}{' ...' if len(inside) == 5 else ''})"
                if inside
                else ""
            )
        )
    if not p.is_file():
        raise NotFoundError(f"no such file: {p} (check the path)")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot read the file ({exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{p}: corrupt gzip file ({exc}); download it again") from exc
        sources = [TextSource(str(p), _normalise_text(raw))]
    elif raw[:4] in (b"PK\x03\x04", b"PK\x05\x06") or p.suffix.lower() == ".zip":
        sources = _zip_sources(p)
    else:
        sources = [TextSource(str(p), _normalise_text(raw))]
    for src in sources:
        if not src.data.strip():
            raise DataError(f"{src.name}: the file is empty (no candles to import)")
    return sources


def _zip_sources(p: Path) -> list[TextSource]:
    try:
        with zipfile.ZipFile(p) as zf:
            if not zf.namelist():
                raise DataError(
                    f"{p}: the zip archive is empty (no files in it); nothing to import"
                )
            names = [
                n
                for n in zf.namelist()
                if not n.endswith("/") and n.lower().endswith(_ZIP_MEMBER_SUFFIXES)
            ]
            if not names:
                raise DataError(
                    f"{p}: the zip holds no .csv file (members: {zf.namelist()[:10]}); "
                    "unpack it and import the CSV file"
                )
            return [
                TextSource(f"{p}:{name}", _normalise_text(zf.read(name))) for name in sorted(names)
            ]
    except zipfile.BadZipFile as exc:
        raise DataError(f"{p}: corrupt zip file ({exc}); download it again") from exc
