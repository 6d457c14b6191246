#!/bin/sh
# Back up the platform: the audit checkpoint store, then the database (pg_dump, custom format).
#
#   DATABASE_URL=postgres://... PAAS_AUDIT_CHECKPOINT_DIR=/var/lib/gpu-paas/audit-checkpoints \
#     deploy/backup.sh /backups
#
# Writes /backups/gpu-paas-backup-<UTC time>/ with:
#   audit-checkpoints.tar  the signed chain-head checkpoints (PAAS_AUDIT_CHECKPOINT_DIR)
#   database.dump          pg_dump --format=custom of DATABASE_URL (one consistent snapshot)
#   migrations.txt         the migrations applied in that database (restore with this release or newer)
#   SHA256SUMS             checksums of the three, checked by deploy/restore.sh
# The directory appears complete or not at all (written as <name>.partial, renamed at the end).
#
# The keys are NOT in the backup, on purpose: PAAS_ENCRYPTION_KEYS (without them every stored
# kubeconfig and credential is unreadable), PAAS_AUDIT_CHECKPOINT_KEY (without it the checkpoints
# cannot be verified) and SECRET_KEY live in your secret store and are needed to restore.
#
# The checkpoints are copied BEFORE the dump starts: a checkpoint is written after its events commit,
# so every copied checkpoint is covered by the later snapshot (a chain may run past its checkpoint,
# which is fine); the other order could restore a checkpoint newer than the chain, which
# `manage.py audit_verify` rightly reports as a cut chain.
#
# pg_dump must be of the server's major version or newer: PG_BIN=/usr/lib/postgresql/<N>/bin picks
# one (default: the one on PATH). Environment only, so no password appears in the process list.
set -eu

usage() {
    echo "usage: DATABASE_URL=... PAAS_AUDIT_CHECKPOINT_DIR=... [PG_BIN=...] $0 BACKUP_ROOT" >&2
    exit 2
}
[ $# -eq 1 ] || usage
: "${DATABASE_URL:?DATABASE_URL must name the platform database}"
: "${PAAS_AUDIT_CHECKPOINT_DIR:?PAAS_AUDIT_CHECKPOINT_DIR must name the audit checkpoint store}"
if [ -n "${PG_BIN:-}" ]; then PATH="$PG_BIN:$PATH"; fi
umask 077

root=$1
name="gpu-paas-backup-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$root"
work="$root/$name.partial"
rm -rf "$work"
mkdir "$work"
trap 'rm -rf "$work"' EXIT

# 1. The checkpoint store: its chain-*.json files (each replaced atomically by the application, so a copy
#    sees a whole one; the lock files and temporary files are not needed).
out="$(cd "$work" && pwd)/audit-checkpoints.tar"
if [ -d "$PAAS_AUDIT_CHECKPOINT_DIR" ]; then
    (
        cd "$PAAS_AUDIT_CHECKPOINT_DIR"
        set -- chain-*.json
        if [ -e "$1" ]; then tar -cf "$out" -- "$@"; else tar -cf "$out" -T /dev/null; fi
    )
else
    echo "warning: $PAAS_AUDIT_CHECKPOINT_DIR does not exist; no audit checkpoints to back up" >&2
    tar -cf "$out" -T /dev/null
fi

# 2. The database, after the checkpoints.
pg_dump --format=custom --compress=6 --file="$work/database.dump" --dbname="$DATABASE_URL"
psql --no-psqlrc --quiet --tuples-only --no-align --dbname="$DATABASE_URL" \
    --command="SELECT app || '.' || name FROM django_migrations ORDER BY app, id" > "$work/migrations.txt"
pg_restore --list "$work/database.dump" > /dev/null  # the dump reads back

(cd "$work" && sha256sum audit-checkpoints.tar database.dump migrations.txt > SHA256SUMS)
mv "$work" "$root/$name"
trap - EXIT
echo "$root/$name"
