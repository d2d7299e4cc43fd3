#!/usr/bin/env python3
"""Runs the examples of docs/cli.md and compares what gpumux prints with what the page shows.

An example is a fenced block of the page that either
  - holds `$ gpumux ...` lines, each followed by the lines it prints (`$ echo $?` followed by a
    number: the exit status of the command before it), or
  - follows the line `<!-- example: output of gpumux VERB.. -->` (the whole output of that
    command) or `<!-- example: excerpt of gpumux VERB.. -->` (a table's header and some of its
    rows, in order).
`<!-- example: not run (REASON) -->` on the line before a block leaves it out.

  cli_docs.py list DOC              one line per example: NUMBER TAB LINE TAB KIND TAB COMMAND
                                    (KIND run, output, excerpt, skip or bad; for the last two,
                                    the reason)
  cli_docs.py check DOC NUMBER [--map WORD=REPLACEMENT]..
                                    runs that example's commands and prints, per command,
                                    `ok TAB WHAT` or `fail TAB WHAT` (the difference on stderr);
                                    exits 1 if one failed

The commands run under a pseudo-terminal, so that stdout and stderr come in the order a terminal
shows them, with `gpumux` replaced by $GPUMUX and each argument equal to a WORD of --map by its
REPLACEMENT. The status wanted is the `$ echo $?` that follows, else 2 when the output shows
"Try 'gpumux ...", 1 when it shows a `gpumux: ` error, else 0.

The comparison is exact except for values that vary from run to run, which match any value of
their form (digits for digits):
  - everywhere: GPU UUIDs (`GPU-...` too), PCI bus ids, times (ISO and ctime), docker-style
    durations (`14 minutes`), absolute paths, `pid N`, the example host name `edge-1`;
  - nvidia-smi's table: temperature, P-state, power draw, memory used, utilisation, and each
    process's pid and memory;
  - `KEY: VALUE` lines whose key reads a pid, the host name or memory use (VOLATILE_KEYS);
  - the columns of tables that hold pids or readings (VOLATILE_COLUMNS, by header name).
Blanks next to such a value may be of any length (its width varies). Tables whose column widths
follow their contents (a header of capitalised names, as in `gpumux ps`) are compared cell by
cell: the header's names exactly, then each row's cells; `--query-*` CSV the same way split at
", "; `dmon`/`pmon` output line for line for its `#` headers, cell by cell for the rest.
"""
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time

ANNOT = re.compile(r"^<!--\s*example:\s*(.*?)\s*-->\s*$")
HOSTNAME = "edge-1"  # the host name the page's examples show


def digits(tok):
    """A token's pattern: the same text, any digits where it has digits."""
    return re.sub(r"\d+", r"\\d+", re.escape(tok))


def each_hex(tok):
    """The same text with any hex digit for each hex digit: the form is kept (bus ids)."""
    return "".join("[0-9A-F]" if re.match(r"[0-9A-F]", c) else re.escape(c) for c in tok)


def iso_time(tok):
    """The same text with any digit for each digit: the form is kept (times)."""
    return "".join(r"\d" if c.isdigit() else re.escape(c) for c in tok)


UUID = r"GPU-[0-9a-f]+(?:-[0-9a-f]+)*"
DURATION = (r"(?:Less than a second|About an? (?:minute|hour)"
            r"|\d+ (?:seconds?|minutes|hours|days|weeks))")
PATH = r"(?:\.\.\.)?[\w.+-]*(?:/[\w.+-]+)+/?"

# Volatile values wherever they are: the pattern that finds one in the page (its groups where it
# has any, else the whole match), and the function that makes of it the pattern the real output
# must match there.
CLASSES = [
    (r"(?<![\w.])(?:\.\.\.)?(?:/[\w.+-]+)+/?", lambda t: PATH),  # paths (before UUIDs in them)
    (r"\bGPU-(?:\.\.\.|[0-9a-fA-F]+(?:-[0-9a-fA-F]+)*)", lambda t: UUID),
    (r"\b[0-9A-F]{4,8}:[0-9A-F]{2}:[0-9A-F]{2}\.[0-7]\b", each_hex),
    (r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z", iso_time),
    (r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
     r"[ \d]\d \d\d:\d\d:\d\d \d{4}\b",
     lambda t: r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}"),
    (r"\b\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{3}\b", iso_time),
    (DURATION, lambda t: DURATION),
    (r"(?<!\S)" + re.escape(HOSTNAME) + r"(?!\S)", lambda t: r"\S+"),
    (r"\bpid (\d+)", digits),
    # nvidia-smi's table: the readings of a GPU's rows, a process row's pid and memory
    (r"(?<= )\d+C(?= )", digits),
    (r"(?<= )P\d+(?= )", digits),
    (r"\d+W(?= / +\d+W)", digits),
    (r"\d+MiB(?= / +\d+MiB \|)", digits),
    (r"\d+%(?= +(?:Default|E\. Process|Prohibited) \|)", digits),
    (r"^\|\s+\d+\s+(?:N/A|\d+)\s+(?:N/A|\d+)\s+(\d+)\s+\S+\s+.*?\s(\d+MiB) \|$", digits),
]
CLASSES = [(re.compile(p), f) for p, f in CLASSES]

# `KEY: VALUE` lines (`gpumux info`, `smi -q`) whose value varies: its digits, or a pattern.
VOLATILE_KEYS = {
    "Daemon pid": None,
    "Hostname": r"\S+",
    "Process ID": None,
    "Used": None,
    "Free": None,
    "Used GPU Memory": None,
    # GPUSIM_STATE=FILE is added when the daemon's state file is not gpusim's default
    "NVML tools": r"LD_LIBRARY_PATH=" + PATH + r"(?: GPUSIM_STATE=" + PATH + r")? TOOL",
}
KEYVAL = re.compile(r"^(\s*)([A-Za-z][\w .()-]*?)(\s*:\s+)(\S.*)$")

# Table columns (by header name) that hold pids or readings: any digits there.
VOLATILE_COLUMNS = {
    "aligned": {"PID", "CONTROL-PID", "SERVERS"},
    "dmon": {"pwr", "gtemp", "mtemp", "sm", "mem", "enc", "dec", "mclk", "pclk"},
    "pmon": {"pid", "sm", "mem", "enc", "dec", "fb"},
    "csv": {"pid", "timestamp", "memory.used", "memory.free", "utilization.gpu",
            "utilization.memory", "utilization.encoder", "utilization.decoder", "power.draw",
            "temperature.gpu", "fan.speed", "pstate", "used_gpu_memory", "used_memory",
            "clocks.sm", "clocks.mem", "clocks.gr", "clocks.current.sm",
            "clocks.current.memory", "clocks.current.graphics"},
}
ALIGNED_HEADER = re.compile(r"^[A-Z][A-Z0-9%/._-]*(?: {2,}[A-Z][A-Z0-9%/._-]*)+$")


def tokens(text):
    """The volatile spans of a line of the page: [(start, end, pattern)], in order."""
    found = []
    for rx, pat in CLASSES:
        for m in rx.finditer(text):
            spans = [(m.start(i), m.end(i)) for i in range(1, rx.groups + 1)
                     if m.start(i) >= 0] or [(m.start(), m.end())]
            for s, e in spans:
                if e > s:
                    found.append((s, e, pat(text[s:e])))
    found.sort(key=lambda t: (t[0], -(t[1] - t[0])))
    out, end = [], 0
    for s, e, p in found:
        if s >= end:
            out.append((s, e, p))
            end = e
    return out


def literal(text, any_digits):
    return digits(text) if any_digits else re.escape(text)


def line_pattern(text, extra=(), any_digits=False):
    """The regular expression a real line must match for this line of the page: literal text
    (any digits if asked), volatile spans by their pattern, the blanks around those of any
    length."""
    spans = sorted(tokens(text) + list(extra))
    kept, end = [], 0
    for s, e, p in spans:
        if s >= end:
            kept.append((s, e, p))
            end = e
    out, pos = "", 0
    for s, e, p in kept:
        lit = text[pos:s]
        m = re.search(r"\s+$", lit)
        if m and pos < s:
            out += literal(lit[:m.start()], any_digits) + r"\s+"
        else:
            out += literal(lit, any_digits)
        out += "(?:" + p + ")"
        pos = e
        m = re.match(r"\s+", text[pos:])
        if m:
            out += r"\s+"
            pos += m.end()
    out += literal(text[pos:], any_digits)
    return out


def keyval_extra(text):
    m = KEYVAL.match(text)
    if not m or m.group(2) not in VOLATILE_KEYS:
        return []
    pat = VOLATILE_KEYS[m.group(2)] or digits(m.group(4))
    return [(m.start(4), len(text), pat)]


def match_line(want, got):
    return re.fullmatch(line_pattern(want, keyval_extra(want)), got) is not None


def match_cell(want, got, volatile):
    return re.fullmatch(line_pattern(want, any_digits=volatile), got) is not None


def aligned_cells(line):
    return re.split(r" {2,}", line.strip())


def csv_names(header):
    return [re.sub(r" \[[^]]*\]$", "", c) for c in header.split(", ")]


def compare(argv, want, got, excerpt=False):
    """The first difference between the page's lines and the real ones, or None."""
    cmd = " ".join(argv)
    query = re.search(r"--query-(?:gpu|compute-apps)=(\S+)", cmd)
    if query and want and not excerpt:  # CSV, cell by cell
        fmt = re.search(r"--format=(\S+)", cmd)
        if fmt and "noheader" in fmt.group(1).split(","):
            names, first = query.group(1).split(","), 0
        else:
            names, first = csv_names(want[0]), 1
            if want[0] != (got[0] if got else None):
                return "header: expected %r, got %r" % (want[0], got[0] if got else None)
        if len(want) != len(got):
            return "%d lines expected, %d printed" % (len(want), len(got))
        for w, g in zip(want[first:], got[first:]):
            wc, gc = w.split(", "), g.split(", ")
            if len(wc) != len(gc):
                return "expected %d values, got %d: %r" % (len(wc), len(gc), g)
            for i, (a, b) in enumerate(zip(wc, gc)):
                col = names[i] if i < len(names) else ""
                if not match_cell(a, b, col in VOLATILE_COLUMNS["csv"]):
                    return "column %s: expected %r, got %r (line %r)" % (col, a, b, g)
        return None
    hashed = re.search(r"\bsmi (dmon|pmon)\b", cmd)
    if hashed and not excerpt:
        kind = hashed.group(1)
        if len(want) != len(got):
            return "%d lines expected, %d printed" % (len(want), len(got))
        names = want[0].lstrip("#").split() if want and want[0].startswith("#") else []
        for w, g in zip(want, got):
            if w.startswith("#"):
                if w != g:
                    return "header: expected %r, got %r" % (w, g)
                continue
            wc, gc = w.split(), g.split()
            if len(wc) != len(gc):
                return "expected %d columns, got %d: %r" % (len(wc), len(gc), g)
            for i, (a, b) in enumerate(zip(wc, gc)):
                col = names[i] if i < len(names) else ""
                if not match_cell(a, b, col in VOLATILE_COLUMNS[kind]):
                    return "column %s: expected %r, got %r (line %r)" % (col, a, b, g)
        return None
    if want and ALIGNED_HEADER.match(want[0]):  # widths follow the contents: cell by cell
        if not got or aligned_cells(got[0]) != aligned_cells(want[0]):
            return "header: expected %r, got %r" % (want[0], got[0] if got else None)
        names = aligned_cells(want[0])

        def row_ok(w, g):
            wc, gc = aligned_cells(w), aligned_cells(g)
            if len(wc) != len(gc):
                return False
            return all(match_cell(a, b, names[i] in VOLATILE_COLUMNS["aligned"]
                                  if i < len(names) else False)
                       for i, (a, b) in enumerate(zip(wc, gc)))

        if excerpt:
            at = 1
            for w in want[1:]:
                while at < len(got) and not row_ok(w, got[at]):
                    at += 1
                if at == len(got):
                    return "no line like %r (in this order)" % w
                at += 1
            return None
        if len(want) != len(got):
            return "%d lines expected, %d printed" % (len(want), len(got))
        for w, g in zip(want[1:], got[1:]):
            if not row_ok(w, g):
                return "expected %r, got %r" % (w, g)
        return None
    if excerpt:
        return "an excerpt must be a table with a header"
    if len(want) != len(got):
        return "%d lines expected, %d printed" % (len(want), len(got))
    for w, g in zip(want, got):
        if not match_line(w, g):
            return "expected %r, got %r" % (w, g)
    return None


def blocks(doc):
    """The page's examples: dicts with number, line, kind, steps or reason."""
    lines = open(doc, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        m = ANNOT.match(lines[start - 2]) if start >= 2 else None
        note = m.group(1) if m else None
        ex = {"number": len(out) + 1, "line": start}
        if note is not None and note.startswith("not run"):
            ex.update(kind="skip", reason=note)
        elif note is not None:
            m = re.match(r"^(output|excerpt) of (gpumux\b.*)$", note)
            if not m:
                ex.update(kind="bad", reason="unknown example note: " + note)
            else:
                ex.update(kind=m.group(1), steps=[(m.group(2), body)])
        elif any(l.startswith("$ ") for l in body):
            steps = []
            for l in body:
                if l.startswith("$ "):
                    steps.append((l[2:], []))
                elif steps:
                    steps[-1][1].append(l)
                else:
                    steps.append((None, [l]))
            ex.update(kind="run", steps=steps)
        else:
            continue
        out.append(ex)
    for n, ex in enumerate(out, 1):
        ex["number"] = n
    return out


def run(argv, timeout=30):
    """Runs argv under a pseudo-terminal: (exit status, output lines as a terminal shows them)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                close_fds=True)
    except OSError as e:
        os.close(master)
        os.close(slave)
        return 127, ["cannot run %s: %s" % (argv[0], e)]
    os.close(slave)
    data, deadline = b"", time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            break
        r, _, _ = select.select([master], [], [], min(left, 1.0))
        if not r:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer has gone
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    if rc < 0:
        rc = 128 - rc
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "")
    return rc, trim(text.split("\n"))


def trim(lines):
    lines = [l.rstrip() for l in lines]
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def wanted_status(out, echoed):
    if echoed is not None:
        return echoed
    if any(l.startswith("Try 'gpumux ") for l in out):
        return 2
    if any(l.startswith("gpumux: ") for l in out):
        return 1
    return 0


def check(doc, number, maps):
    exs = [e for e in blocks(doc) if e["number"] == number]
    if not exs or exs[0]["kind"] not in ("run", "output", "excerpt"):
        print("fail\t%s: no example %d to run" % (doc, number))
        return 1
    ex, name, bad = exs[0], os.path.basename(doc), 0
    gpumux = os.environ.get("GPUMUX", "gpumux")
    steps = ex["steps"]
    for k, (cmd, want) in enumerate(steps):
        if cmd is None:
            print("fail\t%s:%d: output before the first `$ gpumux` line" % (name, ex["line"]))
            bad += 1
            continue
        if cmd == "echo $?":
            continue  # checked with the command before it
        what = "%s:%d: %s%s" % (name, ex["line"], "" if ex["kind"] == "run" else
                                ex["kind"] + " of ", cmd)
        try:
            argv = shlex.split(cmd)
        except ValueError as e:
            print("fail\t%s: %s" % (what, e))
            bad += 1
            continue
        if not argv or argv[0] != "gpumux":
            print("fail\t%s: only gpumux commands (and `echo $?`) can be run" % what)
            bad += 1
            continue
        argv = [gpumux] + [maps.get(a, a) for a in argv[1:]]
        echoed = None
        if k + 1 < len(steps) and steps[k + 1][0] == "echo $?":
            ans = trim(steps[k + 1][1])
            if len(ans) != 1 or not ans[0].isdigit():
                print("fail\t%s: `$ echo $?` is not followed by one number" % what)
                bad += 1
                continue
            echoed = int(ans[0])
        want = trim(want)
        rc, got = run(argv)
        status = wanted_status(want, echoed)
        diff = None
        if rc != status:
            diff = "exit status %d, the page shows %d" % (rc, status)
        else:
            diff = compare(argv, want, got, excerpt=ex["kind"] == "excerpt")
        if diff is None:
            print("ok\t%s" % what)
        else:
            bad += 1
            print("fail\t%s: %s" % (what, diff))
            sys.stderr.write("  the page shows:\n" + "".join("    |%s\n" % l for l in want) +
                             "  gpumux printed (exit status %d):\n" % rc +
                             "".join("    |%s\n" % l for l in got))
    sys.stdout.flush()
    return 1 if bad else 0


def main(args):
    if len(args) == 2 and args[0] == "list":
        for ex in blocks(args[1]):
            if ex["kind"] in ("skip", "bad"):
                what = ex["reason"]
            else:
                what = next((c for c, _ in ex["steps"] if c is not None), "")
            print("%d\t%d\t%s\t%s" % (ex["number"], ex["line"], ex["kind"], what))
        return 0
    if len(args) >= 3 and args[0] == "check":
        maps = {}
        rest = args[3:]
        while rest:
            if rest[0] != "--map" or len(rest) < 2 or "=" not in rest[1]:
                sys.stderr.write("cli_docs.py: bad arguments: %s\n" % " ".join(rest))
                return 2
            k, v = rest[1].split("=", 1)
            maps[k] = v
            rest = rest[2:]
        return check(args[1], int(args[2]), maps)
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
