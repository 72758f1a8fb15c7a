"""Pushing an exported folder to the Hugging Face Hub (``huggingface_hub`` imported only here, only when asked)."""

from __future__ import annotations

from pathlib import Path

from curate.errors import ExportError


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload dataset exported by curate",
) -> str:
    """Create the Hub dataset repo ``repo_id`` if needed and upload ``folder``; returns its URL.

    Data files the folder does not have any more (a re-export with fewer shards) are deleted from
    the repo in the same commit; other files there (a LICENSE added by hand) are left alone.
    """
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ExportError(
            "--push needs huggingface_hub: pip install huggingface_hub (it comes with datasets)"
        ) from None
    api = HfApi(token=token)
    try:
        repo = api.create_repo(
            repo_id, repo_type="dataset", private=True if private else None, exist_ok=True
        )
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            commit_message=commit_message,
            delete_patterns=["data/*", "*.arrow"],
        )
    except Exception as exc:  # network, auth, offline mode: all end in the same advice
        raise ExportError(
            f"pushing {folder} to the Hub dataset {repo_id!r} failed: {type(exc).__name__}: {exc}. "
            "Check the network, that you are logged in (`hf auth login` or HF_TOKEN) with write "
            "access to the repo, and that HF_HUB_OFFLINE is not set; the exported folder is "
            "complete, so you can retry the push or upload it yourself"
        ) from None
    return str(getattr(repo, "url", f"https://huggingface.co/datasets/{repo_id}"))
