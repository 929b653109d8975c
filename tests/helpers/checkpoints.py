"""A crafted (malicious) checkpoint for the tests that loading refuses it."""
import torch


class _WritesAFile:
    """Unpickling this runs ``exec``: it writes ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").write("pwned")', )


def crafted_checkpoint(path, marker, state_dict=None) -> str:
    """Save at ``path`` a checkpoint whose full unpickling writes the file
    ``marker``: a loader that runs it leaves the marker behind."""
    torch.save({'state_dict': state_dict or {'w': torch.zeros(1)},
                'meta': {'note': _WritesAFile(str(marker))}}, str(path))
    return str(path)
