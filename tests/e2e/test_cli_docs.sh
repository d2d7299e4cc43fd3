#!/usr/bin/env bash
# docs/cli.md's examples, run: each block of `$ gpumux ...` lines, and each block marked
# `<!-- example: output of gpumux ... -->` (or `excerpt of`), is run against a daemon on gpusim
# in the state the example shows, and what gpumux prints is compared with the page: exactly,
# except for values that vary between runs (pids, times, UUIDs, readings; cli_docs.py says
# which). Blocks marked `<!-- example: not run (...) -->` are skipped with their reason.
. "$(dirname "$0")/lib.sh"
# The examples' MPS clients are the sample, which instrumented runs too slowly under MPS for the
# state they show to be set up in time; the plain build runs this test.
if grep -q '^GM_SANITIZE:BOOL=ON' "$B/CMakeCache.txt" 2>/dev/null; then
    log "skip: sanitizer build: the examples' instrumented MPS clients are too slow there; the plain build runs this test"
    exit 77
fi

DOC=${GM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/docs/cli.md
HELPER="$(dirname "$0")/cli_docs.py"
SAMPLE="$B/bin/gpumux-sample"
export GPUMUX
GPUSIM_STATE_DEFAULT=$GPUSIM_STATE

# The daemon an example needs, each with a new state: "default" (gpusim's two T4s, driver
# 535.104.05), "460" (the same GPUs reporting driver 460.32.03, MPS with EXCLUSIVE_PROCESS) or
# "sysfs" (the default GPUs in gpusim's simulated sysfs, with its kernel: VM passthrough).
DAEMON=
KPID=
use_daemon() {
    [ "$DAEMON" = "$1" ] && return 0
    if [ -n "$DAEMON" ]; then
        only
        detach_vms
        gm mps stop >/dev/null
        stop_daemon
        rm -rf "$T/state" "$GPUSIM_STATE"
    fi
    if [ -n "$KPID" ]; then
        kill "$KPID" 2>/dev/null
        wait "$KPID" 2>/dev/null
        KPID=
        rm -rf "$T/sim"
    fi
    DAEMON=$1
    GPUSIM_STATE=$GPUSIM_STATE_DEFAULT
    case "$1" in
    460)
        printf 'driver_version: "460.32.03"\ncuda_version: "11.2"\n' >"$T/gpusim-460.yaml"
        GPUSIM_STATE="$T/run/gpusim-460.state"
        GPUSIM_CONFIG="$T/gpusim-460.yaml" start_daemon --gpusim-config "$T/gpusim-460.yaml" \
            --mps-exclusive true
        ;;
    sysfs)
        "$B/bin/gpusimctl" sysfs create "$T/sim" >>"$T/kernel.log" 2>&1 || return 1
        "$B/bin/gpusimctl" sysfs kernel "$T/sim" >>"$T/kernel.log" 2>&1 &
        KPID=$!
        wait_for "the simulated kernel is ready" 5 test -s "$T/sim/sim/kernel.pid" || return 1
        start_daemon --sysfs-root "$T/sim/sys" --dev-root "$T/sim/dev"
        ;;
    *)
        start_daemon
        ;;
    esac
}

# only [NAME..]: deletes every workload but these.
only() {
    local w
    for w in $(gm ps -q); do
        case " $* " in *" $w "*) ;; *) gm delete "$w" >/dev/null ;; esac
    done
}
detach_vms() {
    local v
    for v in $(gm vm ls -o json | json_get "' '.join(v['name'] for v in d['vms'])"); do
        gm vm detach "$v" >/dev/null
    done
}
exists() { gm ps -q "$1" >/dev/null 2>&1; }
mode_of() { gm gpu ls -o json | json_get "[g['mode'] for g in d['gpus'] if g['index']==$1][0]"; }
set_mode() { [ "$(mode_of "$1")" = "$2" ] || gm gpu mode "$1" "$2" >/dev/null; }
# workload NAME RUN-OPTIONS.. -- CMD..: runs it unless a workload of that name exists.
workload() {
    local name=$1
    shift
    exists "$name" || gm run "$name" "$@" >/dev/null
}
# sample NAME RUN-OPTIONS..: the CUDA sample as workload NAME, busy until the test ends.
sample() {
    local name=$1
    shift
    workload "$name" "$@" -- "$SAMPLE" -t=300 -quiet
}
# apps_on GPU N: N processes on the GPU.
apps_on() {
    [ "$(gm smi --query-compute-apps=pid --format=csv,noheader -i "$1" | grep -c .)" = "$2" ]
}
# settled NAME N: NAME has exited after N restarts and waits for no other.
settled() {
    gm ps -o json "$1" | json_get "[(w['state'], w['restarting'], w['restart_count'])
        for w in d['workloads']][0]" | grep -qx "('exited', False, $2)"
}
# old: a workload that ended with status 1 after two restarts, on GPU 1.
old_workload() {
    workload old --gpu 1 --restart on-failure:2 -- sh -c 'exit 1'
    wait_for "old exited after two restarts" 10 settled old 2
}

# prepare COMMAND: the state the example of COMMAND shows.
prepare() {
    case "$1" in
    "gpumux smi")
        use_daemon 460 || return 1
        only old cuda-sample1 cuda-sample2
        old_workload
        set_mode 0 mps
        sample cuda-sample1 --gpu 0 --compute 50 --memory 1G
        sample cuda-sample2 --gpu 0 --compute 50 --memory 1G
        [ "$(mode_of 1)" = vm ] || gm vm attach vm1 --gpu 1 >/dev/null
        wait_for "both MPS clients and the server on GPU 0" 15 apps_on 0 3
        ;;
    "gpumux smi --query-gpu="* | "gpumux smi --query-compute-apps="*)
        use_daemon default || return 1
        only cuda-sample1 cuda-sample2
        detach_vms
        set_mode 0 mps
        sample cuda-sample1 --gpu 0 --compute 50 --memory 1G
        sample cuda-sample2 --gpu 0 --compute 50 --memory 1G
        wait_for "both MPS clients and the server on GPU 0" 15 apps_on 0 3
        ;;
    "gpumux smi -q"* | "gpumux smi dmon"* | "gpumux smi pmon"*)
        use_daemon default || return 1
        only w1
        detach_vms
        set_mode 0 shared
        sample w1 --gpu 0
        wait_for "the sample on GPU 0" 15 apps_on 0 1
        wait_for "pmon has a reading of the sample" 10 sh -c \
            "'$GPUMUX' smi pmon -c 1 -i 0 | grep -Eq '^ +0 +[0-9]+ +C +[0-9]+ +[0-9]+ +[0-9]+ '"
        ;;
    "gpumux gpu ls")
        use_daemon default || return 1
        only cuda-sample1 cuda-sample2
        set_mode 0 mps
        workload cuda-sample1 --gpu 0 --compute 50 --memory 1G -- sleep 300
        workload cuda-sample2 --gpu 0 --compute 50 --memory 1G -- sleep 300
        [ "$(mode_of 1)" = vm ] || gm vm attach vm1 --gpu 1 >/dev/null
        ;;
    "gpumux gpu mode 0 mps")
        use_daemon default || return 1
        only
        set_mode 0 shared
        ;;
    "gpumux vm attach vm1 --gpu 0")
        use_daemon sysfs || return 1
        only
        detach_vms
        ;;
    "gpumux vm attach vm1 "*)
        use_daemon default || return 1
        only
        detach_vms
        ;;
    "gpumux mps start --gpu 0")
        use_daemon default || return 1
        only
        set_mode 0 shared
        ;;
    "gpumux mps start --gpu 0 --active-thread-percentage 40")
        # A control daemon that runs with the default percentage, 100.
        use_daemon default || return 1
        only
        gm mps start --gpu 0 --active-thread-percentage 100 >/dev/null
        ;;
    "gpumux mps status")
        use_daemon default || return 1
        only split30 split70
        detach_vms
        set_mode 1 shared
        gm mps start --gpu 0 --active-thread-percentage 100 >/dev/null
        sample split30 --gpu 0 --compute 30
        sample split70 --gpu 0 --compute 70
        wait_for "both MPS clients and the server on GPU 0" 15 apps_on 0 3
        ;;
    "gpumux set trainer "*)
        use_daemon default || return 1
        only
        workload trainer --gpu 1 --memory 1G -- sleep 300
        wait_for "trainer runs" 10 is_state trainer running
        ;;
    "gpumux run nbody1 "*)
        use_daemon default || return 1
        only
        ;;
    "gpumux ps")
        use_daemon default || return 1
        only cuda-sample1 old
        detach_vms
        set_mode 0 mps
        set_mode 1 shared
        workload cuda-sample1 --gpu 0 --compute 50 --memory 1G -- sleep 300
        old_workload
        wait_for "cuda-sample1 runs" 10 is_state cuda-sample1 running
        ;;
    "gpumux logs --since 2s stamped")
        # Output of 3 s ago, then the two lines of just now.
        use_daemon default || return 1
        only
        gm run stamped --gpu none -- \
            sh -c 'echo early-1; echo early-2; sleep 3; echo late-1; echo late-2; exec sleep 300' \
            >/dev/null
        wait_for "stamped wrote its late lines" 10 sh -c "'$GPUMUX' logs stamped | grep -qx late-2"
        ;;
    "gpumux stop a b c")
        use_daemon default || return 1
        only
        gm run a --gpu none -- sleep 300 >/dev/null
        gm run c --gpu none -- sleep 300 >/dev/null
        wait_for "a runs" 10 is_state a running
        wait_for "c runs" 10 is_state c running
        ;;
    "gpumux events")
        # workload a's events.
        use_daemon default || return 1
        only a
        workload a --gpu none -- sleep 300
        wait_for "a runs" 10 is_state a running
        ;;
    "gpumux info")
        use_daemon default || return 1
        ;;
    *)
        use_daemon default || return 1
        log "no state is prepared for '$1': it runs as things are"
        ;;
    esac
}

if ! examples=$(python3 "$HELPER" list "$DOC"); then
    fail "cannot read the examples of $DOC"
    finish
    exit
fi
ran=0
while IFS=$'\t' read -r n line kind cmd; do
    case "$kind" in
    skip)
        log "skip: cli.md:$line: $cmd"
        continue
        ;;
    bad)
        fail "cli.md:$line: $cmd"
        continue
        ;;
    esac
    ran=$((ran + 1))
    if ! prepare "$cmd"; then
        fail "cli.md:$line: $cmd: the state it shows could not be set up"
        continue
    fi
    while IFS=$'\t' read -r res what; do
        if [ "$res" = ok ]; then pass "$what"; else fail "$what"; fi
    done < <(python3 "$HELPER" check "$DOC" "$n" --map "/tmp/nbody=$SAMPLE")
done <<<"$examples"
# A page whose examples are no longer found (a changed fence or note) must not pass unseen.
[ "$ran" -ge 12 ] && pass "$ran examples of cli.md run" ||
    fail "only $ran examples found in $DOC: is cli_docs.py's reading of the page out of date?"
finish
