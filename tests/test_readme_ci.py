"""The README's two set-up commands and CI must not drift apart."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    commands = []
    for block in blocks[:2]:
        lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
        assert len(lines) == 1, f"each set-up block holds exactly one command, got {lines}"
        commands.append(lines[0].strip())
    return commands


def test_readme_opens_with_main_job_then_tests():
    main_job, tests = _readme_commands()
    assert main_job.endswith("hf-asl demo --out demo_out")
    assert tests.endswith("python -m pytest -q")
    assert "-c constraints.txt" in main_job and "-c constraints.txt" in tests


def test_ci_runs_the_readme_test_command():
    _, tests = _readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert tests in ci_lines


def test_constraints_pin_the_local_torch_wheel():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().split()


def test_readme_python_names_exist():
    import hf_asl
    from hf_asl.metric import compute_metrics  # noqa: F401
    from hf_asl.ndec import load_ndec  # noqa: F401

    assert Path(hf_asl.metric_module_path(), "micro_ap.py").is_file()
