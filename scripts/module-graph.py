#!/usr/bin/env python3
"""The graph of jobd's top-level modules, and a check that it has no cycle.

Two sources of edges, joined:
- cargo-modules (rust-analyzer's analysis of the crate) lists every item and every "uses" edge
  between items, resolved through `use` declarations and re-exports;
- every `crate::module` path in the code itself (outside comments and test modules), which
  catches the paths written inline in function bodies that cargo-modules does not follow.
Each item is folded into the top-level module that holds it (`jobd::store::...` into `store`;
items of lib.rs itself into `lib`), so an edge says that code in one module names something in
another. The graph must be acyclic: no module depends, directly or through others, on a module
that depends on it.

    scripts/module-graph.py            prints the edges, one `from -> to` per line, and checks
    scripts/module-graph.py --dot      the same graph for Graphviz

Exits 1 and names a cycle when there is one, 2 when cargo-modules cannot run.
"""

import re
import subprocess
import sys

EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[label="uses"')


MODULES = None  # the top-level modules, as lib.rs declares them
ROOT_ITEMS = None  # the functions of lib.rs itself


def top(path):
    """The top-level module of a jobd item path, or None for items outside the crate."""
    parts = path.split("::")
    if parts[0] != "jobd" or len(parts) < 2:
        return None
    if parts[1] in MODULES:
        return parts[1]
    if parts[1] in ROOT_ITEMS:
        return "lib"
    # An impl of a trait for a foreign type (`jobd::result::Result::ctx`): cargo-modules names
    # it by the type's path, which says nothing of the module that holds it. The written paths
    # cover those.
    return None


def declared_modules():
    """The modules lib.rs declares: `pub mod x;` lines, and the names in its `internal!` list."""
    text = open("src/lib.rs").read()
    found = set(re.findall(r"^(?:pub(?:\(crate\))? )?mod (\w+);", text, re.M))
    listed = re.search(r"^internal! \{([^}]*)\}", text, re.M)
    if listed:
        found |= set(listed.group(1).split())
    return found


def written_paths():
    """Edges from the `crate::x` paths written in each module's files."""
    found = set()
    for module in MODULES:
        files = [f"src/{module}.rs"] + sorted(
            str(p) for p in __import__("pathlib").Path(f"src/{module}").rglob("*.rs")
        )
        for name in files:
            if name.endswith(("/tests.rs", "/testing.rs")) or "/tests/" in name:
                continue
            try:
                text = open(name).read()
            except FileNotFoundError:
                continue
            # A test module inline (`#[cfg(test)] mod tests { ... }`) ends the file.
            text = re.split(r"#\[cfg\(test\)\]\s*mod \w+ \{", text)[0]
            text = re.sub(r"//[^\n]*", "", text)
            for target in re.findall(r"\bcrate::(\w+)", text):
                target = target if target in MODULES else "lib"
                if target != module:
                    found.add((module, target))
    for target in re.findall(r"\bcrate::(\w+)", re.sub(r"//[^\n]*", "", open("src/lib.rs").read())):
        if target in MODULES:
            found.add(("lib", target))
    return found


def edges(dot):
    found = set()
    for line in dot.splitlines():
        m = EDGE.match(line)
        if not m:
            continue
        a, b = top(m.group(1)), top(m.group(2))
        if a and b and a != b:
            found.add((a, b))
    return found


def cycle(nodes, graph):
    """A cycle as a list of modules, or None."""
    state = {}
    stack = []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = "done"
        return None

    for n in sorted(nodes):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def main():
    global MODULES, ROOT_ITEMS
    MODULES = declared_modules()
    ROOT_ITEMS = set(re.findall(r"\bfn (\w+)", open("src/lib.rs").read()))
    try:
        dot = subprocess.run(
            ["cargo", "modules", "dependencies", "--package", "jobd", "--lib"],
            check=True, capture_output=True, text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"module-graph: cannot run cargo-modules: {e}", file=sys.stderr)
        return 2
    found = edges(dot)
    if not found:
        print("module-graph: cargo-modules listed no dependencies; nothing was checked", file=sys.stderr)
        return 2
    found |= written_paths()
    graph = {}
    for a, b in found:
        graph.setdefault(a, set()).add(b)
    nodes = {n for e in found for n in e}
    if "--dot" in sys.argv[1:]:
        print("digraph jobd {")
        for a, b in sorted(found):
            print(f'    "{a}" -> "{b}";')
        print("}")
    else:
        for a, b in sorted(found):
            print(f"{a} -> {b}")
    loop = cycle(nodes, graph)
    if loop:
        print("module-graph: the modules depend on each other in a cycle: " + " -> ".join(loop), file=sys.stderr)
        return 1
    print(f"module-graph: {len(nodes)} modules, {len(found)} dependencies, no cycle", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
