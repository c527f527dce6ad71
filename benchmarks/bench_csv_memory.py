"""Peak memory and speed of the CSV connector on generated files of 100k and 1M rows.

Each measurement runs in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own. The file
has 10 columns, one in ten rows holding a quoted multi-line field, and a row about every 50,000
with the wrong field count. For comparison the same file is also read with pandas' chunked C
reader (``dtype=str``), which streams too but cannot give each record's starting line.

    .venv/bin/python benchmarks/bench_csv_memory.py            # 100k and 1M rows
    .venv/bin/python benchmarks/bench_csv_memory.py 200000      # other sizes
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

COLUMNS = ["id", "sku", "title", "slug", "price", "stock", "created_at", "tags", "body", "zip"]


def generate(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(COLUMNS) + "\n")
        for n in range(rows):
            body = (
                f'"Line one of {n}\nline two, with ""quotes""\nline three"'
                if n % 10 == 0
                else f"plain body {n}"
            )
            if n % 50_000 == 25_000:
                handle.write(f"{n},{'too many fields,' * 10}end\n")
                continue
            handle.write(
                f"{n},SKU-{n:08d},Product número {n},product-{n},{n % 997}.99,{n % 13},"
                f"2024-01-{n % 28 + 1:02d}T10:00:00Z,tag{n % 7};tag{n % 11},{body},"
                f"{n % 100000:05d}\n"
            )


def measure_connector(path: str) -> dict[str, object]:
    import asyncio
    import resource
    import time

    from flowport.connectors import SourceRecord
    from flowport.connectors.csv_source import CsvSourceConfig

    async def run() -> tuple[int, int]:
        source = CsvSourceConfig(path=Path(path), key="id").open(base_dir=Path(), env={})
        records = errors = 0
        async for item in source.records():
            if isinstance(item, SourceRecord):
                records += 1
            else:
                errors += 1
        return records, errors

    started = time.perf_counter()
    records, errors = asyncio.run(run())
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "records": records,
        "errors": errors,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_mb, 1),
    }


def measure_pandas(path: str) -> dict[str, object]:
    import resource
    import time

    import pandas as pd

    started = time.perf_counter()
    rows = 0
    bad: list[list[str]] = []

    def keep_bad(line: list[str]) -> None:
        bad.append(line)  # and skip it: None tells pandas to drop the line

    reader = pd.read_csv(
        path,
        chunksize=10_000,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        engine="python",
        on_bad_lines=keep_bad,
    )
    for chunk in reader:
        rows += len(chunk)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "records": rows,
        "errors": len(bad),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_mb, 1),
    }


def in_subprocess(function: str, path: Path) -> dict[str, object]:
    root = Path(__file__).resolve().parents[1]
    here = str(Path(__file__).parent)
    code = f"import json, sys; sys.path[:0] = [{str(root)!r}, {here!r}]; "
    code += f"import bench_csv_memory as b; print(json.dumps(b.{function}({str(path)!r})))"
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [100_000, 1_000_000]
    with tempfile.TemporaryDirectory() as folder:
        for rows in sizes:
            path = Path(folder) / f"bench-{rows}.csv"
            generate(path, rows)
            size_mb = path.stat().st_size / 1024 / 1024
            for label, function in (
                ("flowport csv", "measure_connector"),
                ("pandas python engine", "measure_pandas"),
            ):
                result = in_subprocess(function, path)
                print(
                    f"{rows:>9,} rows ({size_mb:6.1f} MB)  {label:<22} "
                    f"records={result['records']:>9,} errors={result['errors']:>3} "
                    f"time={result['seconds']:>6}s peak_rss={result['peak_rss_mb']:>6} MB",
                    flush=True,
                )


if __name__ == "__main__":
    main()
