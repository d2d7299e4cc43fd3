#!/usr/bin/env bash
# VM passthrough for real, on gpusim's simulated sysfs: vm attach moves the GPU's IOMMU group to
# vfio-pci step by step and prints what QEMU and libvirt need; vm detach gives every function
# back; a failure injected at each step is rolled back; a daemon killed between two steps is
# repaired at its next start; claims are bound again after a "reboot"; the refusals of a machine
# without an IOMMU, without vfio-pci, or with a foreign device in the group.
. "$(dirname "$0")/lib.sh"
CTL="$B/bin/gpusimctl"
S="$T/sim"
KPID=

# A fresh simulated sysfs (gpusimctl sysfs create ARGS) and its kernel.
sysfs() {
    [ -n "$KPID" ] && kill "$KPID" 2>/dev/null && wait "$KPID" 2>/dev/null
    KPID=
    "$CTL" sysfs create "$S" "$@" || { fail "gpusimctl sysfs create $*"; return 1; }
    rm -f "$S/sim/kernel.pid"
    "$CTL" sysfs kernel "$S" >>"$T/kernel.log" 2>&1 &
    KPID=$!
    wait_for "the simulated kernel is ready" 5 test -s "$S/sim/kernel.pid"
}
trap 'kill "$KPID" 2>/dev/null; cleanup' EXIT
drv() { basename "$(readlink "$S/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }
ovr() { cat "$S/sys/bus/pci/devices/$1/driver_override"; }
G0=2c74:00:00.0 A0=2c74:00:00.1
as_it_was() {
    [ "$(drv $G0)" = nvidia ] && [ "$(drv $A0)" = snd_hda_intel ] &&
        [ "$(ovr $G0)" = "(null)" ] && [ "$(ovr $A0)" = "(null)" ] && [ ! -e "$S/dev/vfio/20" ]
}
daemon() { start_daemon --sysfs-root "$S/sys" --dev-root "$S/dev" "$@"; }

mkdir -p "$T/run"
sysfs || exit 1
daemon || exit 1

# Attach: every function of the group on vfio-pci, the node there, the VMM's snippets printed.
out=$(gm vm attach vm1 --gpu 0 2>&1)
rc=$?
[ "$rc" = 0 ] && pass "attach vm1 --gpu 0" || fail "attach: $out"
grep -q "IOMMU group 20 on vfio-pci: $G0 $A0" <<<"$out" && pass "attach names the group and its functions" ||
    fail "attach output: $out"
[ "$(drv $G0)" = vfio-pci ] && [ "$(drv $A0)" = vfio-pci ] && pass "both functions are on vfio-pci" ||
    fail "drivers: $(drv $G0) $(drv $A0)"
[ -e "$S/dev/vfio/20" ] && pass "/dev/vfio/20 appeared" || fail "no /dev/vfio/20"
grep -q -- "-device vfio-pci,host=$G0,multifunction=on" <<<"$out" &&
    grep -q -- "-device vfio-pci,host=$A0\$" <<<"$out" && pass "QEMU arguments, one per function" ||
    fail "QEMU: $out"
xml=$(python3 - "$out" <<'PY'
import sys, xml.dom.minidom
text = sys.argv[1]
x = text[text.index("<hostdev"):]
doc = xml.dom.minidom.parseString("<devices>" + x + "</devices>")
for a in doc.getElementsByTagName("address"):
    print("%s:%s:%s.%s" % tuple(int(a.getAttribute(k), 16) for k in ("domain", "bus", "slot", "function")),
          doc.getElementsByTagName("hostdev")[0].getAttribute("managed"))
PY
)
[ "$(tr '\n' ' ' <<<"$xml")" = "11380:0:0.0 no 11380:0:0.1 no " ] &&
    pass "the libvirt XML parses and names both functions (managed='no')" || fail "libvirt XML: $xml"
expect "the journal of the attach" 0 '"phase": "attached"' -- cat "$T/state/vfio/$(gm gpu ls -o json | json_get "d['gpus'][0]['uuid']").json"

# While on vfio-pci: NVML is not asked, smi's nvidia-smi table leaves it out, workloads refused.
expect "gpu JSON says passthrough" 0 '^vfio-pci$' -- sh -c "'$GPUMUX' smi -o json | python3 -c \"import json,sys; print(json.load(sys.stdin)['gpus'][0]['passthrough'])\""
[ "$(gm smi | grep -c 'Tesla T4')" = 1 ] && pass "smi's table shows only the host's GPU" || fail "smi: $(gm smi)"
expect "smi's gpumux section says where it is" 0 'vm1 \(vfio\)' -- gm smi
expect "gpu ls says it is on vfio-pci" 0 '^0 .* vm \(vfio-pci\) +vm1 ' -- gm gpu ls
expect "a workload is refused on it" 1 'held by VM vm1' -- gm run w --gpu 0 -- sleep 1

# Detach while a running VM holds the node: refused, naming it; then for real.
sleep 300 <"$S/dev/vfio/20" &
holder=$!
expect "detach refused while a VM holds the group" 1 "held open by $holder \\(sleep\\)" -- gm vm detach vm1
[ "$(drv $G0)" = vfio-pci ] && pass "and nothing moved" || fail "moved: $(drv $G0)"
kill "$holder"; wait "$holder" 2>/dev/null
out=$(gm vm detach vm1 2>&1)
grep -q "$G0 is on nvidia again" <<<"$out" && grep -q "$A0 is on snd_hda_intel again" <<<"$out" &&
    pass "detach names the drivers the functions are back on" || fail "detach: $out"
as_it_was && pass "after detach every function is as it was" || fail "after detach: $(drv $G0) $(drv $A0) $(ovr $G0)"
expect "the GPU is shared again" 0 '^0 .* shared ' -- gm gpu ls
gm vm attach vm9 --gpu 0 >/dev/null && gm vm detach --force vm9 >/dev/null &&
    pass "detach --force" || fail "detach --force"

# A failure injected at each step, on each function: rolled back, no claim, the step named.
for step in driver_override unbind drivers_probe; do
    for f in $G0 $A0; do
        echo "$step $f" >"$S/sim/fail"
        expect "attach with $step of $f failing" 1 "\\($step[^)]*\\) on $f did not take effect.*rolled back" -- \
            gm vm attach vm1 --gpu 0
        : >"$S/sim/fail"
        as_it_was && pass "$step of $f failing: everything as it was" ||
            fail "$step of $f: $(drv $G0) $(drv $A0) $(ovr $G0) $(ovr $A0)"
        [ "$(gm vm ls -o json | json_get "len(d['vms'])")" = 0 ] && pass "$step of $f failing: no claim" ||
            fail "a claim was recorded"
    done
done

# SIGKILL between two steps (the daemon waits for a step the kernel refuses): the next start
# gives every function back.
for step in driver_override unbind drivers_probe; do
    echo "$step $A0" >"$S/sim/fail"
    : >"$S/sim/log"
    gm vm attach vm1 --gpu 0 >/dev/null 2>&1 &
    cli=$!
    wait_for "the attach reached $step of $A0" 5 grep -q "refused $step $A0" "$S/sim/log"
    kill9_daemon
    wait "$cli" 2>/dev/null
    : >"$S/sim/fail"
    daemon || exit 1
    as_it_was && pass "killed at $step of $A0: repaired at the next start" ||
        fail "killed at $step: $(drv $G0) $(drv $A0) $(ovr $G0) $(ovr $A0)"
    expect "the repair is in the event log" 0 'repaired: GPU .* on their drivers again \(an attach' -- gm events
    [ "$(gm vm ls -o json | json_get "len(d['vms'])")" = 0 ] && pass "no claim after the repair" || fail "claim left"
done

# ...and a detach killed halfway (waiting for a bind back) is finished at the next start.
gm vm attach vm1 --gpu 0 >/dev/null || fail "attach before the killed detach"
echo "bind $A0" >"$S/sim/fail"
: >"$S/sim/log"
gm vm detach vm1 >/dev/null 2>&1 &
cli=$!
wait_for "the detach reached the bind of $A0" 5 grep -q "refused bind $A0" "$S/sim/log"
kill9_daemon
wait "$cli" 2>/dev/null
: >"$S/sim/fail"
daemon || exit 1
as_it_was && pass "a killed detach is finished at the next start" ||
    fail "killed detach: $(drv $G0) $(drv $A0) $(ovr $G0) $(ovr $A0)"
expect "the GPU is shared after the finished detach" 0 '^0 .* shared ' -- gm gpu ls
expect "said in the event log" 0 'repaired: GPU .* \(a detach that did not finish\)' -- gm events

# A claim survives a reboot: the host driver took the functions back; the next start binds them
# to vfio-pci again before anything is placed.
gm vm attach vm1 --gpu 0 >/dev/null || fail "attach before the reboot"
stop_daemon
for f in $G0 $A0; do
    echo > "$S/sys/bus/pci/devices/$f/driver_override"
    echo "$f" > "$S/sys/bus/pci/drivers/vfio-pci/unbind"
done
echo $G0 > "$S/sys/bus/pci/drivers/nvidia/bind"
echo $A0 > "$S/sys/bus/pci/drivers/snd_hda_intel/bind"
wait_for "the reboot gave the host its drivers" 5 sh -c "[ \"\$(basename \"\$(readlink $S/sys/bus/pci/devices/$G0/driver)\")\" = nvidia ]"
daemon || exit 1
[ "$(drv $G0)" = vfio-pci ] && [ "$(drv $A0)" = vfio-pci ] && [ -e "$S/dev/vfio/20" ] &&
    pass "after the reboot the claimed GPU is on vfio-pci again" || fail "after the reboot: $(drv $G0) $(drv $A0)"
expect "said in the event log" 0 'on vfio-pci again \(IOMMU group 20\)' -- gm events
# ...and a claim whose GPU has gone is reported, not dropped.
stop_daemon
rm "$S/sys/bus/pci/devices/$G0"
daemon || exit 1
expect "a vanished GPU is reported" 0 'no longer in sysfs' -- gm events
expect "its claim is kept" 0 'vm1' -- gm vm ls
stop_daemon

# Machines where passthrough cannot work: refused with the reason, nothing changed.
rm -rf "$T/state"
sysfs --no-iommu || exit 1
daemon || exit 1
expect "IOMMU off" 1 'the IOMMU is off.*intel_iommu=on' -- gm vm attach vm1 --gpu 0
stop_daemon
sysfs --no-vfio-pci || exit 1
daemon || exit 1
expect "vfio-pci not loaded" 1 'vfio-pci driver is not loaded \(modprobe vfio-pci\)' -- gm vm attach vm1 --gpu 0
stop_daemon
sysfs --foreign-in-group 1 || exit 1
daemon || exit 1
expect "a foreign device in the group" 1 'also holds 0000:05:00.0 .*not one of the GPU.s functions' -- \
    gm vm attach vm1 --gpu 1
expect "the other GPU still goes" 0 'IOMMU group 20 on vfio-pci' -- gm vm attach vm1 --gpu 0
gm vm detach vm1 >/dev/null
# A process NVML lists on the GPU (started outside gpumux) keeps it from a VM.
"$CTL" add-process --gpu 0 --pid $$ --memory 100 --name /usr/bin/python3 >/dev/null
expect "a process of the host on the GPU" 1 "in use by processes the driver lists: $$ \\(/usr/bin/python3\\)" -- \
    gm vm attach vm1 --gpu 0
"$CTL" remove-process --gpu 0 --pid $$ >/dev/null
stop_daemon

# The claim order of the appliance (SYSTEM.md §1) on one GPU, with the passthrough made.
printf 'gpus:\n  - {}\n' >"$T/one.yaml"
rm -rf "$T/state" "$GPUSIM_STATE"
export GPUSIM_CONFIG="$T/one.yaml"
sysfs || exit 1
daemon --gpusim-config "$T/one.yaml" || exit 1
expect "1 GPU, VM first: the VM gets it" 0 'IOMMU group 20 on vfio-pci' -- gm vm attach vm1 --gpu 0
expect "1 GPU, VM first: containers start with no GPU" 0 'c1 started' -- gm run c1 --gpu none -- sleep 300
expect "1 GPU, VM first: a container asking for a GPU finds none" 1 'Insufficient nvidia.com/gpu: 0 of 1 GPUs' -- \
    gm run c2 -- sleep 300
gm vm detach vm1 >/dev/null
gm delete c1 >/dev/null
expect "1 GPU, containers first: they get it" 0 'c3 started on GPU 0' -- gm run c3 -- sleep 300
expect "1 GPU, containers first: the VM fails" 1 'no GPU resources available: GPU 0 .* in use by workloads c3' -- \
    gm vm attach vm1 --gpu 0
as_it_was && pass "the refused VM moved nothing" || fail "moved: $(drv $G0)"
finish
