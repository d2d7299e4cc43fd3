#!/usr/bin/env bash
# gpumux smi as nvidia-smi users type it: -L, -q -d, the query fields scripts use,
# --help-query-*, dmon and pmon, -i for the gpumux section, and nvidia-smi's exit status when
# there is no GPU.
. "$(dirname "$0")/lib.sh"

start_daemon || exit 1
SAMPLE="$B/bin/gpumux-sample"

uuid0=$(gm smi -o json | json_get "d['gpus'][0]['uuid']")
expect "-L as nvidia-smi -L" 0 "^GPU 0: Tesla T4 \(UUID: $uuid0\)$" -- gm smi -L
[ "$(gm smi -L | wc -l)" = 2 ] && pass "-L: one line per GPU" || fail "-L: $(gm smi -L)"
expect "-L -i 1" 0 "^GPU 1: Tesla T4" -- gm smi -L -i 1

gm run busy --gpu 0 -- "$SAMPLE" -t=60 -quiet >/dev/null
gm run idle1 --gpu 1 -- sleep 60 >/dev/null
wait_for "the sample is a GPU process" 10 \
    sh -c "'$GPUMUX' smi --query-compute-apps=pid --format=csv,noheader | grep -q ."

out=$(gm smi -q)
for want in "==============NVSMI LOG==============" "Attached GPUs                             : 2" \
    "    Product Name                          : Tesla T4" "    Serial Number                         : [0-9]+" \
    "    FB Memory Usage" "        Gpu                               : [0-9]+ %" \
    "            Workload                      : busy" "        Sharing Mode                      : shared"; do
    grep -Eq -- "^$want" <<<"$out" && pass "-q shows '$want'" || fail "-q lacks '$want': $out"
done
out=$(gm smi -q -d memory,PIDS -i 0)
grep -q "FB Memory Usage" <<<"$out" && grep -q "Process ID" <<<"$out" &&
    ! grep -q "Utilization" <<<"$out" && ! grep -q "Product Name" <<<"$out" &&
    pass "-q -d MEMORY,PIDS shows those sections only" || fail "-q -d: $out"
expect "-q -d with a bad type" 2 "'VOLTAGE' is not a display type" -- gm smi -q -d VOLTAGE
expect "-d without -q" 2 "add -q" -- gm smi -d MEMORY

fields=clocks.sm,clocks.mem,clocks.max.sm,pcie.link.gen.current,pcie.link.width.current
fields=$fields,enforced.power.limit,vbios_version,serial,utilization.encoder,utilization.decoder
fields=$fields,memory.reserved,ecc.mode.current,clocks_throttle_reasons.active
fields=$fields,temperature.memory,power.draw.average
expect "the query fields scripts use" 0 \
    "^[0-9]+, [0-9]+, [0-9]+, 3, 16, 70.00, [0-9.]+, [0-9]+, 0, 0, [0-9]+, Enabled, 0x[0-9a-f]{16}, \[N/A\], \[N/A\]$" -- \
    gm smi -i 0 --query-gpu=$fields --format=csv,noheader,nounits
expect "serial is the GPU's, not [N/A]" 0 "^[0-9]{13}$" -- \
    gm smi -i 0 --query-gpu=serial --format=csv,noheader
expect "--help-query-gpu" 0 '^"clocks.current.sm" or "clocks.sm"$' -- gm smi --help-query-gpu
expect "--help-query-compute-apps" 0 '^"used_gpu_memory" or "used_memory"$' -- \
    gm smi --help-query-compute-apps

expect "dmon: a header, then a line per GPU" 0 "^ +0 +[0-9]+ +[0-9]+ +- +[0-9]+" -- gm smi dmon -c 1
[ "$(gm smi dmon -c 2 -d 1 | grep -vc '^#')" = 4 ] && pass "dmon -c 2: two samples of two GPUs" ||
    fail "dmon -c 2: $(gm smi dmon -c 2 -d 1)"
expect "pmon names the workload" 0 "^ +0 +[0-9]+ +C +[0-9]+ +[0-9]+ +[0-9]+ +gpumux-sample +busy$" -- \
    gm smi pmon -c 1
expect "pmon -i 1: no process there" 0 "^ +1 +- " -- gm smi pmon -c 1 -i 1

out=$(gm smi -i 1)
grep -q "idle1" <<<"$out" && ! grep -q "busy" <<<"$out" &&
    pass "smi -i 1: the gpumux section lists GPU 1's workloads only" || fail "smi -i 1: $out"
out=$(gm smi)
r=$(grep -n " busy " <<<"$out" | head -1 | cut -d: -f1)
gm stop -t 1 idle1 >/dev/null
out=$(gm smi)
if [ "$(grep -n ' busy ' <<<"$out" | tail -1 | cut -d: -f1)" -lt "$(grep -n ' idle1 ' <<<"$out" | tail -1 | cut -d: -f1)" ]; then
    pass "the running workload comes before the exited one"
else
    fail "order: $out"
fi
[ -n "$r" ] || fail "busy not in the smi view"

expect "-i naming no GPU: nvidia-smi's status 6" 6 "No devices were found" -- gm smi -i 7
expect "-i naming no GPU lists the valid ones" 6 "GPU 7: no such GPU" -- gm smi -L -i 7
gm stop -t 1 busy >/dev/null; gm delete busy idle1 >/dev/null
stop_daemon

# A node without GPUs (a new state: GPUs once seen stay listed, as not present): the table and
# the queries say so, with nvidia-smi's exit status 6.
printf 'gpus: []\n' >"$T/nogpu.yaml"
rm -rf "$GPUSIM_STATE" "$T/state"
GPUSIM_CONFIG="$T/nogpu.yaml" start_daemon --gpusim-config "$T/nogpu.yaml" || exit 1
expect "no GPU: smi" 6 "^No devices were found$" -- gm smi
expect "no GPU: smi -L" 6 "^No devices were found$" -- gm smi -L
expect "no GPU: --query-gpu" 6 "^No devices were found$" -- gm smi --query-gpu=name --format=csv
finish
