#!/usr/bin/env bash
# The seed article's story on one machine: `porin lab` builds the app in
# network namespaces, the article's commands run in its pods, and each
# policy step shows what the real clients see. Needs root. The lab is taken
# down at the end (and on Ctrl-C).
set -uo pipefail

PORIN=${PORIN:-target/release/porin}
SEED=tests/fixtures/seed
LAB=tests/fixtures/lab

bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true)
step() { echo; echo "${bold}== $*${plain}"; }
# Shows a command as the article types it, then runs porin's equivalent.
show() { echo "${bold}\$ $1${plain}"; shift; "$@" 2>&1 | sed 's/^/    /'; echo "    -> exit ${PIPESTATUS[0]}"; }
in_test() { local ns=$1; shift; "$PORIN" lab run -n "$ns" test -- "$@"; }
apply() { for f in "$@"; do "$PORIN" lab apply -f "$f" | sed 's/^/    /'; done; }

if [ "$(id -u)" != 0 ]; then echo "the lab needs root (network namespaces, eBPF): sudo make demo"; exit 1; fi
trap '"$PORIN" lab down >/dev/null 2>&1' EXIT
"$PORIN" lab down >/dev/null 2>&1

step "kubectl apply -f test-app.yaml  (porin lab up)"
"$PORIN" lab up || exit 1
"$PORIN" lab get pods -A

curl_api() { show "curl -sI http://api.backend.svc.cluster.local" in_test frontend curl -sI --max-time 3 http://api.backend.svc.cluster.local; }
nc_db() { show "nc -vz postgres.db.svc.cluster.local 5432  (from $1)" in_test "$1" nc -vz -w 3 postgres.db.svc.cluster.local 5432; }
dig_k8s() { show "dig +short kubernetes.default.svc.cluster.local" in_test frontend dig +short +time=2 +tries=1 kubernetes.default.svc.cluster.local; }

step "1. Baseline: no policy, everything flows"
curl_api; nc_db frontend; dig_k8s

step "2. kubectl apply -f cnp-default-deny.yaml: frontend is cut off, DNS too"
apply $SEED/cnp-default-deny.yaml
"$PORIN" lab get cnp -n frontend | sed 's/^/    /'
curl_api; nc_db frontend; dig_k8s
"$PORIN" lab delete -f $SEED/cnp-default-deny.yaml | sed 's/^/    /'

step "3. Zero trust, then DNS and the app's own paths"
apply $SEED/cnp-deny-all.yaml $SEED/ccnp-allow-dns.yaml $SEED/cnp-ns-dns.yaml \
      $SEED/cnp-front-to-back.yaml $SEED/cnp-back-to-db.yaml
curl_api; nc_db backend; nc_db frontend; dig_k8s
show "psql -h postgres.db.svc.cluster.local -c 'select version()'  (from backend)" \
    in_test backend env PGPASSWORD=pass psql -h postgres.db.svc.cluster.local -U postgres -tAc 'select version()'

step "4. L7 visibility: rules: http: [{}] sends port 80 through porin's http filter"
apply $SEED/cnp-front-to-back-l7.yaml
show "curl http://api.backend.svc.cluster.local/" in_test frontend curl -s -o /dev/null -w '%{http_code}\n' http://api.backend.svc.cluster.local/
show "curl http://api.backend.svc.cluster.local/h" in_test frontend curl -s -o /dev/null -w '%{http_code}\n' http://api.backend.svc.cluster.local/h
show "hubble observe --namespace backend --protocol http --last 4" "$PORIN" lab observe --namespace backend --protocol http --last 4

step "5. Enforcing: api takes only GET / from frontend"
apply $LAB/cnp-front-to-back-get-only.yaml
show "curl -X POST http://api.backend.svc.cluster.local/admin" in_test frontend curl -s -w '\n%{http_code}\n' -X POST http://api.backend.svc.cluster.local/admin
show "curl http://api.backend.svc.cluster.local/" in_test frontend curl -s -o /dev/null -w '%{http_code}\n' http://api.backend.svc.cluster.local/

step "6. Hubble: every flow, forwarded and dropped, with L7 detail"
nc_db frontend
show "hubble observe --verdict DROPPED --last 5" "$PORIN" lab observe --verdict DROPPED --to-pod db/ --last 5
show "hubble observe --http-method POST --last 2" "$PORIN" lab observe --http-method POST --last 2
show "hubble observe --http-status 200 -o table --last 3" "$PORIN" lab observe --http-status 200 -o table --last 3
echo "    metrics: curl --unix-socket /run/porin-lab/agent.sock http://agent/metrics"
curl -s --unix-socket /run/porin-lab/agent.sock http://agent/metrics | grep -E '^porin_(http_requests|drops)_total' | sed 's/^/    /'
echo "    the web UI: porin lab ui, then open http://127.0.0.1:12000/"

step "porin lab down"
