#!/bin/sh
# The demo's sample app: shows what it was started with, then exits.
echo "app: pid $$, LAST_DB_RESET=${LAST_DB_RESET:-(not set: no reset this start)}"
echo "app: tables it sees:"
psql "$DATABASE_URL" -Atc "SELECT '  ' || table_name FROM information_schema.tables
                            WHERE table_schema = 'public' ORDER BY 1"
