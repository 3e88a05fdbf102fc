"""A module saved as its config JSON plus its weights (safetensors), and loaded back the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sentence_transformers.base.modules import Module

from mmgene.align.modules.helpers import hub_options

#: the one weights file of a module: mmgene writes safetensors only, so no pickle is ever read
WEIGHTS_FILE = "model.safetensors"


def saved_shapes(path: str | None, where: str) -> dict[str, list[int]]:
    """Each tensor's shape in the safetensors file at ``path``, read from its header alone (no tensor is
    loaded); a missing (``None``), truncated or malformed file is a :class:`~mmgene.errors.ModelError`
    naming it (``where``: the file's place in the model)."""
    from safetensors import SafetensorError, safe_open

    from mmgene.errors import ModelError

    fix = "give an unmodified, complete folder written by `mmgene train` or AlignedModel.save"
    if path is None:
        raise ModelError(f"the weights file {WEIGHTS_FILE} is missing", where, fix)
    try:
        with safe_open(str(path), framework="pt") as weights:
            return {name: list(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except (OSError, SafetensorError) as exc:
        raise ModelError(f"{WEIGHTS_FILE} is not a complete safetensors file ({exc})", path, fix) from exc


class WeightedModule(Module):
    """Base of the modules with parameters: :meth:`Module.load` builds one from its config, then the weights load."""

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> Any:
        """Built from its config once the config's tensor shapes match the weights file's header, so a
        config with absurd sizes is refused before it allocates memory; then the weights load."""
        from mmgene.errors import ModelError

        where = Path(model_name_or_path, subfolder, WEIGHTS_FILE).as_posix()
        path = cls.load_file_path(model_name_or_path, WEIGHTS_FILE, subfolder=subfolder, **hub_options(kwargs))
        saved = saved_shapes(path, where)
        with torch.device("meta"):  # the module's tensors without memory: only their shapes
            skeleton = super().load(model_name_or_path, subfolder=subfolder, **kwargs)
        shapes = {k: list(v.shape) for k, v in skeleton.state_dict().items()}
        if shapes != saved:
            wrong = sorted(k for k in {*shapes, *saved} if shapes.get(k) != saved.get(k))[0]
            raise ModelError(
                f"{cls.config_file_name} and {WEIGHTS_FILE} disagree: {wrong} is {saved.get(wrong)} in the weights, "
                f"{shapes.get(wrong)} by the config",
                path,
                "give an unmodified folder written by `mmgene train` (its configs and weights are saved together)",
            )
        module = super().load(model_name_or_path, subfolder=subfolder, **kwargs)
        return cls.load_torch_weights(model_name_or_path, subfolder=subfolder, model=module, **hub_options(kwargs))
