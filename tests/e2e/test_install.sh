#!/usr/bin/env bash
# `make install` as a Linux daemon wants it: `cmake --install` of the build into a temporary
# DESTDIR puts every file where docs/install.md says; the manual pages are well-formed and name
# every verb; the bash completion offers the verbs, options, values and workload names; the
# unit's ExecStart, with only the DESTDIR put in front, starts a daemon (on gpusim, with its
# directories under the test's) that finds its monitor in libexec, gpusim and the interposer in
# lib, answers `gpumux info` and runs a workload; the default configuration as installed is
# accepted and changes nothing; a second install keeps an edited configuration; another prefix
# moves the unit's paths with it.
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

CMAKE=$(sed -n 's/^CMAKE_COMMAND:INTERNAL=//p' "$B/CMakeCache.txt")
[ -x "$CMAKE" ] || CMAKE=cmake
P=/usr/local
D=$T/dest
DP=$D$P
if ! DESTDIR=$D "$CMAKE" --install "$B" --prefix "$P" >"$T/install.log" 2>&1; then
    fail "cmake --install: $(tail -n 20 "$T/install.log")"
    finish
    exit
fi
pass "cmake --install into DESTDIR=$D --prefix $P"

# ---- every file where it belongs ---------------------------------------------------------------
CONF=$DP/etc/gpumux/gpumuxd.yaml
UNIT=$DP/lib/systemd/system/gpumuxd.service
for f in bin/gpumux sbin/gpumuxd libexec/gpumux/gpumux-monitor; do
    [ -f "$DP/$f" ] && [ -x "$DP/$f" ] && pass "$P/$f is installed, executable" ||
        fail "$P/$f is missing or not executable"
done
for f in lib/libgpumux.so lib/gpusim/libnvidia-ml.so.1 lib/gpusim/libcuda.so.1 \
    lib/gpusim/nvidia-cuda-mps-control lib/systemd/system/gpumuxd.service etc/gpumux/gpumuxd.yaml \
    share/man/man1/gpumux.1 share/man/man8/gpumuxd.8 share/bash-completion/completions/gpumux \
    share/zsh/site-functions/_gpumux; do
    [ -s "$DP/$f" ] && pass "$P/$f is installed" || fail "$P/$f is missing or empty"
done
for f in gpumuxd gpumux-monitor; do
    [ ! -e "$DP/bin/$f" ] && pass "no $f in bin/" || fail "$P/bin/$f is installed too"
done
left=$(find "$D" -mindepth 1 \( -path "$DP" -o -path "$DP/*" \) -prune -o ! -type d -print)
[ -z "$left" ] && pass "nothing is installed outside $P" || fail "installed outside $P: $left"

# ---- the unit -----------------------------------------------------------------------------------
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
[ "$exec_start" = "$P/sbin/gpumuxd --config $P/etc/gpumux/gpumuxd.yaml" ] &&
    pass "ExecStart names the installed daemon and configuration: $exec_start" ||
    fail "ExecStart: '$exec_start'"
grep -q '^KillMode=process$' "$UNIT" && grep -q '^WantedBy=multi-user.target$' "$UNIT" &&
    pass "the unit keeps KillMode=process and WantedBy=multi-user.target" ||
    fail "unit: $(cat "$UNIT")"
grep -q '@' "$UNIT" && fail "the unit has unfilled @...@: $(grep '@' "$UNIT")"

# ---- the default configuration ------------------------------------------------------------------
GPUMUXD=$DP/sbin/gpumuxd
keys=$("$B/bin/gpumuxd" --print-config | sed -n 's/^\([a-z_][a-z0-9_]*\):.*/\1/p')
[ -n "$keys" ] || fail "gpumuxd --print-config lists no settings"
missing=
for k in $keys; do
    grep -q "^#$k: " "$CONF" || missing="$missing $k"
done
[ -z "$missing" ] && pass "the default configuration shows all $(wc -w <<<"$keys") settings, commented out" ||
    fail "not in $CONF:$missing"
grep -Ev '^(#.*)?$' "$CONF" >"$T/active"
[ ! -s "$T/active" ] && pass "as installed it sets nothing" || fail "it sets: $(cat "$T/active")"
# gpumuxd --check (where the daemon has it) or --print-config reads the file as installed.
check=--print-config
"$GPUMUXD" --help | grep -q -- '--check' && check=--check
expect "gpumuxd --config INSTALLED $check accepts the default configuration" 0 '' -- \
    "$GPUMUXD" --config "$CONF" $check
"$GPUMUXD" --print-config >"$T/defaults.out" 2>&1
"$GPUMUXD" --config "$CONF" --print-config >"$T/installed.out" 2>&1
cmp -s "$T/defaults.out" "$T/installed.out" && pass "the installed configuration changes no setting" ||
    fail "settings differ with it: $(diff "$T/defaults.out" "$T/installed.out" | head -n 10)"
# Every default it documents is the daemon's: with all of them uncommented nothing changes.
sed 's/^#\([a-z_][a-z0-9_]*: \)/\1/' "$CONF" >"$T/uncommented.yaml"
"$GPUMUXD" --config "$T/uncommented.yaml" --print-config >"$T/uncommented.out" 2>&1
cmp -s "$T/defaults.out" "$T/uncommented.out" &&
    pass "each documented default is the daemon's (all uncommented, nothing changes)" ||
    fail "documented defaults differ: $(diff "$T/defaults.out" "$T/uncommented.out" | head -n 10)"

# ---- manual pages -------------------------------------------------------------------------------
M1=$DP/share/man/man1/gpumux.1
M8=$DP/share/man/man8/gpumuxd.8
grep -q '^\.TH GPUMUX 1 ' "$M1" && grep -q '^\.TH GPUMUXD 8 ' "$M8" && pass "both pages have .TH" ||
    fail "no .TH: $(head -n 3 "$M1" "$M8")"
verbs=$("$B/bin/gpumux" --help | sed -n '/^VERBS$/,/^$/s/^    \([a-z][a-z0-9-]*\)  .*/\1/p')
[ "$(wc -w <<<"$verbs")" -ge 10 ] || fail "gpumux --help lists few verbs: $verbs"
missing=
for v in $verbs; do
    grep -q "^\.SH \"gpumux $v\"$" "$M1" || missing="$missing $v"
done
[ -z "$missing" ] && pass "gpumux(1) has a section for each of the $(wc -w <<<"$verbs") verbs" ||
    fail "gpumux(1) lacks the verbs:$missing"
for s in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS"; do
    grep -q "^\.SH \"$s\"$" "$M1" && grep -q "^\.SH \"$s\"$" "$M8" || fail "section $s missing"
done
missing=
for k in $keys; do
    grep -qxF "\\fB$k\\fR" "$M8" || missing="$missing $k"
done
[ -z "$missing" ] && pass "gpumuxd(8) describes every setting" || fail "gpumuxd(8) lacks:$missing"
grep -qF "$P/etc/gpumux/gpumuxd.yaml" "$M8" && ! grep -q '@GM_' "$M8" &&
    pass "gpumuxd(8) names the installed configuration file" || fail "gpumuxd(8) FILES: $(grep -n 'gpumuxd.yaml\|@GM_' "$M8")"
# Options of the help texts are in the pages (as roff writes them, \- for -).
grep -qF '\fB\-\-restart\-workloads\fR' "$M1" && grep -qF '\fB\-\-print\-config\fR' "$M8" &&
    pass "the pages carry the verbs' and the daemon's options" || fail "options missing from the pages"
if command -v groff >/dev/null; then
    for m in "$M1" "$M8"; do
        if groff -man -Tutf8 -ww -z "$m" 2>"$T/groff.err" && [ ! -s "$T/groff.err" ]; then
            pass "${m##*/} renders with groff without a warning"
        else
            fail "${m##*/}: groff: $(head -n 5 "$T/groff.err")"
        fi
    done
    groff -man -Tascii -P-cbou "$M1" 2>/dev/null >"$T/gpumux.txt"
    grep -q 'gpumux smi - show the GPUs' "$T/gpumux.txt" && grep -q -- '--query-gpu=FIELDS' "$T/gpumux.txt" &&
        pass "gpumux(1) as rendered reads as the help" || fail "rendered gpumux(1): $(head -n 20 "$T/gpumux.txt")"
else
    # No groff to render them: only requests of the man macros, and every font change closed on
    # its line.
    bad=$(grep -hE '^\.' "$M1" "$M8" | grep -vE '^\.(TH|SH|SS|TP|PP|PD|RS|RE|nf|fi|\\")( |$)')
    [ -z "$bad" ] && pass "the pages use only the man macros' requests" || fail "unknown requests: $bad"
    bad=$(python3 -c '
import re, sys
for path in sys.argv[1:]:
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        if len(re.findall(r"\\f[BI]", line)) != len(re.findall(r"\\fR", line)):
            print("%s:%d: %s" % (path, n, line.strip()))' "$M1" "$M8")
    [ -z "$bad" ] && pass "every font change is closed" || fail "unclosed fonts: $bad"
fi

# ---- bash completion ----------------------------------------------------------------------------
BC=$DP/share/bash-completion/completions/gpumux
# complete WORD...: what the completion offers for the last word, one a line.
complete_words() {
    PATH="$DP/bin:$PATH" bash -c '
        . "$1" || exit 1
        shift
        COMP_WORDS=("$@")
        COMP_CWORD=$(($# - 1))
        _gpumux || exit 1
        printf "%s\n" "${COMPREPLY[@]}"' complete "$BC" "$@"
}
complete_words gpumux "" >"$T/c.verbs" 2>&1
missing=
for v in $verbs help; do
    grep -qx "$v" "$T/c.verbs" || missing="$missing $v"
done
[ -z "$missing" ] && pass "bash completes every verb" || fail "bash lacks the verbs:$missing ($(cat "$T/c.verbs"))"
[ "$(complete_words gpumux st | sort | tr '\n' ' ')" = "start stop " ] && pass "bash: 'st' completes to start, stop" ||
    fail "bash 'st': $(complete_words gpumux st)"
c=$(complete_words gpumux run --me)
[ "$c" = --memory ] && pass "bash completes a verb's long option (run --me: --memory)" || fail "run --me: $c"
c=$(complete_words gpumux gpu mode 0 "" | tr '\n' ' ')
[ "$c" = "shared mps vm " ] && pass "bash completes positional values (gpu mode 0: shared mps vm)" || fail "gpu mode 0: $c"
c=$(complete_words gpumux gpu "" | tr '\n' ' ')
[ "$c" = "ls mode " ] && pass "bash completes subcommands (gpu: ls mode)" || fail "gpu: $c"
c=$(complete_words gpumux --output "" | tr '\n' ' ')
[ "$c" = "table json " ] && pass "bash completes option values (--output: table json)" || fail "--output: $c"

# ---- zsh completion -----------------------------------------------------------------------------
ZC=$DP/share/zsh/site-functions/_gpumux
if command -v zsh >/dev/null; then
    zsh -n "$ZC" 2>"$T/zsh.err" && pass "zsh reads _gpumux" || fail "zsh -n: $(cat "$T/zsh.err")"
    # The completion function over words as zsh would pass them, with the completion
    # system's builtins replaced by ones that print the candidates.
    zsh_complete() {
        PATH="$DP/bin:$PATH" zsh -f -c '
            compadd() {
                while (( $# )); do
                    case $1 in
                    --) shift; print -rl -- "$@"; return ;;
                    -a) print -rl -- "${(@P)2}"; return ;;
                    *) shift ;;
                    esac
                done
            }
            _wanted() { shift 3; "$@" }
            _describe() { local -a d; d=("${(@P)${@[-1]}}"); print -rl -- "${d[@]%%:*}" }
            _message() { : }
            _files() { print -r -- FILES }
            _normal() { print -r -- COMMAND }
            compset() { : }
            zc=$1; shift
            words=("$@"); CURRENT=$#
            . "$zc"' zsh "$ZC" "$@" 2>&1
    }
    c=$(zsh_complete gpumux "" | sort | tr '\n' ' ')
    want=$(printf '%s\n' $verbs help | sort | tr '\n' ' ')
    [ "$c" = "$want" ] && pass "zsh completes every verb" || fail "zsh verbs: '$c', expected '$want'"
    c=$(zsh_complete gpumux gpu mode 0 "" | tr '\n' ' ')
    [ "$c" = "shared mps vm " ] && pass "zsh completes positional values (gpu mode 0)" || fail "zsh gpu mode 0: $c"
    c=$(zsh_complete gpumux run x --enforce "" | tr '\n' ' ')
    [ "$c" = "strict best-effort " ] && pass "zsh completes option values (run --enforce)" || fail "zsh --enforce: $c"
    c=$(zsh_complete gpumux run x -- "")
    [ "$c" = COMMAND ] && pass "zsh completes the command after run --" || fail "zsh run --: $c"
else
    log "no zsh: its completion is only checked to be there"
fi
head -n 1 "$ZC" | grep -qx '#compdef gpumux' && pass "_gpumux starts with #compdef gpumux" ||
    fail "_gpumux: $(head -n 1 "$ZC")"

# ---- the unit's command starts a daemon -------------------------------------------------------
# The test is not root's system: the installed configuration (edited where it is installed, as
# an administrator would) puts the daemon's directories under $T and picks gpusim.
cat >>"$CONF" <<EOF

# Set by tests/e2e/test_install.sh
state_dir: "$T/state"
run_dir: "$T/run"
log_dir: "$T/logs"
driver: sim
gpusim_state: "$GPUSIM_STATE"
poll_interval_ms: 50
stop_timeout: 3
cgroup_root: "$GM_CGROUP_ROOT"
EOF
expect "gpumuxd --config (edited) $check" 0 '' -- "$GPUMUXD" --config "$CONF" $check
# ExecStart with DESTDIR in front of each installed path, nothing else changed.
read -ra cmd <<<"$exec_start"
for i in "${!cmd[@]}"; do
    case ${cmd[i]} in "$P"/*) cmd[i]=$D${cmd[i]} ;; esac
done
mkdir -p "$T/state" "$T/run"
"${cmd[@]}" >>"$T/daemon.log" 2>&1 &
DAEMON_PID=$!
GPUMUX=$DP/bin/gpumux
up=0
for i in $(seq 1 200); do
    if "$GPUMUX" info >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.05
done
if [ "$up" = 1 ]; then
    pass "the unit's ExecStart (${cmd[*]}) starts a daemon that answers gpumux info"
else
    fail "the daemon from ExecStart did not answer: $(tail -n 20 "$T/daemon.log")"
    finish
    exit
fi
info=$(gm info -o json)
[ "$(json_get "d.get('state_dir')" <<<"$info")" = "$T/state" ] &&
    pass "gpumux info shows the configured state_dir" || fail "info: $info"
expect "the installed daemon runs a workload (its monitor from libexec)" 0 'started' -- \
    gm run inst1 --memory 256M -- sleep 60
wait_for "inst1 running" 10 is_state inst1 running
monitors=$(for p in /proc/[0-9]*; do
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep "^[^ ]*gpumux-monitor .*$T/run/" | cut -d' ' -f1
done)
[ "$monitors" = "$DP/libexec/gpumux/gpumux-monitor" ] && pass "the monitor runs from $P/libexec/gpumux" ||
    fail "monitors: '$monitors'"
pid=$(gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='inst1'][0]")
grep -q " $DP/lib/libgpumux.so$" "/proc/$pid/maps" 2>/dev/null &&
    pass "its limits come from the installed interposer, $P/lib/libgpumux.so" ||
    fail "libgpumux.so in inst1 (pid $pid): $(grep gpumux "/proc/$pid/maps" 2>&1 | head -n 2)"
c=$(complete_words gpumux stop "")
[ "$c" = inst1 ] && pass "bash completes workload names from the daemon (stop: inst1)" || fail "stop: '$c'"
if command -v zsh >/dev/null; then
    c=$(zsh_complete gpumux logs "")
    [ "$c" = inst1 ] && pass "zsh completes workload names from the daemon (logs: inst1)" || fail "zsh logs: '$c'"
fi
expect "stop it" 0 '' -- gm stop -t 0 inst1
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
rc=$?
DAEMON_PID=
[ "$rc" = 0 ] && pass "the daemon stops on SIGTERM with status 0" || fail "the daemon exited with $rc on SIGTERM"

# ---- installing again keeps the edited configuration ------------------------------------------
DESTDIR=$D "$CMAKE" --install "$B" --prefix "$P" >"$T/install2.log" 2>&1 || fail "second install"
grep -q "^state_dir: \"$T/state\"" "$CONF" && pass "a second install keeps the edited configuration" ||
    fail "the configuration was replaced: $(tail -n 5 "$CONF")"

# ---- another prefix: /usr, whose configuration lives in /etc ----------------------------------
D2=$T/dest-usr
DESTDIR=$D2 "$CMAKE" --install "$B" --prefix /usr >"$T/install3.log" 2>&1 || fail "install --prefix /usr"
exec2=$(sed -n 's/^ExecStart=//p' "$D2/usr/lib/systemd/system/gpumuxd.service" 2>/dev/null)
[ "$exec2" = "/usr/sbin/gpumuxd --config /etc/gpumux/gpumuxd.yaml" ] && [ -f "$D2/usr/sbin/gpumuxd" ] &&
    [ -f "$D2/etc/gpumux/gpumuxd.yaml" ] && grep -qF /etc/gpumux/gpumuxd.yaml "$D2/usr/share/man/man8/gpumuxd.8" &&
    pass "with --prefix /usr the unit, the page and the file say /usr/sbin and /etc/gpumux" ||
    fail "prefix /usr: ExecStart '$exec2'; $(find "$D2" -name 'gpumuxd*' | head)"
finish
