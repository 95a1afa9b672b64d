"""Weight files on disk: which extensions hold what, reading them without running pickled code,
and writing a state dict in the form its extension asks for.

    .safetensors                          safetensors (a flat name -> tensor map, no pickle)
    .pth .pt .pth.tar .torch .bin .ckpt   torch.save files (.torch is VISSL's, .bin Hugging Face's)

torch files are read with `weights_only=True`: tensors, containers and numbers only. DINO's full
checkpoints also pickle their argparse.Namespace of arguments, a plain attribute bag, so that one
class is allowed; anything else a file pickles is named in the error.
"""

import argparse
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional

import torch

TORCH_SUFFIXES = (".pth", ".pt", ".pth.tar", ".torch", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
SUFFIXES = TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,)


def file_kind(path) -> str:
    """'safetensors' or 'torch' by the file name's ending; ValueError for any other ending."""
    name = Path(path).name.lower()
    if name.endswith(SAFETENSORS_SUFFIX):
        return "safetensors"
    if name.endswith(TORCH_SUFFIXES):
        return "torch"
    raise ValueError(f"{path}: a weights file ends in one of {' '.join(SUFFIXES)}")


def read_weights(path) -> dict:
    """The file's content on the CPU: a safetensors map, or whatever torch.save wrote."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise ValueError(f"{path} pickles objects that loading with weights_only refuses: {', '.join(unsafe)}; "
                             "save its state dict alone (torch.save(model.state_dict(), ...))") from None
        raise ValueError(f"{path} is not a readable torch file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]})") from None


def _unsafe_globals(path: Path):
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint at all: the caller reports the load error
        return []
    return [name for name in found if name != "argparse.Namespace"]


def write_weights(path, state: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    """A flat name -> tensor map as safetensors or torch.save, by the ending of `path`, written
    through a temporary file and renamed over `path` (never half written). Tensors are made
    contiguous CPU copies: safetensors refuses shared or strided storage."""
    path = Path(path)
    kind = file_kind(path)
    tensors = {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if kind == "safetensors":
                from safetensors.torch import save

                f.write(save(tensors, metadata=metadata))
            else:
                torch.save(tensors, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
