"""Install: a built wheel holds every module and the shipped device profiles; ``python -m edgedet`` is spawn-safe."""

import runpy
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_every_module_and_the_device_profiles(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True)
    names = set(zipfile.ZipFile(next(tmp_path.glob("edgedet-*.whl"))).namelist())
    profiles = ROOT / "device_profiles"
    shipped = {f"edgedet/device_profiles/{p.relative_to(profiles).as_posix()}" for p in profiles.rglob("*")
               if p.is_file()}
    assert "edgedet/device_profiles/jetson-orin-nano.yaml" in shipped and shipped <= names
    assert {p.relative_to(ROOT).as_posix() for p in (ROOT / "edgedet").rglob("*.py")} <= names


def test_python_m_edgedet_does_not_run_the_cli_again_in_a_spawned_child():
    runpy.run_module("edgedet", run_name="__mp_main__")  # what the spawn start method does; main() would exit
