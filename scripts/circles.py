#!/usr/bin/env python3
"""Import circles between the modules of each crate: module A names `crate::b` (or `super::b`)
and module B names `crate::a`, or longer loops. Reads crates/*/src/**/*.rs as text."""
import re, sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
found = 0
for src in sorted(root.glob("crates/*/src")):
    mods = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("lib", "main"):
            continue
        if parts[-1] == "mod":
            parts = parts[:-1]
        mods["::".join(parts)] = f
    def top(name):  # a module's first segment that is a module of this crate
        return name
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        text = f.read_text(errors="replace")
        # leave out test modules: after `#[cfg(test)]` at top level
        cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests", text, re.M)
        if cut:
            text = text[:cut.start()]
        here = m.split("::")
        for path in re.findall(r"\b((?:crate|super)(?:::\w+)+)", text):
            segs = path.split("::")
            if segs[0] == "crate":
                base, rest = [], segs[1:]
            else:
                base = here[:-1]
                rest = segs[1:]
                while rest and rest[0] == "super":
                    base = base[:-1]; rest = rest[1:]
            # longest prefix that is a module
            target = None
            for i in range(len(rest), 0, -1):
                cand = "::".join(base + rest[:i])
                if cand in mods:
                    target = cand; break
            if target and target != m and not target.startswith(m + "::") and not m.startswith(target + "::"):
                graph[m].add(target)
    # cycles: strongly connected components with more than one module
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def strong(v):
        index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in graph:
        if v not in index:
            strong(v)
    for comp in out:
        found += 1
        print(f"{src.parent.name}: " + " <-> ".join(comp))
print(f"{found} import circle(s)")
sys.exit(1 if found else 0)
