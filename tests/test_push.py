"""`hf-asl push`: what goes into the upload, and one clear line (exit 2) when the Hub is out of reach.
Nothing here touches the network: the Hub client is put offline or replaced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import httpx2
import huggingface_hub
import pytest
from huggingface_hub import ModelCard
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

from hf_asl.cli import main
from hf_asl.hub import HubUnavailableError, hub_errors, push_folder
from hf_asl.model_card import GENERATED_MARKER
from hf_asl.submission import make_submission


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "checkpoints" / "step_000010").mkdir(parents=True)
    (folder / "checkpoints" / "step_000010" / "optimizer.bin").write_bytes(b"state")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "asl", "descriptor_dim": 8, "score_threshold": 1.0, "backbone_config": {"model_type": "mobilenet_v2"},
    }))
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "preprocessor_config.json").write_text("{}")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "lock").write_text("")
    return folder


@pytest.fixture
def results(tmp_path: Path) -> Path:
    (tmp_path / "gt.csv").write_text("query_id,reference_id\nQ00000,R000000\nQ00001,\n")
    (tmp_path / "p.csv").write_text("query_id,reference_id,score\nQ00000,R000000,0.9\nQ00001,R000000,0.5\n")
    make_submission(tmp_path / "p.csv", tmp_path / "gt.csv", tmp_path / "sub", method="ASL (hard)")
    return tmp_path / "sub"


class _RecordingApi:
    """Stands in for HfApi: records the commit instead of sending it."""

    commits: ClassVar[list] = []

    def create_repo(self, repo_id, **kwargs):
        return repo_id

    def create_commit(self, repo_id, operations, **kwargs):
        self.commits.append((repo_id, {op.path_in_repo: op for op in operations}, kwargs))
        return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/0"})()


def test_upload_holds_model_card_and_eval_results_but_no_checkpoint(model_dir, results, monkeypatch, capsys):
    _RecordingApi.commits = []
    monkeypatch.setattr(huggingface_hub, "HfApi", _RecordingApi)
    assert main(["push", str(model_dir), "me/asl", "--results", str(results)]) == 0
    ((repo_id, files, _),) = _RecordingApi.commits
    assert repo_id == "me/asl"
    assert sorted(files) == [".eval_results/ndec.yaml", "README.md", "config.json", "model.safetensors",
                             "preprocessor_config.json"]
    assert "https://huggingface.co/me/asl/commit/0" in capsys.readouterr().out

    card = ModelCard.load(model_dir / "README.md")
    metrics = json.loads((results / "metrics.json").read_text())["metrics"]
    micro_ap = {r.metric_config: r.metric_value for r in card.data.eval_results if r.metric_type == "micro_ap"}
    assert micro_ap == {"asl_hard": metrics["micro_ap"]}
    assert 'from_pretrained("me/asl"' in card.text


def test_edited_card_is_never_overwritten(model_dir, monkeypatch, capsys):
    _RecordingApi.commits = []
    monkeypatch.setattr(huggingface_hub, "HfApi", _RecordingApi)
    mine = "---\nlicense: mit\n---\n# my card\n"
    (model_dir / "README.md").write_text(mine)
    assert main(["push", str(model_dir), "me/asl", "--rewrite-card"]) == 0
    assert (model_dir / "README.md").read_text() == mine
    assert "kept" in capsys.readouterr().out

    (model_dir / "README.md").write_text(f"---\nlicense: mit\n---\n{GENERATED_MARKER}\n# old\n")
    assert main(["push", str(model_dir), "me/other", "--rewrite-card"]) == 0
    assert 'from_pretrained("me/other"' in (model_dir / "README.md").read_text()


def test_offline_push_fails_with_one_line(model_dir, results, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["push", str(model_dir), "me/asl", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "offline mode is enabled" in err and err.startswith("hf-asl push: error:")


def test_unreachable_hub_fails_with_one_line(model_dir, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise httpx2.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    assert main(["push", str(model_dir), "me/asl"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the Hub is unreachable (ConnectError" in err


def test_hub_failures_are_named_in_one_line():
    with pytest.raises(HubUnavailableError, match="not logged in"), hub_errors("cannot push"):
        raise LocalTokenNotFoundError("Token is required")
    response = httpx2.Response(401, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))
    with pytest.raises(HubUnavailableError, match=r"refused \(HTTP 401; log in") as err, hub_errors("cannot push"):
        raise HfHubHTTPError("401 Client Error:\nUnauthorized", response=response)
    assert "\n" not in str(err.value)


def test_dataset_folder_push_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n")
    with pytest.raises(HubUnavailableError, match="offline mode is enabled"):
        push_folder(tmp_path, "me/ndec", repo_type="dataset")


@pytest.mark.parametrize("argv, message", [
    (["push", "{model}", "not a repo id"], "bad repo id"),
    (["push", "{tmp}", "me/asl"], "no config.json"),
    (["push", "{model}", "me/asl", "--results", "{tmp}"], "metrics.json"),
])
def test_bad_input_is_one_line(model_dir, tmp_path, capsys, argv, message):
    argv = [a.format(model=model_dir, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_model_without_image_processor_is_refused(model_dir, capsys):
    (model_dir / "preprocessor_config.json").unlink()
    assert main(["push", str(model_dir), "me/asl"]) == 2
    assert "preprocessor_config.json" in capsys.readouterr().err


def test_offline_push_in_a_fresh_process(model_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "hf_asl", "push", str(model_dir), "me/asl"],
                          check=False, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "hf-asl push: error: cannot push to me/asl: Hugging Face Hub offline mode is enabled (unset HF_HUB_OFFLINE)"
    ]
