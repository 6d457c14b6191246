"""The migrations policy (tests/support/lint_migrations.py, run by ``make lint`` before the suite): a
migration that would break the running release fails unless it is marked as a contract step.

Two throwaway apps, installed only in a settings module of the test's own, are linted by the real tool
in a process of its own (against the suite's PostgreSQL server, which renders their SQL): one with an
expand step and three breaking migrations, one with expand steps and a marked contract step.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.lint_migrations import baseline

REPO = Path(__file__).resolve().parents[2]

HEADER = "from django.db import migrations, models\n\n\n"


def _migration(dependencies: list, operations: str) -> str:
    ops = textwrap.indent(operations, " " * 8)
    body = f"    dependencies = {dependencies!r}\n    operations = [\n{ops}\n    ]\n"
    return HEADER + "class Migration(migrations.Migration):\n" + body


def _app(root: Path, label: str, model: str, steps: dict[str, str]) -> None:
    """``label`` with a model ``model`` (name, legacy, title) created by 0001_initial, then ``steps``."""
    migrations = root / label / "migrations"
    migrations.mkdir(parents=True)
    (root / label / "__init__.py").write_text("")
    (root / label / "models.py").write_text("")
    (migrations / "__init__.py").write_text("")
    initial = (
        f"migrations.CreateModel(name={model!r}, fields=[\n"
        '    ("id", models.BigAutoField(primary_key=True)),\n'
        '    ("name", models.CharField(max_length=50)),\n'
        '    ("legacy", models.CharField(max_length=50)),\n'
        '    ("title", models.CharField(max_length=50)),\n'
        "]),"
    )
    (migrations / "0001_initial.py").write_text(_migration([], initial))
    previous = "0001_initial"
    for name, operation in steps.items():
        (migrations / f"{name}.py").write_text(_migration([(label, previous)], operation))
        previous = name


def test_a_breaking_migration_fails_the_lint_and_a_marked_contract_step_passes(tmp_path):
    _app(
        tmp_path,
        "breakapp",
        "Thing",
        {
            # expand: a NOT NULL column with a database default (the old release's inserts get it)
            "0002_thing_size": 'migrations.AddField("thing", "size", models.IntegerField(db_default=0)),',
            # a NOT NULL column whose default is Django's only (dropped after the backfill)
            "0003_thing_flag": 'migrations.AddField("thing", "flag", models.BooleanField(default=False)),',
            "0004_rename_title": 'migrations.RenameField("thing", "title", "heading"),',
            "0005_remove_legacy": 'migrations.RemoveField("thing", "legacy"),',
        },
    )
    _app(
        tmp_path,
        "goodapp",
        "Widget",
        {
            "0002_widget_size": 'migrations.AddField("widget", "size", models.IntegerField(db_default=0)),',
            "0003_widget_note": 'migrations.AddField("widget", "note", models.TextField(null=True)),',
            # the same drop as breakapp's 0005, marked: the release before it stopped using the column
            "0004_remove_widget_legacy_contract": 'migrations.RemoveField("widget", "legacy"),',
        },
    )
    (tmp_path / "policy_settings.py").write_text(
        "from paas.settings.test import *  # noqa: F403\n"
        "from paas.settings.test import INSTALLED_APPS\n\n"
        'INSTALLED_APPS = [*INSTALLED_APPS, "breakapp", "goodapp"]\n'
    )
    driver = (
        "from tests.support import lint_migrations\n"
        "for app in ('breakapp', 'goodapp'):\n"
        "    print('=== ' + app, flush=True)\n"
        "    print('exit', lint_migrations.main([app, '--no-cache', '--verbose']), flush=True)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "DJANGO_SETTINGS_MODULE": "policy_settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", driver], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    broken, good = result.stdout.split("=== goodapp")
    broken = broken.split("=== breakapp")[1]

    assert "exit 1" in broken
    assert "(breakapp, 0001_initial)... OK" in broken  # a new table breaks nothing
    assert "(breakapp, 0002_thing_size)... OK" in broken
    assert "(breakapp, 0003_thing_flag)... ERR" in broken and "NOT NULL constraint on columns" in broken
    assert "(breakapp, 0004_rename_title)... ERR" in broken and "RENAMING columns" in broken
    assert "(breakapp, 0005_remove_legacy)... ERR" in broken and "DROPPING columns" in broken
    assert "would break the running release" in result.stderr

    assert "exit 0" in good
    assert "(goodapp, 0002_widget_size)... OK" in good and "(goodapp, 0003_widget_note)... OK" in good
    assert "(goodapp, 0004_remove_widget_legacy_contract)... IGNORE" in good
    assert "ERR" not in good


def test_the_baseline_holds_only_existing_migrations():
    """A line naming no migration (a typo, a renamed file) would be a silent hole in the policy."""
    from django.db.migrations.loader import MigrationLoader

    on_disk = {
        f"{app}.{name}" for app, name in MigrationLoader(None, ignore_no_migrations=True).disk_migrations
    }
    listed = baseline()
    assert listed and listed <= on_disk, sorted(listed - on_disk)
    assert not any(name.endswith("_contract") for name in listed)
