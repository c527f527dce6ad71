"""What the preset tests share: the exports in ../shared and ``flowport init`` run in-process."""

from __future__ import annotations

from typer import Typer
from typer.testing import CliRunner, Result

from flowport.pipeline.presets.cli import register
from tests.conftest import ACCEPTANCE

THEME_UNIT_TEST = ACCEPTANCE / "wxr-theme-unit-test" / "themeunittestdata.wordpress.xml"
CORE_FIXTURES = ACCEPTANCE / "wp-rest-api-core-fixtures"


def invoke_presets(*args: str) -> Result:
    """The preset commands (``init ...``) on an app of their own, through typer's test runner."""
    app = Typer()

    # A callback keeps ``init`` a subcommand: typer runs an app's only command without its name.
    @app.callback()
    def main() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, list(args), catch_exceptions=False)
