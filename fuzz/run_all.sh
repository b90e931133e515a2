#!/usr/bin/env bash
# Run every target for SECS seconds (default 180), one after another; logs in fuzz/logs/.
set -u
cd "$(dirname "$0")"
SECS=${SECS:-180}
mkdir -p logs
for t in ${TARGETS:-labels ontology_tsv umls_rrf submission}; do
    mkdir -p corpus/$t
    dict=""; [ -f dicts/$t.dict ] && dict="-dict=dicts/$t.dict"
    cargo +nightly fuzz run $t corpus/$t seeds/$t -- -max_total_time=$SECS -rss_limit_mb=2048 -print_final_stats=1 $dict \
        > logs/$t.log 2>&1
    echo "$t rc=$? $(grep -E "^#[0-9]+" logs/$t.log | tail -1) $(grep -E "number_of_executed_units|average_exec_per_sec|new_units_added" logs/$t.log | tr -s " " | tr "\n" " ")"
done
