"""Room sizes (issue 22, item 3): product source files over 700 lines and functions over 80 lines.

    .venv/bin/python benchmarks/room_sizes.py [--top N] [FOLDER ...]   (default: the product: splatstudio and
                                                                        the trainer's gstrain)

A file's size is its number of lines; a function's is from its ``def`` line to its last line (decorators
not counted, nested functions counted inside their parent and on their own). `tests/unit/test_room_sizes.py`
holds the product to these limits, numba kernels excepted when their docstring says why they are long
(`LONG_KERNEL_MARK`).
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_LINES = 700
MAX_FUNCTION_LINES = 80
PRODUCT = (ROOT / "splatstudio", ROOT / "gaussian-splatting" / "gstrain")
"""The product's source: the app and the trainer's package (its train.py and render.py are a few lines each)."""
LONG_KERNEL_MARK = "Long on purpose"
"""The words a numba kernel's docstring starts its explanation with when the kernel is allowed over the limit."""


@dataclass(frozen=True)
class Function:
    path: str  # relative to the repository
    line: int
    name: str  # qualified: Class.method, outer.inner
    lines: int
    numba: bool  # decorated with numba's jit / njit
    docstring: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name}"


def source_files(folders: list[Path]) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _is_numba(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name in ("jit", "njit")


def functions(path: Path, root: Path = ROOT) -> list[Function]:
    """Every function and method of `path`, nested ones too."""
    try:
        rel = str(path.resolve().relative_to(root))
    except ValueError:
        rel = str(path)
    found: list[Function] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append(Function(rel, child.lineno, prefix + child.name, child.end_lineno - child.lineno + 1,
                                      any(_is_numba(d) for d in child.decorator_list),
                                      ast.get_docstring(child) or ""))  # fmt: skip
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), "")
    return found


def measure(folders: list[Path], root: Path = ROOT) -> tuple[list[tuple[int, str]], list[Function]]:
    """(lines, path) of every file, largest first, and every function, longest first."""
    files = source_files(folders)
    sizes = sorted(((line_count(p), str(p.resolve().relative_to(root))) for p in files), reverse=True)
    funcs = sorted((f for p in files for f in functions(p, root)), key=lambda f: (-f.lines, f.path, f.line))
    return sizes, funcs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=list(PRODUCT))
    parser.add_argument("--top", type=int, default=15, help="largest files to list (default 15)")
    args = parser.parse_args(argv)
    sizes, funcs = measure([f.resolve() for f in args.folders])
    print("| # | file | lines |\n|---:|---|---:|")
    for i, (lines, path) in enumerate(sizes[: args.top], 1):
        flag = " **over**" if lines > MAX_FILE_LINES else ""
        print(f"| {i} | `{path}` | {lines:,}{flag} |")
    over = [f for f in funcs if f.lines > MAX_FUNCTION_LINES]
    print(f"\nfiles over {MAX_FILE_LINES} lines: {sum(n > MAX_FILE_LINES for n, _ in sizes)} of {len(sizes)}")
    print(f"functions over {MAX_FUNCTION_LINES} lines: {len(over)}\n")
    print("| lines | function |\n|---:|---|")
    for f in over:
        kernel = " (numba kernel)" if f.numba else ""
        print(f"| {f.lines} | `{f}`{kernel} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
