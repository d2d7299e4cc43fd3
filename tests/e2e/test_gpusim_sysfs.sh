#!/usr/bin/env bash
# gpusimctl sysfs: the simulated sysfs that VM passthrough is tested against. create lays out the
# tree Linux shows for the GPUs (devices, drivers, IOMMU groups, /dev/vfio); kernel honours the
# writes an administrator makes to move a GPU to vfio-pci and back (driver_override, unbind,
# drivers_probe, bind), as Linux does, and refuses the writes the fail file names. Every write
# here is a shell redirection, as a VMM administrator types it. No daemon.
. "$(dirname "$0")/lib.sh" || exit 1

CTL="$B/bin/gpusimctl"
export GPUSIM_STATE="$T/gpusim.state"
unset GPUSIM_CONFIG
R="$T/root"
S="$R/sys"
P="$S/bus/pci"
DEV="$P/devices"
DRV="$P/drivers"
G0=2c74:00:00.0 A0=2c74:00:00.1 G1=e00b:00:00.0 A1=e00b:00:00.1
KPID=

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
# eq GOT WANT
eq() { [ "$1" = "$2" ] || { log "  got '$1', expected '$2'"; return 1; }; }
# drv BDF: the driver the device is bound to, from its driver link; "none" without one.
drv() {
    local l
    l=$(readlink "$DEV/$1/driver") || { echo none; return; }
    echo "${l##*/}"
}
is_drv() { [ "$(drv "$1")" = "$2" ]; }
logged() { grep -qxF -- "$1" "$R/sim/log"; }
# emptied FILE...: the kernel has handled the writes to these write-only files (it empties each
# after reading it, and takes the writes in order).
emptied() {
    local f
    for f; do wait_for "the kernel empties ${f#"$R"/}" 5 test ! -s "$f"; done
}
start_kernel() {
    rm -f "$R/sim/kernel.pid"
    "$CTL" sysfs kernel "$R" --exit-after-idle-ms 120000 2>>"$T/kernel.err" &
    KPID=$!
    wait_for "the kernel writes its pid" 5 test -s "$R/sim/kernel.pid" &&
        check "sim/kernel.pid holds the kernel's pid" eq "$(cat "$R/sim/kernel.pid")" "$KPID"
}
stop_kernel() {
    kill -TERM "$KPID" 2>/dev/null
    wait "$KPID"
    check "SIGTERM ends the kernel with status 0" eq "$?" 0
    check "the kernel removes its pid file" test ! -e "$R/sim/kernel.pid"
    KPID=
}

# ---- Usage ----------------------------------------------------------------------------------
expect "sysfs without a command" 2 "create or kernel" -- "$CTL" sysfs
expect "sysfs with an unknown command" 2 "unknown command 'mount'" -- "$CTL" sysfs mount "$R"
expect "create without ROOT" 2 "ROOT is required" -- "$CTL" sysfs create
expect "create with an unknown option" 2 "unknown option" -- "$CTL" sysfs create "$R" --bogus
expect "--foreign-in-group names a GPU of the state" 2 "no such GPU \(the state has 2\)" -- \
    "$CTL" sysfs create "$R" --foreign-in-group 2
expect "--foreign-in-group needs groups" 2 "not with --no-iommu" -- \
    "$CTL" sysfs create "$R" --foreign-in-group 0 --no-iommu
expect "kernel --help" 0 "sysfs kernel ROOT" -- "$CTL" sysfs kernel --help
expect "the kernel on no tree names the path" 1 "$T/nothing: No such file or directory" -- \
    "$CTL" sysfs kernel "$T/nothing"
expect "gpusimctl --help lists sysfs" 0 "gpusimctl sysfs create ROOT" -- "$CTL" --help

# ---- The default tree: two T4s ----------------------------------------------------------------
expect "create prints nothing" 0 '^$' -- "$CTL" sysfs create "$R"
cat >"$T/want" <<'LIST'
.
./dev
./dev/vfio
./dev/vfio/vfio
./sim
./sim/devices
./sim/devices/2c74:00:00.0
./sim/devices/2c74:00:00.0/default_driver
./sim/devices/2c74:00:00.1
./sim/devices/2c74:00:00.1/default_driver
./sim/devices/e00b:00:00.0
./sim/devices/e00b:00:00.0/default_driver
./sim/devices/e00b:00:00.1
./sim/devices/e00b:00:00.1/default_driver
./sim/fail
./sim/log
./sys
./sys/bus
./sys/bus/pci
./sys/bus/pci/devices
./sys/bus/pci/devices/2c74:00:00.0
./sys/bus/pci/devices/2c74:00:00.1
./sys/bus/pci/devices/e00b:00:00.0
./sys/bus/pci/devices/e00b:00:00.1
./sys/bus/pci/drivers
./sys/bus/pci/drivers/nvidia
./sys/bus/pci/drivers/nvidia/2c74:00:00.0
./sys/bus/pci/drivers/nvidia/bind
./sys/bus/pci/drivers/nvidia/e00b:00:00.0
./sys/bus/pci/drivers/nvidia/new_id
./sys/bus/pci/drivers/nvidia/unbind
./sys/bus/pci/drivers/snd_hda_intel
./sys/bus/pci/drivers/snd_hda_intel/2c74:00:00.1
./sys/bus/pci/drivers/snd_hda_intel/bind
./sys/bus/pci/drivers/snd_hda_intel/e00b:00:00.1
./sys/bus/pci/drivers/snd_hda_intel/new_id
./sys/bus/pci/drivers/snd_hda_intel/unbind
./sys/bus/pci/drivers/vfio-pci
./sys/bus/pci/drivers/vfio-pci/bind
./sys/bus/pci/drivers/vfio-pci/new_id
./sys/bus/pci/drivers/vfio-pci/unbind
./sys/bus/pci/drivers_probe
./sys/devices
./sys/devices/pci2c74:00
./sys/devices/pci2c74:00/2c74:00:00.0
./sys/devices/pci2c74:00/2c74:00:00.0/class
./sys/devices/pci2c74:00/2c74:00:00.0/device
./sys/devices/pci2c74:00/2c74:00:00.0/driver
./sys/devices/pci2c74:00/2c74:00:00.0/driver_override
./sys/devices/pci2c74:00/2c74:00:00.0/iommu_group
./sys/devices/pci2c74:00/2c74:00:00.0/subsystem_device
./sys/devices/pci2c74:00/2c74:00:00.0/subsystem_vendor
./sys/devices/pci2c74:00/2c74:00:00.0/vendor
./sys/devices/pci2c74:00/2c74:00:00.1
./sys/devices/pci2c74:00/2c74:00:00.1/class
./sys/devices/pci2c74:00/2c74:00:00.1/device
./sys/devices/pci2c74:00/2c74:00:00.1/driver
./sys/devices/pci2c74:00/2c74:00:00.1/driver_override
./sys/devices/pci2c74:00/2c74:00:00.1/iommu_group
./sys/devices/pci2c74:00/2c74:00:00.1/subsystem_device
./sys/devices/pci2c74:00/2c74:00:00.1/subsystem_vendor
./sys/devices/pci2c74:00/2c74:00:00.1/vendor
./sys/devices/pcie00b:00
./sys/devices/pcie00b:00/e00b:00:00.0
./sys/devices/pcie00b:00/e00b:00:00.0/class
./sys/devices/pcie00b:00/e00b:00:00.0/device
./sys/devices/pcie00b:00/e00b:00:00.0/driver
./sys/devices/pcie00b:00/e00b:00:00.0/driver_override
./sys/devices/pcie00b:00/e00b:00:00.0/iommu_group
./sys/devices/pcie00b:00/e00b:00:00.0/subsystem_device
./sys/devices/pcie00b:00/e00b:00:00.0/subsystem_vendor
./sys/devices/pcie00b:00/e00b:00:00.0/vendor
./sys/devices/pcie00b:00/e00b:00:00.1
./sys/devices/pcie00b:00/e00b:00:00.1/class
./sys/devices/pcie00b:00/e00b:00:00.1/device
./sys/devices/pcie00b:00/e00b:00:00.1/driver
./sys/devices/pcie00b:00/e00b:00:00.1/driver_override
./sys/devices/pcie00b:00/e00b:00:00.1/iommu_group
./sys/devices/pcie00b:00/e00b:00:00.1/subsystem_device
./sys/devices/pcie00b:00/e00b:00:00.1/subsystem_vendor
./sys/devices/pcie00b:00/e00b:00:00.1/vendor
./sys/kernel
./sys/kernel/iommu_groups
./sys/kernel/iommu_groups/20
./sys/kernel/iommu_groups/20/devices
./sys/kernel/iommu_groups/20/devices/2c74:00:00.0
./sys/kernel/iommu_groups/20/devices/2c74:00:00.1
./sys/kernel/iommu_groups/21
./sys/kernel/iommu_groups/21/devices
./sys/kernel/iommu_groups/21/devices/e00b:00:00.0
./sys/kernel/iommu_groups/21/devices/e00b:00:00.1
LIST
listing() { (cd "$R" && find . | LC_ALL=C sort); }
if diff "$T/want" <(listing) >"$T/diff"; then
    pass "the tree has exactly the files and links of the layout"
else
    fail "the tree differs from the layout: $(cat "$T/diff")"
fi

D0="$S/devices/pci2c74:00/$G0"
check "a GPU's vendor is NVIDIA's" eq "$(cat "$DEV/$G0/vendor")" 0x10de
check "a T4's device id" eq "$(cat "$DEV/$G0/device")" 0x1eb8
check "a GPU's class is 3D controller" eq "$(cat "$DEV/$G0/class")" 0x030200
check "a T4's subsystem" eq "$(cat "$DEV/$G0/subsystem_vendor") $(cat "$DEV/$G0/subsystem_device")" \
    "0x10de 0x12a2"
check "the audio function's vendor, device and class" \
    eq "$(cat "$DEV/$A1/vendor") $(cat "$DEV/$A1/device") $(cat "$DEV/$A1/class")" \
    "0x10de 0x10fa 0x040300"
check "driver_override reads (null) when unset" eq "$(cat "$DEV/$G1/driver_override")" "(null)"
check "bus/pci/devices/BDF is a relative link to the device" \
    eq "$(readlink "$DEV/$G0")" "../../../devices/pci2c74:00/$G0"
check "the second GPU's domain in lowercase" eq "$(readlink "$DEV/$G1")" \
    "../../../devices/pcie00b:00/$G1"
check "a GPU starts on nvidia" eq "$(readlink "$D0/driver")" "../../../bus/pci/drivers/nvidia"
check "an audio function starts on snd_hda_intel" eq "$(readlink "$DEV/$A1/driver")" \
    "../../../bus/pci/drivers/snd_hda_intel"
check "the driver link resolves inside ROOT" eq "$(readlink -f "$DEV/$G0/driver")" \
    "$(readlink -f "$DRV/nvidia")"
check "the driver lists its device" eq "$(readlink "$DRV/nvidia/$G0")" \
    "../../../../devices/pci2c74:00/$G0"
check "GPU 0 is in IOMMU group 20" eq "$(readlink "$D0/iommu_group")" \
    "../../../kernel/iommu_groups/20"
check "GPU 1 is in IOMMU group 21" eq "$(readlink "$DEV/$A1/iommu_group")" \
    "../../../kernel/iommu_groups/21"
check "group 20 holds both functions of GPU 0" \
    eq "$(ls "$S/kernel/iommu_groups/20/devices" | tr '\n' ' ')" "$G0 $A0 "
check "a group's device link" eq "$(readlink "$S/kernel/iommu_groups/21/devices/$A1")" \
    "../../../../devices/pcie00b:00/$A1"
check "the group link resolves to the device" \
    eq "$(readlink -f "$S/kernel/iommu_groups/20/devices/$G0")" "$(readlink -f "$D0")"
check "bind, unbind, new_id and drivers_probe are write-only, as Linux has them" \
    eq "$(stat -c %a "$DRV/vfio-pci/bind" "$DRV/nvidia/unbind" "$DRV/snd_hda_intel/new_id" \
        "$P/drivers_probe" | tr '\n' ' ')" "200 200 200 200 "
check "/dev/vfio/vfio is there, no group node" eq "$(ls "$R/dev/vfio")" vfio
check "the default drivers" eq "$(cat "$R/sim/devices/$G0/default_driver" \
    "$R/sim/devices/$A0/default_driver" | tr '\n' ' ')" "nvidia snd_hda_intel "
check "sim/fail and sim/log start empty" test ! -s "$R/sim/fail" -a ! -s "$R/sim/log" \
    -a -f "$R/sim/fail" -a -f "$R/sim/log"

# ---- Creating over a tree, and what it never removes --------------------------------------------
mkdir -p "$T/precious" && echo keep >"$T/precious/file"
ln -s "$T/precious" "$S/kernel/outside"
echo junk >"$S/bus/pci/extra"
expect "create over an existing tree" 0 '^$' -- "$CTL" sysfs create "$R"
check "the tree is replaced: the earlier one's extra files are gone" \
    test ! -e "$S/bus/pci/extra" -a ! -L "$S/kernel/outside"
check "a link in the old tree is removed, not followed" eq "$(cat "$T/precious/file")" keep
if diff "$T/want" <(listing) >"$T/diff"; then
    pass "the new tree has the layout again"
else
    fail "the new tree differs: $(cat "$T/diff")"
fi
mkdir -p "$T/other/sys/mine"
expect "a ROOT whose sys is not a simulated tree is not replaced" 1 \
    "$T/other/sys: exists and .* holds no simulated tree.*not replaced" -- \
    "$CTL" sysfs create "$T/other"
check "... and is left as it was" test -d "$T/other/sys/mine"
touch "$T/afile"
expect "an error names the path and the reason" 1 "$T/afile/r.*Not a directory" -- \
    "$CTL" sysfs create "$T/afile/r"

# ---- The kernel: GPU 0 to vfio-pci and back, one write at a time ---------------------------------
start_kernel
echo vfio-pci >"$DEV/$G0/driver_override"
echo vfio-pci >"$DEV/$A0/driver_override"
wait_for "the overrides are stored" 5 logged "driver_override $A0 vfio-pci"
check "driver_override reads back what was written" \
    eq "$(cat "$D0/driver_override") $(cat "$DEV/$A0/driver_override")" "vfio-pci vfio-pci"
check "an override alone binds nothing" is_drv "$G0" nvidia
echo "$G0" >"$DRV/nvidia/unbind"
wait_for "unbind from nvidia" 5 is_drv "$G0" none
check "the device's driver link is gone and nvidia no longer lists it" \
    test ! -L "$D0/driver" -a ! -L "$DRV/nvidia/$G0"
check "unbind is emptied after the write" test ! -s "$DRV/nvidia/unbind"
echo "$A0" >"$DRV/snd_hda_intel/unbind"
wait_for "unbind the audio function" 5 is_drv "$A0" none
check "an unbound group has no /dev/vfio node" test ! -e "$R/dev/vfio/20"
echo "$G0" >"$P/drivers_probe"
wait_for "drivers_probe binds the GPU to its override" 5 is_drv "$G0" vfio-pci
check "the driver link names vfio-pci" eq "$(readlink "$D0/driver")" \
    "../../../bus/pci/drivers/vfio-pci"
check "vfio-pci lists the GPU" eq "$(readlink "$DRV/vfio-pci/$G0")" \
    "../../../../devices/pci2c74:00/$G0"
check "/dev/vfio/20 appears once a function of group 20 is on vfio-pci" \
    test -f "$R/dev/vfio/20" -a ! -e "$R/dev/vfio/21"
check "drivers_probe is emptied after the write" test ! -s "$P/drivers_probe"
echo "$A0" >"$P/drivers_probe"
wait_for "drivers_probe binds the audio function" 5 is_drv "$A0" vfio-pci
check "GPU 1 is untouched" eq "$(drv "$G1") $(drv "$A1")" "nvidia snd_hda_intel"

# Back: override cleared, unbound from vfio-pci, bound to nvidia through its bind file. The GPU's
# override is cleared as a program that opens the file without O_TRUNC does (the rest of
# "vfio-pci\n" stays behind the newline written), the audio function's with an empty write.
echo 1<>"$D0/driver_override"
printf '' >"$DEV/$A0/driver_override"
wait_for "the overrides are cleared" 5 logged "driver_override $A0 (null)"
check "a cleared override reads (null)" \
    eq "$(cat "$D0/driver_override") $(cat "$DEV/$A0/driver_override")" "(null) (null)"
check "clearing the override leaves the device where it is" is_drv "$G0" vfio-pci
echo "$G0" >"$DRV/vfio-pci/unbind"
wait_for "unbind from vfio-pci" 5 is_drv "$G0" none
check "/dev/vfio/20 stays while the audio function is on vfio-pci" test -f "$R/dev/vfio/20"
echo "$A0" >"$DRV/vfio-pci/unbind"
wait_for "/dev/vfio/20 goes with the group's last vfio-pci device" 5 test ! -e "$R/dev/vfio/20"
echo "$G0" >"$DRV/nvidia/bind"
wait_for "bind to nvidia" 5 is_drv "$G0" nvidia
check "bind is emptied after the write" test ! -s "$DRV/nvidia/bind"
echo "$A0" >"$P/drivers_probe"
wait_for "drivers_probe without an override picks the default driver" 5 is_drv "$A0" snd_hda_intel
cat >"$T/want.log" <<LOG
driver_override $G0 vfio-pci
driver_override $A0 vfio-pci
unbind $G0 nvidia
unbind $A0 snd_hda_intel
bind $G0 vfio-pci
bind $A0 vfio-pci
driver_override $G0 (null)
driver_override $A0 (null)
unbind $G0 vfio-pci
unbind $A0 vfio-pci
bind $G0 nvidia
bind $A0 snd_hda_intel
LOG
if diff "$T/want.log" "$R/sim/log" >"$T/diff"; then
    pass "sim/log has one line per change, in order"
else
    fail "sim/log: $(cat "$T/diff")"
fi
: >"$R/sim/log"

# ---- Several writes in a row, without waiting ------------------------------------------------------
echo vfio-pci >"$DEV/$G1/driver_override"
echo "$G1" >"$DRV/nvidia/unbind"
echo "$G1" >"$P/drivers_probe"
echo vfio-pci >"$DEV/$A1/driver_override"
echo "$A1" >"$DRV/snd_hda_intel/unbind"
printf '%s' "$A1" >"$DRV/vfio-pci/bind" # no newline; bind to the override's driver
wait_for "writes in a row: both functions of GPU 1 on vfio-pci" 5 is_drv "$A1" vfio-pci
check "... the GPU too, and /dev/vfio/21 is there" \
    eval 'is_drv "$G1" vfio-pci && test -f "$R/dev/vfio/21"'
# The kernel reads a file when its writer has closed it: a second write to the same file waits
# until the first was handled (here: vfio-pci's unbind), or the kernel sees only the second.
echo >"$DEV/$G1/driver_override"
echo "$G1" >"$DRV/vfio-pci/unbind"
echo "$G1" >"$P/drivers_probe"
echo >"$DEV/$A1/driver_override"
wait_for "writes in a row: GPU 1's GPU back on nvidia" 5 is_drv "$G1" nvidia
echo "$A1" >"$DRV/vfio-pci/unbind"
echo "  $A1  " >"$DRV/snd_hda_intel/bind"
wait_for "writes in a row: the audio function back on snd_hda_intel, /dev/vfio/21 gone" 5 \
    eval 'is_drv "$A1" snd_hda_intel && test ! -e "$R/dev/vfio/21"'
: >"$R/sim/log"

# ---- What Linux does not do ---------------------------------------------------------------------------
echo "$G0" >"$DRV/snd_hda_intel/unbind"   # bound to nvidia, not to snd_hda_intel
echo "$G0" >"$DRV/nvidia/bind"            # bound already
echo 0000:99:00.0 >"$DRV/vfio-pci/unbind" # no such device
echo "$G0" >"$P/drivers_probe"            # bound already
emptied "$DRV/snd_hda_intel/unbind" "$DRV/nvidia/bind" "$DRV/vfio-pci/unbind" "$P/drivers_probe"
check "unbind from another driver, bind or probe of a bound device: nothing" is_drv "$G0" nvidia
check "... and nothing logged" test ! -s "$R/sim/log"
echo "$G0" >"$DRV/nvidia/unbind"
wait_for "unbind" 5 is_drv "$G0" none
echo "$G0" >"$DRV/vfio-pci/bind" # vfio-pci matches a device only by its override
echo "$G0" >"$DRV/snd_hda_intel/bind"
emptied "$DRV/vfio-pci/bind" "$DRV/snd_hda_intel/bind"
check "bind to a driver that does not match the device: nothing" is_drv "$G0" none
echo vfio-pci >"$D0/driver_override"
echo "$G0" >"$DRV/nvidia/bind" # the override says vfio-pci
emptied "$DRV/nvidia/bind"
check "bind to another driver than the override: nothing" is_drv "$G0" none
echo no-such-driver >"$D0/driver_override"
echo "$G0" >"$P/drivers_probe"
emptied "$P/drivers_probe"
check "a probe with an override naming a driver that is not there leaves it unbound" \
    is_drv "$G0" none
mkdir -p "$T/outside"
ln -s "$T/outside" "$DRV/evil"
echo evil >"$D0/driver_override"
echo "$G0" >"$P/drivers_probe"
emptied "$P/drivers_probe"
check "a driver that is a link out of ROOT is no driver" \
    eval 'is_drv "$G0" none && [ -z "$(ls -A "$T/outside")" ]'
rm "$DRV/evil"
echo >"$D0/driver_override"
echo "$G0" >"$P/drivers_probe"
wait_for "probe back to nvidia" 5 is_drv "$G0" nvidia
: >"$R/sim/log"

# ---- Where the kernel may use fanotify: a write is in effect by its writer's next open ----------
# Every open of a file in the tree by another process waits until the writes closed before it
# were handled, so writes in a row need no wait, to the same file neither, and what a writer
# reads next is what happened (as on Linux, where the write itself does it).
if grep -q "fanotify:" "$T/kernel.err"; then
    log "skip: the kernel may not use fanotify here (it needs CAP_SYS_ADMIN): $(grep -m1 fanotify: "$T/kernel.err")"
else
    echo vfio-pci >"$D0/driver_override"
    echo vfio-pci >"$DEV/$A0/driver_override"
    echo "$G0" >"$DRV/nvidia/unbind"
    echo "$A0" >"$DRV/snd_hda_intel/unbind"
    echo "$G0" >"$P/drivers_probe"
    echo "$A0" >"$P/drivers_probe" # the same file at once
    cat "$D0/vendor" >/dev/null    # an open: in effect now
    check "in effect at the next open: both functions on vfio-pci, /dev/vfio/20 there" \
        eval 'is_drv "$G0" vfio-pci && is_drv "$A0" vfio-pci && test -f "$R/dev/vfio/20"'
    echo >"$D0/driver_override"
    echo >"$DEV/$A0/driver_override"
    echo "$G0" >"$DRV/vfio-pci/unbind"
    echo "$A0" >"$DRV/vfio-pci/unbind"
    echo "$G0" >"$DRV/nvidia/bind"
    echo "$A0" >"$DRV/snd_hda_intel/bind"
    check "in effect at the next open: a cleared override reads (null)" \
        eq "$(cat "$D0/driver_override")" "(null)"
    check "in effect at the next open: both functions back, /dev/vfio/20 gone" \
        eval 'is_drv "$G0" nvidia && is_drv "$A0" snd_hda_intel && test ! -e "$R/dev/vfio/20"'
    echo "driver_override $G0" >"$R/sim/fail"
    echo vfio-pci >"$D0/driver_override"
    check "a refused override reads its previous content at the writer's next open" \
        eq "$(cat "$D0/driver_override")" "(null)"
    : >"$R/sim/fail"
    : >"$R/sim/log"
fi

# ---- Failure injection -------------------------------------------------------------------------------
echo "driver_override $G0" >"$R/sim/fail"
echo vfio-pci >"$D0/driver_override"
wait_for "a refused driver_override is logged" 5 logged "refused driver_override $G0"
wait_for "... and the previous content is written back" 5 \
    eval '[ "$(cat "$D0/driver_override")" = "(null)" ]'
echo "unbind $G0" >"$R/sim/fail"
echo "$G0" >"$DRV/nvidia/unbind"
wait_for "a refused unbind is logged" 5 logged "refused unbind $G0"
check "... and the device stays bound" is_drv "$G0" nvidia
check "... and unbind is emptied" test ! -s "$DRV/nvidia/unbind"
: >"$R/sim/fail"
echo vfio-pci >"$D0/driver_override"
echo "$G0" >"$DRV/nvidia/unbind"
wait_for "unbind once the fail file allows it" 5 is_drv "$G0" none
echo "drivers_probe $G0" >"$R/sim/fail"
echo "$G0" >"$P/drivers_probe"
wait_for "a refused drivers_probe is logged" 5 logged "refused drivers_probe $G0"
check "... and the device stays unbound" is_drv "$G0" none
printf '%s\n' "# a comment" "bind $A0" "bind $G0" >"$R/sim/fail"
echo "$G0" >"$DRV/vfio-pci/bind"
wait_for "a refused bind is logged" 5 logged "refused bind $G0"
check "... the device stays unbound and there is no /dev/vfio/20" \
    eval 'is_drv "$G0" none && test ! -e "$R/dev/vfio/20"'
: >"$R/sim/fail"
echo "$G0" >"$DRV/vfio-pci/bind"
wait_for "bind once the fail file allows it" 5 is_drv "$G0" vfio-pci
cat >"$T/want.log" <<LOG
refused driver_override $G0
refused unbind $G0
driver_override $G0 vfio-pci
unbind $G0 nvidia
refused drivers_probe $G0
refused bind $G0
bind $G0 vfio-pci
LOG
if diff "$T/want.log" "$R/sim/log" >"$T/diff"; then
    pass "refused writes are logged, honoured ones too"
else
    fail "sim/log: $(cat "$T/diff")"
fi
stop_kernel

# ---- The kernel ends when idle, or when its tree is replaced -------------------------------------------
"$CTL" sysfs create "$R"
"$CTL" sysfs kernel "$R" --exit-after-idle-ms 300 &
pid=$!
wait_for "--exit-after-idle-ms: the kernel ends by itself" 5 gone "$pid"
wait "$pid"
check "... with status 0" eq "$?" 0
start_kernel
"$CTL" sysfs create "$R"
wait_for "the kernel ends when its tree is replaced" 5 gone "$KPID"
wait "$KPID"
check "... with status 0" eq "$?" 0

# ---- No IOMMU ------------------------------------------------------------------------------------------
expect "create --no-iommu" 0 '^$' -- "$CTL" sysfs create "$R" --no-iommu
check "--no-iommu: iommu_groups is there and empty" \
    eval '[ -d "$S/kernel/iommu_groups" ] && [ -z "$(ls -A "$S/kernel/iommu_groups")" ]'
check "--no-iommu: no device has an iommu_group link" \
    eval '[ -z "$(find "$S/devices" -name iommu_group)" ]'
start_kernel
echo vfio-pci >"$D0/driver_override"
echo "$G0" >"$DRV/nvidia/unbind"
echo "$G0" >"$P/drivers_probe"
wait_for "--no-iommu: vfio-pci's probe fails" 5 logged "failed bind $G0 vfio-pci: no IOMMU group"
check "--no-iommu: the GPU stays unbound and no /dev/vfio node appears" \
    eval 'is_drv "$G0" none && [ "$(ls "$R/dev/vfio")" = vfio ]'
stop_kernel

# ---- vfio-pci not loaded ----------------------------------------------------------------------------------
expect "create --no-vfio-pci" 0 '^$' -- "$CTL" sysfs create "$R" --no-vfio-pci
check "--no-vfio-pci: no vfio-pci driver directory" test ! -e "$DRV/vfio-pci"
check "--no-vfio-pci: the groups are there" test -L "$S/kernel/iommu_groups/20/devices/$G0"
start_kernel
echo vfio-pci >"$D0/driver_override"
echo "$G0" >"$DRV/nvidia/unbind"
echo "$G0" >"$P/drivers_probe"
emptied "$P/drivers_probe"
check "--no-vfio-pci: a probe for vfio-pci leaves the GPU unbound" is_drv "$G0" none
echo >"$D0/driver_override"
echo "$G0" >"$P/drivers_probe"
wait_for "--no-vfio-pci: back to nvidia" 5 is_drv "$G0" nvidia
stop_kernel

# ---- A foreign device in a GPU's group ---------------------------------------------------------------------
F=0000:05:00.0
expect "create --foreign-in-group 1" 0 '^$' -- "$CTL" sysfs create "$R" --foreign-in-group 1
check "--foreign-in-group: GPU 1's group holds a third device" \
    eq "$(ls "$S/kernel/iommu_groups/21/devices" | tr '\n' ' ')" "$F $G1 $A1 "
check "--foreign-in-group: GPU 0's group is as before" \
    eq "$(ls "$S/kernel/iommu_groups/20/devices" | tr '\n' ' ')" "$G0 $A0 "
check "the foreign device is an Intel network function" \
    eq "$(cat "$DEV/$F/vendor") $(cat "$DEV/$F/class")" "0x8086 0x020000"
check "... on its own slot, in GPU 1's group" \
    eq "$(readlink "$DEV/$F") $(readlink "$DEV/$F/iommu_group")" \
    "../../../devices/pci0000:05/$F ../../../kernel/iommu_groups/21"
check "... bound to e1000e, which has its driver directory" \
    eval 'is_drv "$F" e1000e && [ -f "$DRV/e1000e/bind" ] && [ -L "$DRV/e1000e/$F" ]'
check "... whose default driver is e1000e" eq "$(cat "$R/sim/devices/$F/default_driver")" e1000e
start_kernel
echo vfio-pci >"$DEV/$G1/driver_override"
echo "$G1" >"$DRV/nvidia/unbind"
echo "$G1" >"$P/drivers_probe"
wait_for "--foreign-in-group: the GPU goes to vfio-pci" 5 is_drv "$G1" vfio-pci
check "... /dev/vfio/21 appears though the group is not viable" test -f "$R/dev/vfio/21"
echo "$F" >"$DRV/e1000e/unbind"
wait_for "the foreign device unbinds" 5 is_drv "$F" none
echo "$F" >"$P/drivers_probe"
wait_for "... and probes back to e1000e" 5 is_drv "$F" e1000e
stop_kernel

finish
