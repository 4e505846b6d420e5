#!/usr/bin/env bash
# Mutation testing (issue #20) of the code that decides validity, renewal and sharing:
# `cargo mutants` changes one operator or return value at a time and reruns the tests
# that matter for that file; a mutant no test notices is a test still missing.
#
#   bash scripts/mutants.sh                      full run, every group (hours on 2 cores)
#   bash scripts/mutants.sh --group clock        one group (repeatable): see MUTANT_GROUPS below
#   bash scripts/mutants.sh --shard 1/4          a quarter of each group's mutants
#   bash scripts/mutants.sh --in-diff            only mutants on lines changed since the
#                                                commit of the last full run (what CI runs)
#   bash scripts/mutants.sh --record             with a full or --in-diff run that missed
#                                                nothing: record this commit as the base
#
# While it runs, build nothing else in the same target dir: the mutated copies of the tree
# build artifacts under the same names as the tree itself (cargo names them by package,
# not by path), so a concurrent build swaps test binaries under both.
#
# A mutant that no test can kill (equivalent behaviour, or compiled out on this platform)
# is listed in core/mutants-equivalent.txt with why; any other missed or timed-out mutant
# fails the run. Results: target/mutants/<group>/mutants.out, and a per-file table.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MUTANTS_VERSION=27.1.0
EQUIVALENT=core/mutants-equivalent.txt
FULL_RUN=core/mutants-full-run.txt

# group | package | files (space separated globs) | cargo test arguments
# The files are the code that decides: validity and time (clock), each venue's rules
# (machine, cascade), renewal, single flight and the origin rules (session), the WebSocket
# client's auth, hold and reconnect rules (ws-client), what an external signer's answer
# becomes, keystores and secret files (signer), sharing a
# login through a store (store, sharing), and what C callers are told (ffi). The tests
# are the ones that exercise that code: unit tests always; the machine KATs and property
# tests for the machines; the simulator over real TLS (and a real redis-server) for
# sessions and stores (`-- --include-ignored`: the Redis tests, against the redis-server
# started below). Each group is recorded on its own, so one can be rerun alone.
MUTANT_GROUPS=(
  "clock|tradeauth|core/src/credential.rs core/src/clock.rs core/src/time.rs|--lib --test machines --test cadenza --test partner --test cascade --test exchange"
  "machine|tradeauth|core/src/machine/mod.rs core/src/machine/common.rs core/src/machine/cadenza.rs core/src/machine/partner.rs core/src/machine/exchange.rs core/src/hmac.rs|--lib --test machines --test cadenza --test partner --test exchange --test proptest_machines --test rotation"
  "cascade|tradeauth|core/src/machine/cascade.rs|--lib --test machines --test cascade --test proptest_machines --test zeroize --test rotation --test signer"
  "store-seal|tradeauth|core/src/store/crypto.rs core/src/store/record.rs core/src/store/mod.rs|--lib --test store_file"
  "store-file|tradeauth|core/src/store/file.rs core/src/store/memory.rs|--lib --test store_file"
  "store-redis|tradeauth|core/src/store/redis.rs|--lib --test store_redis -- --include-ignored"
  "session|tradeauth|core/src/session/mod.rs core/src/session/drive.rs core/src/session/refresher.rs core/src/session/skew.rs core/src/session/pool.rs|--lib --test session_cadenza --test session_others --test session_renewal --test fork --test concurrency --test scale --test renewal_limit --test rotation --test metrics"
  "session-io|tradeauth|core/src/session/request.rs core/src/session/ws.rs core/src/session/tls.rs|--lib --test session_others --test wrong_place --test session_cadenza --test fault_matrix --test secrets --test zeroize --test tls_versions --test fork_ws"
  "ws-client|tradeauth|core/src/session/ws_client.rs|--lib --test ws_client"
  "signer|tradeauth|core/src/signer.rs core/src/keystore.rs core/src/session/env.rs|--lib --test signer --test keystore --test env_files --test cascade --test rotation"
  "sharing|tradeauth|core/src/session/shared.rs|--lib --test store_file --test store_redis --test session_cadenza -- --include-ignored"
  "ffi|tradeauth-ffi|ffi/src/status.rs ffi/src/text.rs|--lib"
)

groups=()
shard=""
in_diff=0
record=0
while [ $# -gt 0 ]; do
  case "$1" in
    --group) groups+=("$2"); shift 2 ;;
    --shard) shard="$2"; shift 2 ;;
    --in-diff) in_diff=1; shift ;;
    --record) record=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Installed on first need, so a CI run with no changed decision code costs nothing.
ensure_cargo_mutants() {
  if [ "$(cargo mutants --version 2>/dev/null || true)" != "cargo-mutants $MUTANTS_VERSION" ]; then
    step "installing cargo-mutants $MUTANTS_VERSION"
    cargo install --locked --quiet "cargo-mutants@$MUTANTS_VERSION"
  fi
}

# The mutants are built in copies of the tree; sharing the target dir keeps the
# dependencies built once. The full run uses its own profile (no debug info: quicker
# rebuilds); --in-diff uses the dev profile so CI reuses what scripts/test.sh built.
if [ "$in_diff" = 1 ]; then
  profile=dev
else
  profile=mutants
fi
OUT_ROOT="$CARGO_TARGET_DIR/mutants-out"
# The eight-process store tests run `TRADEAUTH_STORE_TEST_CYCLES` token lifetimes (10 in
# the suite); 4 still take every step of the shared renewal (login, adopt, refresh,
# adopt). store_file's time per mutant stays ~62 s: its fencing and kill tests bound it.
export TRADEAUTH_STORE_TEST_CYCLES="${TRADEAUTH_STORE_TEST_CYCLES:-4}"
mkdir -p "$OUT_ROOT"

# The commit each group was last fully run at (one line per group in $FULL_RUN:
# `group commit date`), the base of its --in-diff run.
recorded_commit() {
  awk -v g="$1" '$1 == g { print $2 }' "$FULL_RUN" 2>/dev/null || true
}

# Equivalent mutants as regexes on the mutant's name with its line:col left out, so an
# entry survives edits elsewhere in the file.
exclude_args=()
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  name="${line%%  #*}"
  file="${name%%: *}"
  what="${name#*: }"
  esc_file="$(printf '%s' "$file" | sed 's/[][\.*^$()+?{}|]/\\&/g')"
  esc_what="$(printf '%s' "$what" | sed 's/[][\.*^$()+?{}|]/\\&/g')"
  exclude_args+=(--exclude-re "^${esc_file}:[0-9]+:[0-9]+: ${esc_what}\$")
done < "$EQUIVALENT"

start_commit="$(git rev-parse HEAD)"
if [ "$record" = 1 ] && ! git diff --quiet HEAD -- core ffi scripts/mutants.sh "$EQUIVALENT"; then
  echo "mutants: --record needs the code under test committed (core/, ffi/ or the lists changed)" >&2
  exit 1
fi

failed=0
ran=()
unchanged=()
for spec in "${MUTANT_GROUPS[@]}"; do
  IFS='|' read -r name package files test_args <<< "$spec"
  if [ "${#groups[@]}" -gt 0 ] && ! printf '%s\n' "${groups[@]}" | grep -qx "$name"; then
    continue
  fi
  select=(--package "$package")
  for f in $files; do select+=(--file "$f"); done
  if [ -n "$shard" ]; then select+=(--shard "$shard"); fi
  args=(--profile "$profile" --jobs 1 --no-shuffle --output "$OUT_ROOT/$name"
        "${exclude_args[@]}")
  for t in $test_args; do args+=(--cargo-test-arg="$t"); done
  if [ "$in_diff" = 1 ]; then
    base="$(recorded_commit "$name")"
    if [ -z "$base" ]; then
      echo "mutants[$name]: no full run on record in $FULL_RUN: not checked (run scripts/mutants.sh --group $name --record)"
      continue
    fi
    if ! git cat-file -e "$base^{commit}" 2>/dev/null; then
      echo "mutants[$name]: the commit of its last full run ($base) is not in this clone" >&2
      failed=1
      continue
    fi
    diff_file="$OUT_ROOT/$name.diff"
    # shellcheck disable=SC2086 # the globs are meant to expand
    git diff "$base" -- $files > "$diff_file"
    if [ ! -s "$diff_file" ]; then
      echo "mutants[$name]: no change since $base in $files"
      unchanged+=("$name")
      continue
    fi
    select+=(--in-diff "$diff_file")
    args+=(--baseline skip --timeout 300)
  fi
  # The Redis tests are #[ignore]d without a server: these groups run them against one.
  if { [ "$name" = store-redis ] || [ "$name" = sharing ]; } && [ -z "${TRADEAUTH_TEST_REDIS_URL:-}" ]; then
    start_redis
  fi
  ensure_cargo_mutants
  step "cargo mutants: $name ($files)"
  rc=0
  # Every mutant of the group, equivalents included, for the table.
  cargo mutants --list "${select[@]}" > "$OUT_ROOT/$name.all"
  cargo mutants "${select[@]}" "${args[@]}" || rc=$?
  # 0: all caught; 2: missed; 3: timeouts; 4: the unmutated tests failed.
  case "$rc" in
    0|2|3) ran+=("$name") ;;
    *) echo "mutants[$name]: cargo mutants failed (exit $rc)" >&2; failed=1; continue ;;
  esac
done

# The mutated copies built into the shared target dir under the tree's own artifact
# names: make the next build of the tree rebuild its crates rather than reuse the last
# mutant's.
if [ "${#ran[@]}" -gt 0 ]; then
  touch core/src/lib.rs ffi/src/lib.rs python/src/lib.rs sim/src/lib.rs
fi

# The per-file table, from the outcome files of the groups that ran.
table="$OUT_ROOT/summary.txt"
if [ "${#ran[@]}" = 0 ] && { [ "$record" = 0 ] || [ "${#unchanged[@]}" = 0 ]; }; then
  if [ "$failed" != 0 ]; then echo "mutants: FAILED (see above)" >&2; exit 1; fi
  step "mutants: nothing to test"
  exit 0
fi
# Each mutant of the groups that ran: caught, missed, timeout, unviable, or equivalent
# (listed in $EQUIVALENT: skipped, or missed as expected). Exit 1 on any other miss.
verdict=0
python3 - "$OUT_ROOT" "$EQUIVALENT" "${ran[@]}" > "$table" <<'EOF' || verdict=$?
import collections, json, re, sys
root, equivalent, groups = sys.argv[1], sys.argv[2], sys.argv[3:]
patterns = []
for line in open(equivalent):
    line = line.split("  #", 1)[0].strip()
    if line and not line.startswith("#"):
        file, what = line.split(": ", 1)
        patterns.append(re.compile("^" + re.escape(file) + r":\d+:\d+: " + re.escape(what) + "$"))
def is_equivalent(name):
    return any(p.match(name) for p in patterns)
rows = collections.defaultdict(collections.Counter)
unlisted = []
for group in groups:
    outcome = {}
    try:
        for o in json.load(open(f"{root}/{group}/mutants.out/outcomes.json"))["outcomes"]:
            if o["scenario"] != "Baseline":
                outcome[o["scenario"]["Mutant"]["name"]] = o["summary"]
    except FileNotFoundError:  # no mutant on the changed lines
        pass
    for name in open(f"{root}/{group}.all").read().splitlines():
        if not name.strip():
            continue
        file = name.split(":", 1)[0]
        got = outcome.get(name)
        if is_equivalent(name) and got in (None, "MissedMutant"):
            kind = "equivalent"
        elif got is None:
            kind = "not run"
        else:
            kind = {"CaughtMutant": "caught", "MissedMutant": "missed", "Timeout": "timeout",
                    "Unviable": "unviable"}.get(got, got)
        rows[file][kind] += 1
        if kind in ("missed", "timeout", "not run"):
            unlisted.append(f"{kind}: {name}")
cols = ["caught", "missed", "timeout", "unviable", "equivalent"]
print(f"{'file':34}" + "".join(f"{c:>11}" for c in cols))
total = collections.Counter()
for file in sorted(rows):
    total.update(rows[file])
    print(f"{file:34}" + "".join(f"{rows[file][c]:11}" for c in cols))
print(f"{'total':34}" + "".join(f"{total[c]:11}" for c in cols))
viable = sum(total[c] for c in ("caught", "missed", "timeout", "equivalent"))
if viable:
    print(f"caught {100 * total['caught'] / viable:.1f} % of {viable} viable mutants before "
          f"any equivalent is listed; {total['missed'] + total['timeout']} missed or timed out "
          "outside the listed equivalents")
for line in unlisted:
    print(line)
sys.exit(1 if unlisted else 0)
EOF
cat "$table"
if [ "$verdict" != 0 ]; then
  echo "mutants: a missed mutant is a test still missing (or, with one line of why, an" >&2
  echo "entry in $EQUIVALENT); its diff and log are under $OUT_ROOT/<group>/mutants.out" >&2
  failed=1
fi

# --record moves each group's base to this commit: after a full run, or after an
# --in-diff run (every mutant on a changed line was tested; the others were at the base).
if [ "$record" = 1 ]; then
  if [ "$failed" != 0 ] || [ -n "$shard" ]; then
    echo "mutants: --record needs an unsharded run with nothing missed" >&2
    exit 1
  fi
  commit="$start_commit"
  for name in "${ran[@]}" "${unchanged[@]}"; do
    others="$(grep -v "^$name " "$FULL_RUN" 2>/dev/null | grep -v '^#' || true)"
    {
      echo "# Each group's base for scripts/mutants.sh --in-diff (group commit date): its"
      echo "# last full run, or a later commit whose --in-diff run missed nothing."
      if [ -n "$others" ]; then echo "$others"; fi
      echo "$name $commit $(date -u +%Y-%m-%d)"
    } > "$FULL_RUN.new"
    mv "$FULL_RUN.new" "$FULL_RUN"
  done
  echo "recorded in $FULL_RUN"
fi

if [ "$failed" != 0 ]; then
  echo "mutants: FAILED (see above)" >&2
  exit 1
fi
step "mutants: nothing missed"
