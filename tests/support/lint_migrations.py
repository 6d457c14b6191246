"""The migrations policy, enforced: ``make lint`` runs ``python -m tests.support.lint_migrations``.

The policy (docs/operations.md "Upgrades without downtime"): a release's migrations run while the
previous release still serves (the chart's pre-upgrade job, then a rolling update), so every migration
must leave a schema the previous release can still read and write: *expand, then contract*. The kept
linter, django-migration-linter, reads the SQL of each migration (``sqlmigrate``) and fails on what
breaks a running release: dropping or renaming a column or a table, adding a NOT NULL column without a
database default (``db_default``; Django's ``default=`` is dropped again after the backfill, so the old
release's inserts fail), changing a column's type, adding a unique constraint to an existing table.

Two ways past it, both reviewable in the diff:

- **The contract step's mark**: a migration whose name ends in ``_contract`` (e.g.
  ``0014_remove_instance_legacy_contract``) is the developer's statement that the release *before*
  it no longer reads or writes what it removes or changes (the expand step shipped in an earlier
  release). The mark is the file's name on purpose: nothing of the linter, a development dependency,
  is imported by a migration (its ``IgnoreMigration`` operation would make ``manage.py migrate``
  fail in production, where the linter is not installed); the name shows in ``showmigrations`` and in
  the release's list of migrations, so an operator sees which upgrades contract; and it survives a
  renumbering.
- **The baseline** (``tests/support/migrations_baseline.txt``, ``app.name`` a line): the migrations
  that shipped before the policy, and third-party migrations checked by hand after a version bump.

sqlmigrate renders SQL with a live PostgreSQL connection (it quotes values through it and reads which
migrations are applied), so this needs the server of ``DATABASE_URL`` (its maintenance database
``postgres`` is used: nothing is written): ``make lint`` gives it the suite's own server
(``tests/support/postgres.py``, started on demand, as ``make test`` does) unless one is set.
"""

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[2]
BASELINE = Path(__file__).with_name("migrations_baseline.txt")
CONTRACT_SUFFIX = "_contract"


def baseline(path: Path = BASELINE) -> frozenset[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def is_contract_step(migration_name: str) -> bool:
    return migration_name.endswith(CONTRACT_SUFFIX)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("apps", nargs="*", help="lint only these apps' migrations (default: all)")
    parser.add_argument("--no-cache", action="store_true", help="lint every migration again")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list the skipped migrations")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings.test")
    os.environ["PAAS_DB_POOL_MAX"] = (
        "0"  # one command, one connection (and a clear error, not a pool timeout)
    )
    if os.environ.get("DATABASE_URL"):
        # Any database of the server will do (nothing is written): its maintenance database, so that the
        # one DATABASE_URL names need not exist (the suite creates and uses test_<name> beside it).
        os.environ["DATABASE_URL"] = urlunsplit(
            urlsplit(os.environ["DATABASE_URL"])._replace(path="/postgres")
        )
    import django

    django.setup()
    from django_migration_linter import MigrationLinter

    frozen = baseline()

    class PolicyLinter(MigrationLinter):
        def should_ignore_migration(self, app_label, migration_name, operations=(), is_initial=False):
            if f"{app_label}.{migration_name}" in frozen or is_contract_step(migration_name):
                return True
            return super().should_ignore_migration(app_label, migration_name, operations, is_initial)

    linter = PolicyLinter(
        str(REPO),
        include_apps=args.apps or None,
        no_cache=args.no_cache,
        quiet=[] if args.verbose else ["ignore"],
    )
    linter.lint_all_migrations()
    linter.print_summary()
    if linter.has_errors:
        print(
            "A migration above would break the running release. Split it: expand now, contract in a later "
            "release, and name the contract step `<number>_<what>_contract` "
            '(docs/operations.md, "Upgrades without downtime").',
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
