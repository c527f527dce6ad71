"""``python -m flowport.pipeline.sandbox --port 0``: the sandbox command on its own."""

from __future__ import annotations

import typer

from flowport.pipeline.sandbox.cli import register

app = typer.Typer(add_completion=False)
register(app)

if __name__ == "__main__":
    app()
