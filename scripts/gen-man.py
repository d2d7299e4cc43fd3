#!/usr/bin/env python3
"""Writes the manual pages gpumux(1) and gpumuxd(8) from the programs' own help texts.

    gen-man.py --gpumux BIN --gpumuxd BIN --config GPUMUXD.YAML --version V --out DIR

gpumux.1 is `gpumux --help` with a section for each verb that lists (VERBS), holding that
verb's `gpumux VERB --help`; gpumuxd.8.in is `gpumuxd --help`, plus a CONFIGURATION section
read from the default configuration file (every key, its help and its default) and FILES.
gpumuxd.8.in names installed paths as @GM_CONFIG_FILE@ and @GM_UNIT_FILE@: the install step
fills them in for its prefix (dist/install.cmake). The help texts stay the one source: nothing
here restates an option.

The help of gpumux and its verbs is laid out as a manual page already: headings at the left
margin, text indented by 4, an option's description by 8. Within a section a line is
  - an option ("-o, --output table|json") in OPTIONS, or a row of a two-column list
    ("NAME      the workload's name", "  shared  workloads are ..."): a tagged paragraph, the
    lines indented deeper below it its text;
  - in SYNOPSIS and EXAMPLES, kept as it is (no filling);
  - otherwise running text, filled; a blank line ends a paragraph.
"""

import argparse
import os
import re
import subprocess
import sys


def run(argv):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=0"
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    if p.returncode != 0:
        sys.exit("gen-man.py: %s exited with %d: %s" % (" ".join(argv), p.returncode, p.stderr.decode()))
    return p.stdout.decode()


def esc(s):
    """Text for roff: backslashes, hyphens (as \\- so that options copy as typed), and a
    leading period or quote that roff would read as a request."""
    s = s.replace("\\", "\\e").replace("-", "\\-")
    if s[:1] in (".", "'"):
        s = "\\&" + s
    return s


def fonts(tag):
    """An option or list tag: options bold, placeholders (NAME, SECONDS) italic."""
    out = []
    for tok in re.split(r"([ ,|=\[\]]+)", tag):
        if tok == "":
            continue
        if re.fullmatch(r"-{1,2}[A-Za-z0-9][A-Za-z0-9-]*", tok):
            out.append("\\fB" + esc(tok) + "\\fR")
        elif re.fullmatch(r"[A-Z][A-Z0-9_]*(\.\.)?", tok) and len(tok.rstrip(".")) > 1:
            out.append("\\fI" + esc(tok) + "\\fR")
        else:
            out.append(esc(tok))
    return "".join(out)


def sections(text):
    """[(HEADING, [lines])] of a help text: a heading is a line at the left margin."""
    out = []
    for line in text.splitlines():
        if line and not line[0].isspace():
            out.append((line.strip(), []))
        elif out:
            out[-1][1].append(line)
    for _, lines in out:
        while lines and not lines[-1].strip():
            lines.pop()
    return out


def indent(line):
    return len(line) - len(line.lstrip(" "))


ROW = re.compile(r"^(\S+(?:, \S+)*)  +(\S.*)$")


def row(heading, line, base):
    """(indent, tag, text) when line is an option (in OPTIONS) or a row of a two-column list,
    else None."""
    ind = indent(line) - base
    text = line.strip()
    if heading == "OPTIONS" and ind == 0 and text.startswith("-"):
        return ind, text, ""
    m = ROW.match(text) if ind in (0, 2) else None
    return (ind, m.group(1), m.group(2)) if m else None


def body(heading, lines, base=4):
    """roff for the lines of one section."""
    out = []
    if heading in ("SYNOPSIS", "EXAMPLES"):
        out.append(".nf")
        for line in lines:
            out.append(esc(line[base:]) if line.strip() else "")
        out.append(".fi")
        return out
    i = 0
    state = "para"  # para: running text; list: after tagged paragraphs
    need_pp = False
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            need_pp = True
            i += 1
            continue
        r = row(heading, line, base)
        if r is not None:
            # A run of rows, each with the lines indented deeper below it.
            items, first = [], i
            while i < len(lines) and lines[i].strip():
                r = row(heading, lines[i], base)
                if r is None:
                    break
                ind, tag, rest = r
                text = [rest] if rest else []
                i += 1
                while i < len(lines) and lines[i].strip() and indent(lines[i]) - base > ind:
                    text.append(lines[i].strip())
                    i += 1
                items.append((tag, text))
            options = heading == "OPTIONS" and items[0][0].startswith("-")
            if state == "para" and need_pp and out and not options:
                out.append(".PP")
            if options:
                # Options as manual pages set them: the tag on its line, a blank line apart.
                for tag, text in items:
                    out += [".TP", fonts(tag)] + [esc(t) for t in text]
            else:
                # A two-column list, as in the help: tags in one column, no blank lines.
                width = max(len(tag) for tag, _ in items) + 2
                shift = indent(lines[first]) - base
                if shift > 0:
                    out.append(".RS %dn" % shift)
                out.append(".PD 0")
                for tag, text in items:
                    t = "\\fB%s\\fR" % esc(tag) if heading == "VERBS" else fonts(tag)
                    out += [".TP %dn" % width, t] + [esc(x) for x in text]
                out.append(".PD")
                if shift > 0:
                    out.append(".RE")
            state, need_pp = "list", False
            continue
        if (state == "list" or need_pp) and out:
            out.append(".PP")
        state, need_pp = "para", False
        if indent(line) - base > 0:
            # Text laid out by hand: keep its lines.
            out.append(".nf")
            while i < len(lines) and lines[i].strip() and indent(lines[i]) - base > 0:
                out.append(esc(lines[i][base:]))
                i += 1
            out.append(".fi")
            continue
        out.append(esc(line.strip()))
        i += 1
    return out


def th(name, section, version, manual):
    date = ""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        import time

        date = time.strftime("%Y-%m-%d", time.gmtime(int(os.environ["SOURCE_DATE_EPOCH"])))
    return ['.\\" Generated by scripts/gen-man.py from the --help texts; do not edit.',
            '.TH %s %s "%s" "gpumux %s" "%s"' % (name, section, date, version, manual)]


def name_line(lines):
    """NAME's "gpumux smi - show ..." as roff."""
    text = " ".join(l.strip() for l in lines if l.strip())
    cmd, _, what = text.partition(" - ")
    return "%s \\- %s" % (esc(cmd), esc(what))


def gpumux_page(gpumux, version):
    top = run([gpumux, "--help"])
    secs = sections(top)
    verbs = []
    for heading, lines in secs:
        if heading == "VERBS":
            for l in lines:
                m = re.match(r"^    ([a-z][a-z0-9-]*)  +\S", l)
                if m:
                    verbs.append(m.group(1))
    if not verbs:
        sys.exit("gen-man.py: no VERBS in gpumux --help")
    out = th("GPUMUX", "1", version, "User Commands")
    for heading, lines in secs:
        out.append('.SH "%s"' % heading)
        if heading == "NAME":
            out.append(name_line(lines))
            continue
        out += body(heading, lines)
        if heading == "VERBS":
            # Each verb's help, in full, after the list.
            for v in verbs:
                out += verb_section(gpumux, v)
    out.append('.SH "SEE ALSO"')
    out.append("\\fBgpumuxd\\fR(8)")
    return "\n".join(out) + "\n", verbs


def verb_section(gpumux, verb):
    secs = sections(run([gpumux, verb, "--help"]))
    out = ['.SH "gpumux %s"' % verb]
    for heading, lines in secs:
        if heading == "NAME":
            out.append(name_line(lines))
            continue
        out.append('.SS "%s"' % heading.capitalize())
        out += body(heading, lines)
    return out


def config_keys(path):
    """[(key, description, default)] from the default configuration file: each key's
    commented-out line ("#key: X") and the comment lines above it, up to a blank line."""
    keys = []
    block = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^#([a-z_][a-z0-9_]*): (.*)$", line)
            if m:
                if not block:
                    sys.exit("gen-man.py: %s: no description above %s" % (path, m.group(1)))
                keys.append((m.group(1), " ".join(block), m.group(2)))
                block = []
            elif line.startswith("# "):
                block.append(line[2:])
            else:
                block = []
    if not keys:
        sys.exit("gen-man.py: no keys in %s" % path)
    return keys


def gpumuxd_page(gpumuxd, config, version):
    text = run([gpumuxd, "--help"])
    paras = [p for p in re.split(r"\n\s*\n", text.strip("\n"))]
    usage = paras[0].splitlines()
    m = re.match(r"^Usage: (\S+) ?(.*)$", usage[0])
    if not m:
        sys.exit("gen-man.py: gpumuxd --help does not start with Usage:")
    prog, args = m.group(1), m.group(2)
    desc = " ".join(l.strip() for l in usage[1:])
    short = re.split(r"[:.]", desc, maxsplit=1)[0].strip()
    short = short[:1].lower() + short[1:]
    out = th("GPUMUXD", "8", version, "System Administration")
    out += ['.SH "NAME"', "%s \\- %s" % (esc(prog), esc(short)), '.SH "SYNOPSIS"',
            "\\fB%s\\fR %s" % (esc(prog), fonts(args)), '.SH "DESCRIPTION"', esc(desc)]
    exit_status = None
    for p in paras[1:]:
        lines = p.splitlines()
        if lines[0].rstrip() == "Options:":
            out.append('.SH "OPTIONS"')
            # The descriptions start in one column; a long option may reach up to it.
            cols = [m.end(1) + len(m.group(2)) for m in
                    (re.match(r"^(  \S.*?)( {2,})\S", l) for l in lines[1:]) if m]
            col = max(set(cols), key=cols.count)
            i = 1
            while i < len(lines):
                if not lines[i].startswith("  -") or len(lines[i]) <= col:
                    sys.exit("gen-man.py: gpumuxd --help: unexpected option line %r" % lines[i])
                tag, text = lines[i][:col].strip(), [lines[i][col:].strip()]
                i += 1
                while i < len(lines) and indent(lines[i]) >= col:
                    text.append(lines[i].strip())
                    i += 1
                out += [".TP", fonts(tag), esc(" ".join(text))]
        elif lines[0].startswith("Exit status:"):
            exit_status = " ".join(l.strip() for l in lines)[len("Exit status:"):].strip()
        else:
            out += [".PP", esc(" ".join(l.strip() for l in lines))]
    out += ['.SH "CONFIGURATION"',
            "The configuration file is a YAML mapping of the settings below, read when gpumuxd is",
            "started with \\fB\\-\\-config\\fR \\fIFILE\\fR. The file installed as",
            "\\fI@GM_CONFIG_FILE@\\fR, which the systemd unit passes, lists every setting",
            "commented out with its default. On the command line \\fB\\-\\-\\fR\\fIkey\\-with\\-dashes\\fR",
            "\\fIVALUE\\fR sets one and overrides the file; \\fBgpumuxd \\-\\-config\\fR \\fIFILE\\fR",
            "\\fB\\-\\-print\\-config\\fR checks a file and prints the settings in effect."]
    defaults = {}
    for key, help_text, default in config_keys(config):
        defaults[key] = default.strip('"')
        out += [".TP", "\\fB%s\\fR" % esc(key), esc(help_text)]
    if exit_status:
        out += ['.SH "EXIT STATUS"', esc(exit_status)]
    out += ['.SH "FILES"',
            ".TP", "\\fI@GM_CONFIG_FILE@\\fR",
            "The configuration file the systemd unit passes with \\fB\\-\\-config\\fR.",
            ".TP", "\\fI@GM_UNIT_FILE@\\fR",
            "The systemd unit: \\fBsystemctl enable \\-\\-now gpumuxd\\fR starts gpumuxd now and at",
            "every boot. Stopping or restarting it leaves the workloads running",
            "(\\fBKillMode=process\\fR); the next daemon re-adopts them."]
    for key, what in (("run_dir", "the API socket \\fIgpumux.sock\\fR, MPS pipes and launch records"),
                      ("state_dir", "the state database \\fIstate.db\\fR"),
                      ("log_dir", "the workload logs \\fINAME\\fR\\fI.log\\fR")):
        if key in defaults:
            out += [".TP", "\\fI%s\\fR" % esc(defaults[key]), "%s (%s)." % (what[:1].upper() + what[1:], esc(key))]
    out += ['.SH "SEE ALSO"', "\\fBgpumux\\fR(1), \\fBsystemctl\\fR(1), \\fBsystemd.service\\fR(5)"]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpumux", required=True)
    ap.add_argument("--gpumuxd", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    page, _ = gpumux_page(a.gpumux, a.version)
    daemon = gpumuxd_page(a.gpumuxd, a.config, a.version)
    os.makedirs(a.out, exist_ok=True)
    for name, text in (("gpumux.1", page), ("gpumuxd.8.in", daemon)):
        tmp = os.path.join(a.out, name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(a.out, name))


if __name__ == "__main__":
    main()
