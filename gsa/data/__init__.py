"""Offline data: episode files, manifests, (later) the store and the mixed sequence sampler."""
from gsa.data.episodes import (MANIFEST_COLUMNS, EpisodeError, import_ncrl, load_episode, read_manifest,
                               save_episode, write_manifest)

__all__ = ["MANIFEST_COLUMNS", "EpisodeError", "import_ncrl", "load_episode", "read_manifest", "save_episode",
           "write_manifest"]
