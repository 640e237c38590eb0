"""Uploads to the Hugging Face Hub, failing with one clear line when the Hub is unreachable."""

from __future__ import annotations

from pathlib import Path

from .errors import HfAslError


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
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    folder = Path(folder)
    if not folder.is_dir():
        raise HfAslError(f"{folder}: not a folder to upload")
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
            commit_message=commit_message,
        )
    except OfflineModeIsEnabled as err:
        raise HubUnavailableError(
            f"cannot push {folder} to {repo_id}: Hugging Face Hub offline mode is enabled "
            "(unset HF_HUB_OFFLINE to upload)"
        ) from err
    except HfHubHTTPError as err:
        raise HubUnavailableError(
            f"cannot push {folder} to {repo_id}: the Hub refused the upload "
            f"({err.response.status_code if err.response is not None else 'no response'}; "
            "log in with `hf auth login`?)"
        ) from err
    except (httpx2.TransportError, OSError) as err:
        raise HubUnavailableError(
            f"cannot push {folder} to {repo_id}: the Hub is unreachable ({type(err).__name__})"
        ) from err
    return str(info.commit_url if hasattr(info, "commit_url") else info)
