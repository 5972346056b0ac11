"""Plugin discovery reads entry_points.txt itself, by importlib.metadata's rules,
without importing importlib.metadata."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from greenpatch.patcher import _entry_points

GROUP = "greenpatch.patches"


def _dist(directory: Path, folder: str, text: str) -> None:
    info = directory / folder
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text(text)


def test_finds_the_group_in_dist_info_and_egg_info_in_path_order(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _dist(
        first,
        "alpha-1.0.dist-info",
        f"[console_scripts]\nx = y:z\n\n[{GROUP}]\none = alpha.mod:register\n",
    )
    _dist(second, "Beta_Plugin.egg-info", f"[{GROUP}]\n# a comment\ntwo = beta:SPEC [extra]\n")
    _dist(second, "gamma-2.dist-info", "[console_scripts]\ngp = greenpatch.cli:main\n")
    found = _entry_points.find(GROUP, [str(first), str(tmp_path / "missing"), str(second)])
    assert [(e.name, e.value, e.distribution) for e in found] == [
        ("one", "alpha.mod:register", "alpha"),
        ("two", "beta:SPEC [extra]", "beta_plugin"),
    ]


def test_the_first_distribution_of_a_name_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _dist(first, "my.plugin-2.0.dist-info", f"[{GROUP}]\nnew = new_mod:register\n")
    _dist(second, "my_plugin-1.0.dist-info", f"[{GROUP}]\nold = old_mod:register\n")
    found = _entry_points.find(GROUP, [str(first), str(second)])
    assert [e.name for e in found] == ["new"]


def test_load_imports_the_module_and_follows_dotted_attributes() -> None:
    point = _entry_points.EntryPoint("x", "os.path:join.__name__ [extra]", "d")
    assert point.load() == "join"


def test_a_zip_on_sys_path_falls_back_to_importlib_metadata(tmp_path: Path) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(
            "zipped_plugin-1.0.dist-info/METADATA", "Name: zipped-plugin\nVersion: 1.0\n"
        )
        zipped.writestr(
            "zipped_plugin-1.0.dist-info/entry_points.txt", f"[{GROUP}]\nz = zmod:register\n"
        )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from greenpatch.patcher import _entry_points\n"
        f"print(sorted(e.name for e in _entry_points.find({GROUP!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(archive)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "'z'" in out.stdout and "'zmq'" in out.stdout


def test_patch_all_does_not_import_importlib_metadata() -> None:
    code = (
        "import sys, greenpatch\n"
        "greenpatch.patch_all()\n"
        "print(greenpatch.is_patched('zmq'), 'importlib.metadata' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


def test_a_large_entry_points_file_is_read_whole(tmp_path: Path) -> None:
    filler = "".join(f"script_{n} = some.module:function_{n}\n" for n in range(3000))
    _dist(
        tmp_path,
        "big-1.0.dist-info",
        f"[console_scripts]\n{filler}\n[{GROUP}]\nlast = big:register\n",
    )
    assert len((tmp_path / "big-1.0.dist-info" / "entry_points.txt").read_bytes()) > 100_000
    found = _entry_points.find(GROUP, [str(tmp_path)])
    assert [(e.name, e.value) for e in found] == [("last", "big:register")]
