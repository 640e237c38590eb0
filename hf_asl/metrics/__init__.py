"""`evaluate` modules shipped with hf-asl (local module folders, loadable offline)."""

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent


def metric_module_path(name: str = "micro_ap") -> str:
    """Folder of a shipped metric, for ``evaluate.load(metric_module_path())``."""
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(f"no evaluate module {name!r} in {METRICS_DIR}")
    return str(path)
