#!/usr/bin/env python3
"""A GPU monitor written the way third-party NVML tools are (gpustat, nvitop: ctypes over
libnvidia-ml.so.1, found on the library path, with the signatures of NVIDIA's nvml.h). It knows
nothing of gpumux or gpusim: no variable, no path, only the library name. It prints one JSON
object: the driver, and per GPU what such tools show, with the compute processes (the versioned
call and the unversioned old one) and their per-process utilisation samples.

Exit status: 0, or 1 with the failing call's name and NVML's error string on stderr."""
import ctypes
import json
import sys


class Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong),
                ("used", ctypes.c_ulonglong)]


class Utilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class ProcessInfoV1(ctypes.Structure):  # nvmlProcessInfo_v1_t
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong)]


class ProcessInfo(ctypes.Structure):  # nvmlProcessInfo_t (v2, used by the _v3 call)
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong),
                ("gpuInstanceId", ctypes.c_uint), ("computeInstanceId", ctypes.c_uint)]


class ProcessUtilizationSample(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("timeStamp", ctypes.c_ulonglong),
                ("smUtil", ctypes.c_uint), ("memUtil", ctypes.c_uint),
                ("encUtil", ctypes.c_uint), ("decUtil", ctypes.c_uint)]


NVML_SUCCESS = 0
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_TEMPERATURE_GPU = 0

lib = ctypes.CDLL("libnvidia-ml.so.1")
lib.nvmlErrorString.restype = ctypes.c_char_p


def call(name, *args, ok=(NVML_SUCCESS,)):
    rc = getattr(lib, name)(*args)
    if rc not in ok:
        sys.stderr.write("nvml_monitor: %s: %s\n" % (name, lib.nvmlErrorString(rc).decode()))
        sys.exit(1)
    return rc


def text(fn, *args):
    buf = ctypes.create_string_buffer(96)
    call(fn, *args, buf, ctypes.c_uint(len(buf)))
    return buf.value.decode()


def processes(fn, handle, kind):
    count = ctypes.c_uint(0)
    rc = call(fn, handle, ctypes.byref(count), None, ok=(NVML_SUCCESS, NVML_ERROR_INSUFFICIENT_SIZE))
    if rc == NVML_SUCCESS:
        return []
    infos = (kind * (count.value + 4))()
    count = ctypes.c_uint(len(infos))
    call(fn, handle, ctypes.byref(count), infos)
    return [{"pid": p.pid, "used_mib": p.usedGpuMemory // (1 << 20)} for p in infos[:count.value]]


def samples(handle):
    count = ctypes.c_uint(0)
    rc = call("nvmlDeviceGetProcessUtilization", handle, None, ctypes.byref(count),
              ctypes.c_ulonglong(0), ok=(NVML_SUCCESS, NVML_ERROR_INSUFFICIENT_SIZE,
                                         NVML_ERROR_NOT_FOUND))
    if rc != NVML_ERROR_INSUFFICIENT_SIZE:
        return []
    buf = (ProcessUtilizationSample * count.value)()
    call("nvmlDeviceGetProcessUtilization", handle, buf, ctypes.byref(count),
         ctypes.c_ulonglong(0), ok=(NVML_SUCCESS, NVML_ERROR_NOT_FOUND))
    return [{"pid": s.pid, "timestamp_us": s.timeStamp, "sm": s.smUtil}
            for s in buf[:count.value]]


call("nvmlInit_v2")
out = {"driver": text("nvmlSystemGetDriverVersion"), "gpus": []}
n = ctypes.c_uint(0)
call("nvmlDeviceGetCount_v2", ctypes.byref(n))
for i in range(n.value):
    h = ctypes.c_void_p()
    call("nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(i), ctypes.byref(h))
    mem, util, temp, power = Memory(), Utilization(), ctypes.c_uint(), ctypes.c_uint()
    call("nvmlDeviceGetMemoryInfo", h, ctypes.byref(mem))
    call("nvmlDeviceGetUtilizationRates", h, ctypes.byref(util))
    call("nvmlDeviceGetTemperature", h, NVML_TEMPERATURE_GPU, ctypes.byref(temp))
    call("nvmlDeviceGetPowerUsage", h, ctypes.byref(power))
    procs = processes("nvmlDeviceGetComputeRunningProcesses_v3", h, ProcessInfo)
    for p in procs:
        p["name"] = text("nvmlSystemGetProcessName", ctypes.c_uint(p["pid"]))
    out["gpus"].append({
        "index": i, "name": text("nvmlDeviceGetName", h), "uuid": text("nvmlDeviceGetUUID", h),
        "memory_used_mib": mem.used // (1 << 20), "memory_total_mib": mem.total // (1 << 20),
        "utilization": util.gpu, "temperature": temp.value, "power_mw": power.value,
        "processes": procs,
        "processes_v1": processes("nvmlDeviceGetComputeRunningProcesses", h, ProcessInfoV1),
        "samples": samples(h)})
call("nvmlShutdown")
print(json.dumps(out))
