#!/bin/sh
# Restore a backup of deploy/backup.sh into a NEW, EMPTY database and a new checkpoint store.
#
#   DATABASE_URL=postgres://.../gpu_paas_restored PAAS_AUDIT_CHECKPOINT_DIR=/var/lib/gpu-paas/audit-checkpoints \
#     deploy/restore.sh /backups/gpu-paas-backup-20260101T000000Z
#
# Refuses a database that holds any table in its public schema and a checkpoint store that is not
# empty: a restore never merges into a live installation. The database is restored in one transaction
# (all or nothing), owned by the role of DATABASE_URL (--no-owner --no-privileges: the platform's role
# on the new server need not have the old one's name).
#
# Then, with the SAME keys as the backed-up installation (PAAS_ENCRYPTION_KEYS,
# PAAS_AUDIT_CHECKPOINT_KEY, SECRET_KEY), before starting the platform:
#   manage.py migrate          (no-op with the same release; a newer release applies its own)
#   manage.py audit_verify     (every chain verifies and matches its signed checkpoint)
# PG_BIN as for deploy/backup.sh.
set -eu

usage() {
    echo "usage: DATABASE_URL=... PAAS_AUDIT_CHECKPOINT_DIR=... [PG_BIN=...] $0 BACKUP_DIR" >&2
    exit 2
}
[ $# -eq 1 ] || usage
: "${DATABASE_URL:?DATABASE_URL must name the new, empty database}"
: "${PAAS_AUDIT_CHECKPOINT_DIR:?PAAS_AUDIT_CHECKPOINT_DIR must name the new checkpoint store}"
if [ -n "${PG_BIN:-}" ]; then PATH="$PG_BIN:$PATH"; fi
backup=$1

(cd "$backup" && sha256sum --check --quiet SHA256SUMS) || {
    echo "error: $backup does not match its SHA256SUMS; not restoring" >&2
    exit 1
}

tables=$(psql --no-psqlrc --quiet --tuples-only --no-align --dbname="$DATABASE_URL" --command="
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')")
if [ "$tables" != "0" ]; then
    echo "error: the target database is not empty ($tables relations in its public schema); restore into a new one" >&2
    exit 1
fi
if [ -d "$PAAS_AUDIT_CHECKPOINT_DIR" ] && [ -n "$(ls -A "$PAAS_AUDIT_CHECKPOINT_DIR")" ]; then
    echo "error: $PAAS_AUDIT_CHECKPOINT_DIR is not empty; restore the checkpoints into an empty store" >&2
    exit 1
fi

pg_restore --exit-on-error --single-transaction --no-owner --no-privileges \
    --dbname="$DATABASE_URL" "$backup/database.dump"
mkdir -p "$PAAS_AUDIT_CHECKPOINT_DIR"
tar -C "$PAAS_AUDIT_CHECKPOINT_DIR" -xf "$backup/audit-checkpoints.tar"

echo "Restored $(wc -l < "$backup/migrations.txt") applied migrations' schema and data from $backup."
echo "Next, with the backed-up installation's keys: manage.py migrate, then manage.py audit_verify."
