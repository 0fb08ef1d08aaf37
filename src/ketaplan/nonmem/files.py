"""NONMEM datasets on disk, streamed by chunks of whole individuals: CSV or Parquet in, CSV or Parquet out.

A dataset larger than memory is read in blocks (pyarrow's streaming CSV reader, Parquet row batches),
cut at the last change of ID in each block so that every chunk holds whole individuals, simulated, and
written before the next block is read: memory is bounded by the chunk, not the file. The output goes to
a temporary file beside the target and replaces it only when every chunk has succeeded, so a bad row
anywhere leaves nothing written. Row numbers in messages count from the top of the file.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ketaplan.errors import InputError
from ketaplan.limits import RECORDS_PER_INDIVIDUAL
from ketaplan.nonmem.dataset import column_map, csv_error, csv_header
from ketaplan.nonmem.predpp import PredppModel, load_model
from ketaplan.nonmem.simulate import simulate_dataset

CHUNK_ROWS = 500_000
"""Rows per chunk (whole individuals; a chunk grows past this only to finish an individual)."""

FORMATS = (".csv", ".parquet")


def read_chunks(path: str | Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, pd.DataFrame]]:
    """Yield ``(first row, frame)`` for consecutive chunks of whole individuals of a CSV or Parquet dataset.

    CSV cells are read as text (as :func:`~ketaplan.nonmem.dataset.read_dataset` does), so that checks can
    name a bad cell and carried-through columns are written back unchanged.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("DATA", str(path), "the dataset file does not exist")
    if p.suffix.lower() not in FORMATS:
        raise InputError("DATA", str(path), "a .csv or .parquet file is required")
    batches = _csv_batches(p) if p.suffix.lower() == ".csv" else _parquet_batches(p, chunk_rows)
    pending: pd.DataFrame | None = None
    first_row = 0
    for batch in batches:
        frame = batch.to_pandas()
        pending = frame if pending is None else pd.concat([pending, frame], ignore_index=True)
        while len(pending) > chunk_rows:
            cut = _individual_start_after(pending, chunk_rows)
            if cut is None:
                longest = len(pending) - chunk_rows  # rows of one individual so far (no ID change among them)
                if longest > RECORDS_PER_INDIVIDUAL.value:  # refused before more of it is read
                    last_id = str(pending[column_map(pending)["ID"]].iloc[-1]).strip()
                    RECORDS_PER_INDIVIDUAL.check(f"rows from {first_row + chunk_rows + 1}, ID {last_id}", longest,
                                                 "split the individual's records or give them fewer rows")
                break  # the individual at the end may go on in the next block
            yield first_row, pending.iloc[:cut].reset_index(drop=True)
            first_row += cut
            pending = pending.iloc[cut:].reset_index(drop=True)
    if pending is None or first_row + len(pending) == 0:
        raise InputError("DATA", str(path), "the dataset needs at least one row")
    if len(pending):
        yield first_row, pending


def count_rows(path: str | Path) -> int:
    """The rows of a dataset file: exact for Parquet, estimated for CSV from the length of its first lines."""
    p = Path(path)
    if not p.is_file():
        return 0
    if p.suffix.lower() == ".parquet":
        try:
            return pq.ParquetFile(p).metadata.num_rows
        except (pa.ArrowInvalid, OSError):
            return 0
    with p.open("rb") as fh:
        sample = fh.read(1 << 16)
    lines = max(sample.count(b"\n"), 1)
    return max(1, round(p.stat().st_size * lines / max(len(sample), 1)) - 1)


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    header = csv_header(path)
    try:
        reader = pa_csv.open_csv(
            path, read_options=pa_csv.ReadOptions(block_size=16 << 20),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()),
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False))
        yield from reader
    except pa.ArrowInvalid as exc:
        raise csv_error(path, exc) from None


def _parquet_batches(path: Path, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError("DATA", str(path), f"could not be read as Parquet ({_arrow_reason(exc)})") from None


def _arrow_reason(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def _individual_start_after(frame: pd.DataFrame, rows: int) -> int | None:
    """The first row at or after ``rows`` where a new individual (a change of ID) starts, if any."""
    cols = column_map(frame)
    if "ID" not in cols:
        return rows  # the chunk's own check names the missing column
    ids = frame[cols["ID"]].astype(str).str.strip().to_numpy()
    changes = (ids[rows:] != ids[rows - 1 : -1]).nonzero()[0]
    return rows + int(changes[0]) if len(changes) else None


def simulate_file(data: str | Path, model: Mapping | str | Path | PredppModel, out: str | Path,
                  chunk_rows: int = CHUNK_ROWS, progress: Callable[[int], None] | None = None) -> int:
    """Simulate a dataset file chunk by chunk into ``out`` (.csv or .parquet); returns the rows written.

    ``progress`` is called with the number of rows done after each chunk. Raises :class:`InputError`
    (naming the row from the top of the file) and then writes nothing.
    """
    target = Path(out)
    if target.suffix.lower() not in FORMATS:
        raise InputError("--out", str(out), "a .csv or .parquet file is required")
    pm = model if isinstance(model, PredppModel) else load_model(model)
    temporary = target.with_name(f".{target.name}.partial")
    writer = _ParquetOut(temporary) if target.suffix.lower() == ".parquet" else _CsvOut(temporary)
    rows = 0
    try:
        for first_row, frame in read_chunks(data, chunk_rows):
            try:
                result = simulate_dataset(frame, pm)
            except InputError as exc:
                raise _from_top(exc, first_row) from None
            writer.write(result)
            rows += len(result)
            if progress is not None:
                progress(rows)
        writer.close()
        os.replace(temporary, target)
    finally:
        writer.close()
        temporary.unlink(missing_ok=True)
    return rows


_ROW = re.compile(r"^row (\d+)")


def _from_top(exc: InputError, first_row: int) -> InputError:
    """The error with its row counted from the top of the file rather than the chunk."""
    field = _ROW.sub(lambda m: f"row {int(m.group(1)) + first_row}", exc.field)
    return InputError(field, exc.value, exc.allowed)


class _CsvOut:
    """CSV written chunk by chunk: a plain header, then values quoted only where they must be."""

    def __init__(self, path: Path) -> None:
        self.fh = path.open("wb")
        self.header_written = False

    def write(self, frame: pd.DataFrame) -> None:
        if not self.header_written:
            line = io.StringIO()
            csv.writer(line, lineterminator="\n").writerow(map(str, frame.columns))
            self.fh.write(line.getvalue().encode())
            self.header_written = True
        table = pa.Table.from_pandas(frame, preserve_index=False)
        buffer = io.BytesIO()
        try:
            pa_csv.write_csv(table, buffer, write_options=pa_csv.WriteOptions(include_header=False,
                                                                              quoting_style="none"))
        except pa.ArrowInvalid:  # a cell with a comma, quote or line break: quote just those (slower)
            buffer = io.BytesIO()
            frame.to_csv(buffer, header=False, index=False, lineterminator="\n")
        self.fh.write(buffer.getbuffer())

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()


class _ParquetOut:
    """Parquet written chunk by chunk (one row group per chunk); the schema is the first chunk's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
