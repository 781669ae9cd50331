"""``/v1/data...`` and ``/v1/candles/{asset}``: the store's contents, file import, chart bars."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import pandas as pd
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from forex_diffusion.data.importers import FORMAT_NAMES, ImportReport, import_files
from forex_diffusion.data.store import AssetInfo
from forex_diffusion.errors import DataError, LimitError
from forex_diffusion.service.auth import require_token
from forex_diffusion.service.routes import ERRORS
from forex_diffusion.service.schemas import NAME
from forex_diffusion.service.state import ServiceState
from forex_diffusion.timeframes import to_utc

router = APIRouter(
    prefix="/v1", dependencies=[Depends(require_token)], responses=ERRORS, tags=["ui"]
)
MAX_GAPS_SHOWN = 50


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(_state)]


def info_payload(info: AssetInfo) -> dict[str, Any]:
    """An asset's store summary as JSON (the longest gaps first, at most ``MAX_GAPS_SHOWN``)."""
    gaps = sorted(info.gaps, key=lambda g: g.duration, reverse=True)[:MAX_GAPS_SHOWN]
    return {
        "asset": info.asset,
        "base_timeframe": info.base_timeframe,
        "bars": info.bars,
        "first": info.first.isoformat(),
        "last": info.last.isoformat(),
        "gap_count": info.gap_count,
        "closures": info.closures,
        "synthetic": info.synthetic,
        "sources": list(info.sources),
        "gaps": [
            {
                "start": g.start.isoformat(),
                "end": g.end.isoformat(),
                "minutes": g.duration.total_seconds() / 60,
            }
            for g in gaps
        ],
    }


@router.get("/data")
def data(state: StateDep) -> dict[str, Any]:
    """Every stored asset: range, bars, gaps, closures, sources; and the import formats."""
    return {
        "data_dir": str(state.store.data_dir),
        "assets": [info_payload(state.store.info(a)) for a in state.store.assets()],
        "formats": ["auto", *FORMAT_NAMES],
    }


def report_payload(report: ImportReport, folder: str = "") -> dict[str, Any]:
    """The importer's summary: totals, one row per file, bad rows (``file:line: reason``),
    file names without ``folder`` (where the uploads were kept)."""

    def bare(text: str) -> str:
        return text.replace(folder.rstrip("/") + "/", "") if folder else text

    return {
        "asset": report.asset,
        "rows_read": report.rows_read,
        "rows_written": report.rows_written,
        "duplicates_dropped": report.duplicates_dropped,
        "already_stored": report.already_stored,
        "first": report.first.isoformat(),
        "last": report.last.isoformat(),
        "total_bars": report.write.total_bars,
        "files": [
            {
                "file": bare(f.file),
                "format": f.format,
                "tz": f.tz,
                "rows_read": f.rows_read,
                "rows_valid": f.rows_valid,
                "duplicates": f.duplicates,
                "conflicting_duplicates": f.conflicting_duplicates,
                "bad_rows": f.bad_rows,
                "first": None if f.first is None else f.first.isoformat(),
                "last": None if f.last is None else f.last.isoformat(),
            }
            for f in report.files
        ],
        "bad_rows": [bare(str(b)) for b in report.bad_rows],
    }


@router.post("/data/import")
async def import_upload(
    state: StateDep,
    asset: Annotated[str, Form(pattern=NAME)],
    files: Annotated[list[UploadFile], File(description="Candle files (csv, txt, gz, ...).")],
    format: Annotated[str, Form()] = "auto",
    tz: Annotated[str | None, Form()] = None,
    skip_bad: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Import uploaded candle files into the store (the ``data import`` command's function);
    a bad row is refused as 422 ``DataError`` naming ``file:line: reason`` unless
    ``skip_bad``, which imports the rest and lists them."""
    if not files:
        raise DataError("no file to import: choose at least one file")
    with tempfile.TemporaryDirectory(prefix="fxd-import-") as tmp:
        paths: list[Path] = []
        for upload in files:
            name = re.sub(r"[^\w.\-]", "_", Path(upload.filename or "upload.csv").name)
            if not name.strip("._"):
                raise DataError(f"file name {upload.filename!r} is not allowed")
            path = Path(tmp) / name
            if path in paths:
                raise DataError(f"file {name} was given twice")
            path.write_bytes(await upload.read())
            paths.append(path)
        try:
            report = await anyio.to_thread.run_sync(
                lambda: import_files(
                    paths, asset, state.store, fmt=format, tz=tz or None, skip_bad=skip_bad
                )
            )
        except DataError as exc:  # name the uploaded files, not where they were kept
            raise DataError(str(exc).replace(tmp + "/", "")) from None
        payload = report_payload(report, tmp)
    state.last_bars.pop(report.asset, None)  # read again from the store
    return payload


@router.get("/candles/{asset}")
def candles(
    asset: str,
    state: StateDep,
    timeframe: Annotated[str, Query(pattern=r"^\d+[mh]$")] = "5m",
    end: Annotated[str | None, Query(description="Exclusive end (UTC); default: latest.")] = None,
    start: Annotated[
        str | None, Query(description="Start (UTC); default: `bars` before end.")
    ] = None,
    bars: Annotated[int, Query(ge=1, le=5000)] = 300,
) -> dict[str, Any]:
    """Stored candles (resampled causally to ``timeframe``) for the chart: the ``bars`` bars
    before ``end``, or those in [start, end)."""
    name = asset.upper()
    info_last = state.last_bar(name)
    stop = to_utc(end) if end else info_last + pd.Timedelta(days=1)
    step = pd.Timedelta(timeframe.replace("m", "min"))
    begin = to_utc(start) if start else stop - step * bars * 3 - pd.Timedelta(days=3)
    if begin >= stop:
        raise DataError(f"start {begin} is not before end {stop}")
    if (stop - begin) / step > 20 * 5000:
        raise LimitError("the candle range is too long for the chart; narrow it")
    try:
        frame = state.store.load(name, start=begin, end=stop, timeframe=timeframe)
    except DataError:
        frame = pd.DataFrame(columns=["open", "high", "low", "close"])
    if not start:
        frame = frame.iloc[-bars:]
    return {
        "asset": name,
        "timeframe": timeframe,
        "candles": [
            {
                "time": int(t.timestamp()),
                "open": float(r.open),
                "high": float(r.high),
                "low": float(r.low),
                "close": float(r.close),
            }
            for t, r in zip(frame.index, frame.itertuples(), strict=True)
        ],
    }
