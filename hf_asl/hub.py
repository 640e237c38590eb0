"""Uploads to the Hugging Face Hub, failing with one clear line when the Hub is unreachable."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .errors import HfAslError, InputError


class HubUnavailableError(HfAslError):
    """The Hub cannot be reached (offline mode, no network, or no credentials)."""


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    commit_message: str = "Upload with hf-asl",
) -> str:
    """Create ``repo_id`` if needed and upload ``folder``; returns the commit URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder to upload", path=folder)
    check_repo_id(repo_id)
    api = HfApi()
    with hub_errors(f"cannot push {folder} to {repo_id}"):
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message,
        )
    return info.commit_url


def push_files(
    files: Mapping[str, str | Path | bytes],
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    commit_message: str = "Upload with hf-asl",
) -> str:
    """Create ``repo_id`` if needed and add ``files`` (path in the repo -> local file or bytes) in
    one commit; returns the commit URL. Nothing is copied locally, however large the files."""
    from huggingface_hub import CommitOperationAdd, HfApi

    check_repo_id(repo_id)
    if not files:
        raise InputError(f"nothing to upload to {repo_id}")
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=content if isinstance(content, bytes) else str(content))
        for name, content in files.items()
    ]
    api = HfApi()
    with hub_errors(f"cannot push to {repo_id}"):
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.create_commit(repo_id, operations, commit_message=commit_message, repo_type=repo_type)
    return info.commit_url


def check_repo_id(repo_id: str) -> None:
    """Raise :class:`InputError` unless ``repo_id`` is a valid ``namespace/name`` Hub id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise InputError(f"bad repo id {repo_id!r}: {_one_line(err)}") from None
    if repo_id.count("/") != 1:
        raise InputError(f"bad repo id {repo_id!r}: expected namespace/name, e.g. your-user/asl-mobilenet")


@contextmanager
def hub_errors(action: str) -> Iterator[None]:
    """Turn the Hub client's failures into one-line :class:`HubUnavailableError` s starting with ``action``."""
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalTokenNotFoundError,
        OfflineModeIsEnabled,
    )

    # Order matters: all of these are OSError subclasses.
    try:
        yield
    except OfflineModeIsEnabled as err:
        raise HubUnavailableError(f"{action}: Hugging Face Hub offline mode is enabled (unset HF_HUB_OFFLINE)") from err
    except LocalTokenNotFoundError as err:
        raise HubUnavailableError(f"{action}: not logged in (run `hf auth login` or set HF_TOKEN)") from err
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            hint = "log in with `hf auth login` with a token that can write to it"
        else:
            hint = _one_line(err.server_message or err)
        raise HubUnavailableError(f"{action}: the Hub refused (HTTP {status or '?'}; {hint})") from err
    except (httpx2.TransportError, OSError) as err:
        raise HubUnavailableError(
            f"{action}: the Hub is unreachable ({type(err).__name__}: {_one_line(err)})"
        ) from err


def _one_line(err: object, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["HubUnavailableError", "check_repo_id", "hub_errors", "push_files", "push_folder"]
