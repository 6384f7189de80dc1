"""Importing and using flask_statistics leaves the host app's imports alone.

pygal appends an old-style import hook to ``sys.meta_path``; on Python 3.10 and 3.11
it turns every failed import into an ImportWarning, which breaks apps whose tests run
with ``-W error::ImportWarning``. Each check runs in a fresh interpreter, because the
hook and ``sys.modules`` are process-wide.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error::ImportWarning", "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_importing_the_extension_does_not_import_pygal(tmp_path: Path) -> None:
    result = run_python(
        """
        import sys
        import flask_statistics
        from flask_statistics import Statistics
        assert "pygal" not in sys.modules, "pygal was imported"
        print("ok")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


DASHBOARD_THEN_MISSING_IMPORT = """
    import sys
    import warnings

    def draw_dashboard():
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from flask_statistics import Statistics

        app = Flask("host")
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + {db_path!r}
        app.config["STATISTICS_WRITE_MODE"] = "sync"
        db = SQLAlchemy(app)
        Statistics(app, db)
        with app.app_context():
            app.extensions["statistics"].table.create(db.engine)

        @app.route("/hello")
        def hello():
            return "hello"

        client = app.test_client()
        assert client.get("/hello").status_code == 200
        page = client.get("/statistics/")
        assert page.status_code == 200, page.status_code
        assert page.text.count("<svg") >= 3, "the dashboard drew no charts"
        assert "pygal" in sys.modules

    {run}

    try:
        import some_module_that_does_not_exist  # noqa: F401
    except ModuleNotFoundError:
        print("ModuleNotFoundError")
    """


def test_failed_imports_stay_import_errors_after_the_dashboard_drew_charts(tmp_path: Path) -> None:
    code = DASHBOARD_THEN_MISSING_IMPORT.format(run="draw_dashboard()", db_path=str(tmp_path / "s.db"))
    result = run_python(code, tmp_path)
    # Under -W error::ImportWarning an ImportWarning anywhere ends the script with a
    # traceback instead of the line printed on ModuleNotFoundError.
    assert result.returncode == 0, result.stderr
    assert "ImportWarning" not in result.stderr
    assert result.stdout.strip() == "ModuleNotFoundError"


def test_the_hook_is_gone_even_when_the_app_imported_pygal_first(tmp_path: Path) -> None:
    # A host app that imports pygal itself lives with the hook until the dashboard
    # draws its first chart; from then on failed imports are errors again.
    run = """with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImportWarning)
        import pygal
        draw_dashboard()"""
    code = DASHBOARD_THEN_MISSING_IMPORT.format(run=run, db_path=str(tmp_path / "s.db"))
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ModuleNotFoundError"
